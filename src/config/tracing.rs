//! `[tracing]`: spans exported with OTLP over HTTP (`telemetry`).
//!
//! Off unless an endpoint is known: `tracing.endpoint` in the file, or the
//! standard variables an OpenTelemetry operator or a platform team sets
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as written;
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, `/v1/traces` appended, as the OTLP
//! exporter spec says). The file's keys win over the variables;
//! `OTEL_SDK_DISABLED=true` turns tracing off whatever either says.

#![allow(missing_docs)] // the keys are documented in docs/configuration.md

use super::ConfigError;
use super::raw::RawTracing;
use super::tls::CaFile;

pub(crate) const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub(crate) const OTLP_TRACES_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub(crate) const OTLP_PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub(crate) const OTLP_TRACES_PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub(crate) const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";
pub(crate) const SDK_DISABLED_ENV: &str = "OTEL_SDK_DISABLED";

/// The OTLP path of traces on a collector's base URL.
const TRACES_PATH: &str = "/v1/traces";

/// How spans are encoded on the wire (both OTLP/HTTP: gRPC is not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf`, OTLP's default: every collector and APM takes it.
    Protobuf,
    /// `http/json`.
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// Where spans are POSTed: the traces URL itself, `/v1/traces` included.
    pub endpoint: reqwest::Url,
    pub protocol: OtlpProtocol,
    /// The share of new traces recorded; a client's sampled flag is followed.
    pub sampling_ratio: f64,
    pub service_name: String,
    pub ca_file: Option<CaFile>,
}

impl TracingConfig {
    /// `None`: tracing is off.
    pub(super) fn from_raw(
        raw: Option<RawTracing>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if set(SDK_DISABLED_ENV).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let section = raw.is_some();
        let raw = raw.unwrap_or_default();
        let (text, append) = match (
            raw.endpoint,
            set(OTLP_TRACES_ENDPOINT_ENV),
            set(OTLP_ENDPOINT_ENV),
        ) {
            (Some(file), _, _) => (file, true),
            (None, Some(traces), _) => (traces, false),
            (None, None, Some(base)) => (base, true),
            (None, None, None) if section => {
                return Err(ConfigError::invalid(
                    "tracing.endpoint",
                    format!(
                        "is required in [tracing] (or set {OTLP_ENDPOINT_ENV}): the collector's \
                         OTLP/HTTP address, such as \"http://otel-collector:4318\""
                    ),
                ));
            }
            (None, None, None) => return Ok(None),
        };
        let endpoint = endpoint(&text, append)?;
        let protocol = match raw
            .protocol
            .or_else(|| set(OTLP_TRACES_PROTOCOL_ENV))
            .or_else(|| set(OTLP_PROTOCOL_ENV))
            .as_deref()
            .map(str::trim)
        {
            None | Some("http/protobuf") => OtlpProtocol::Protobuf,
            Some("http/json") => OtlpProtocol::Json,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "tracing.protocol",
                    format!(
                        "`{other}` is not offered: write \"http/protobuf\" (the default) or \
                         \"http/json\"; a collector takes either on its OTLP/HTTP port (4318), \
                         gRPC (4317) is not spoken"
                    ),
                ));
            }
        };
        let sampling_ratio = raw.sampling_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sampling_ratio) {
            return Err(ConfigError::invalid(
                "tracing.sampling_ratio",
                "is the share of new traces recorded: a number from 0.0 to 1.0",
            ));
        }
        let service_name = raw
            .service_name
            .or_else(|| set(SERVICE_NAME_ENV))
            .unwrap_or_else(|| "wxgate".to_owned());
        if service_name.trim().is_empty() {
            return Err(ConfigError::invalid(
                "tracing.service_name",
                "is empty: name the service its spans are shown under, e.g. \"wxgate\"",
            ));
        }
        Ok(Some(Self {
            endpoint,
            protocol,
            sampling_ratio,
            service_name,
            ca_file: CaFile::load("tracing.ca_file", raw.ca_file)?,
        }))
    }
}

/// The traces URL of `text`: a base URL gains `/v1/traces` (unless it ends
/// with it already); a signal-specific one is taken as written.
fn endpoint(text: &str, append: bool) -> Result<reqwest::Url, ConfigError> {
    const KEY: &str = "tracing.endpoint";
    let mut url = reqwest::Url::parse(text.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            ConfigError::invalid(
                KEY,
                format!("`{text}` is not an http(s) URL such as \"http://otel-collector:4318\""),
            )
        })?;
    if !url.username().is_empty() || url.password().is_some() {
        // The URL is printed in errors; a token belongs in a header.
        return Err(ConfigError::invalid(
            KEY,
            "holds credentials: send them as a header with OTEL_EXPORTER_OTLP_HEADERS instead",
        ));
    }
    if append && !url.path().ends_with(TRACES_PATH) {
        let path = format!("{}{TRACES_PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        raw: Option<RawTracing>,
        vars: &[(&str, &str)],
    ) -> Result<Option<TracingConfig>, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TracingConfig::from_raw(raw, &move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn section(endpoint: Option<&str>) -> Option<RawTracing> {
        Some(RawTracing {
            endpoint: endpoint.map(str::to_owned),
            ..RawTracing::default()
        })
    }

    #[test]
    fn where_spans_go() {
        // (the file's endpoint, variables, the traces URL; None = off)
        type Case = (
            Option<RawTracing>,
            &'static [(&'static str, &'static str)],
            Option<&'static str>,
        );
        let cases: [Case; 8] = [
            (None, &[], None),
            (
                section(Some("http://c:4318")),
                &[],
                Some("http://c:4318/v1/traces"),
            ),
            (
                section(Some("http://c:4318/")),
                &[],
                Some("http://c:4318/v1/traces"),
            ),
            (
                section(Some("https://apm.example/otlp/v1/traces")),
                &[],
                Some("https://apm.example/otlp/v1/traces"),
            ),
            (
                None,
                &[(OTLP_ENDPOINT_ENV, "http://env:4318")],
                Some("http://env:4318/v1/traces"),
            ),
            (
                None,
                &[
                    (OTLP_ENDPOINT_ENV, "http://env:4318"),
                    (OTLP_TRACES_ENDPOINT_ENV, "http://traces:9/custom"),
                ],
                Some("http://traces:9/custom"),
            ),
            (
                section(Some("http://file:4318")),
                &[(OTLP_ENDPOINT_ENV, "http://env:4318")],
                Some("http://file:4318/v1/traces"),
            ),
            (
                section(Some("http://file:4318")),
                &[(SDK_DISABLED_ENV, "true")],
                None,
            ),
        ];
        for (raw, vars, expected) in cases {
            let got = parse(raw, vars).unwrap().map(|t| t.endpoint.to_string());
            assert_eq!(got.as_deref(), expected, "{vars:?}");
        }
    }

    #[test]
    fn defaults_and_the_service_name() {
        let config = parse(section(Some("http://c:4318")), &[]).unwrap().unwrap();
        assert_eq!(config.protocol, OtlpProtocol::Protobuf);
        assert_eq!(config.sampling_ratio, 1.0);
        assert_eq!(config.service_name, "wxgate");
        let from_env = parse(
            None,
            &[
                (OTLP_ENDPOINT_ENV, "http://env:4318"),
                (SERVICE_NAME_ENV, "wxgate-orders"),
                (OTLP_PROTOCOL_ENV, "http/json"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(from_env.service_name, "wxgate-orders");
        assert_eq!(from_env.protocol, OtlpProtocol::Json);
    }

    #[test]
    fn mistakes_name_their_key() {
        let bad = |raw: RawTracing| match parse(Some(raw), &[]) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        let with = |f: fn(&mut RawTracing)| {
            let mut raw = RawTracing {
                endpoint: Some("http://c:4318".to_owned()),
                ..RawTracing::default()
            };
            f(&mut raw);
            raw
        };
        assert_eq!(bad(RawTracing::default()), "tracing.endpoint");
        assert_eq!(
            bad(with(|r| r.endpoint = Some("c:4318".to_owned()))),
            "tracing.endpoint"
        );
        assert_eq!(
            bad(with(
                |r| r.endpoint = Some("http://user:pw@c:4318".to_owned())
            )),
            "tracing.endpoint"
        );
        assert_eq!(
            bad(with(|r| r.protocol = Some("grpc".to_owned()))),
            "tracing.protocol"
        );
        for ratio in [-0.1, 1.5, f64::NAN] {
            let mut raw = with(|_| {});
            raw.sampling_ratio = Some(ratio);
            assert_eq!(bad(raw), "tracing.sampling_ratio");
        }
        assert_eq!(
            bad(with(|r| r.service_name = Some(" ".to_owned()))),
            "tracing.service_name"
        );
    }
}
