//! `[upstream]` and `[[upstreams]]`: the backends wxgate forwards to.
//!
//! The single `[upstream]` table is one backend for every path (prefix
//! `/`), as before `[[upstreams]]` existed. `[[upstreams]]` entries route
//! by path prefix, whole segments, the longest prefix winning (as
//! oauth2-proxy's upstreams do); with `strip_prefix` the backend sees the
//! path without it. A path no upstream claims is `404 no_upstream`.
//! An entry's `public` routes hold only for requests routed to it.

// The typed sections' fields are their TOML keys, each documented once in
// docs/configuration.md (tests/it/docs.rs checks that every key the parser
// accepts is there): a doc comment per field would say it twice.
#![allow(missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::uri::{Authority, Scheme, Uri};

use super::ConfigError;
use super::raw::RawUpstream;
use super::routes::{PublicRoute, path, public_route};
use super::upstream_tls::{RawTls, TlsKeys, UpstreamTls};

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// The paths routed here: `/` (all) or a prefix without trailing `/`.
    pub prefix: String,
    /// Forward `/shop/a` as `/a` (prefix `/shop`).
    pub strip_prefix: bool,
    /// Public routes of this upstream only (client paths, under `prefix`).
    pub public: Vec<PublicRoute>,
    /// The URL's host and port.
    pub authority: Authority,
    /// `https://`: what its connections are made with.
    pub tls: Option<UpstreamTls>,
    /// Prepended to every forwarded path; empty or starting with `/`, never ending with one.
    pub path_prefix: String,
    /// Time allowed for the upstream to answer with a status line and headers.
    /// Bodies stream without a deadline, so large downloads are not cut off.
    pub timeout: Duration,
    /// Protocols a client may upgrade to (lower case); any other upgrade
    /// request is refused before it reaches the backend.
    pub upgrades: Vec<String>,
    /// `ready_check`: `/readyz` is 503 while this backend cannot serve.
    pub ready_check: Option<ReadyCheck>,
    /// The `aud` of the assertions made for requests routed here
    /// (`[assertion]`): `audience`, else the prefix, else (`/`) the URL.
    pub audience: String,
}

/// How `/readyz` tells that a backend can serve (a sidecar's app still
/// starting, a JVM not yet listening).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyCheck {
    /// `"tcp"`: it accepts a connection.
    Tcp,
    /// `"/path"`: `GET /path` answers 2xx or 3xx.
    Http(String),
}

/// The config keys of one table, for errors that name them.
struct Keys {
    url: &'static str,
    prefix: &'static str,
    timeout: &'static str,
    upgrades: &'static str,
    public: &'static str,
    ready_check: &'static str,
    audience: &'static str,
    tls: TlsKeys,
}

const UPSTREAM: Keys = Keys {
    url: "upstream.url",
    prefix: "upstream.prefix",
    timeout: "upstream.timeout",
    upgrades: "upstream.upgrades",
    public: "upstream.public",
    ready_check: "upstream.ready_check",
    audience: "upstream.audience",
    tls: TlsKeys {
        url: "upstream.url",
        ca_file: "upstream.ca_file",
        server_name: "upstream.tls_server_name",
        client_cert: "upstream.client_cert_file",
        client_key: "upstream.client_key_file",
    },
};

const UPSTREAMS: Keys = Keys {
    url: "upstreams.url",
    prefix: "upstreams.prefix",
    timeout: "upstreams.timeout",
    upgrades: "upstreams.upgrades",
    public: "upstreams.public",
    ready_check: "upstreams.ready_check",
    audience: "upstreams.audience",
    tls: TlsKeys {
        url: "upstreams.url",
        ca_file: "upstreams.ca_file",
        server_name: "upstreams.tls_server_name",
        client_cert: "upstreams.client_cert_file",
        client_key: "upstreams.client_key_file",
    },
};

/// Every upstream of the config, `[upstream]` first; at least one.
pub(super) fn from_raw(
    upstream: Option<RawUpstream>,
    upstreams: Vec<RawUpstream>,
) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let mut all: Vec<UpstreamConfig> = Vec::with_capacity(1 + upstreams.len());
    if upstream.is_some() || upstreams.is_empty() {
        all.push(UpstreamConfig::from_raw(
            upstream.unwrap_or_default(),
            &UPSTREAM,
            "",
        )?);
    }
    for (i, raw) in upstreams.into_iter().enumerate() {
        let entry = format!("[[upstreams]] entry {}: ", i + 1);
        if raw.prefix.is_none() {
            return Err(ConfigError::invalid(
                UPSTREAMS.prefix,
                format!("{entry}missing; the paths routed to this upstream, e.g. \"/shop\""),
            ));
        }
        let upstream = UpstreamConfig::from_raw(raw, &UPSTREAMS, &entry)?;
        if all.iter().any(|u| u.prefix == upstream.prefix) {
            return Err(ConfigError::invalid(
                UPSTREAMS.prefix,
                format!(
                    "{entry}`{}` is routed to another upstream already",
                    upstream.prefix
                ),
            ));
        }
        all.push(upstream);
    }
    Ok(all)
}

impl UpstreamConfig {
    fn from_raw(raw: RawUpstream, keys: &Keys, entry: &str) -> Result<Self, ConfigError> {
        let invalid = |key, message: String| ConfigError::invalid(key, format!("{entry}{message}"));
        let text = raw
            .url
            .ok_or_else(|| invalid(keys.url, "missing; e.g. \"http://127.0.0.1:3000\"".into()))?;
        let uri: Uri = text
            .parse()
            .map_err(|e| invalid(keys.url, format!("`{text}` is not a URL: {e}")))?;
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        if !https && uri.scheme() != Some(&Scheme::HTTP) {
            return Err(invalid(
                keys.url,
                format!("`{text}` must start with http:// or https://"),
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid(keys.url, format!("`{text}` has no host")))?;
        if uri.query().is_some() {
            return Err(invalid(keys.url, format!("`{text}` must not have a query")));
        }
        if !valid_port(&authority) {
            return Err(invalid(
                keys.url,
                format!("`{text}` has no valid port: a port is 1 to 65535"),
            ));
        }
        let tls = UpstreamTls::from_raw(
            RawTls {
                ca_file: raw.ca_file,
                server_name: raw.tls_server_name,
                client_cert_file: raw.client_cert_file,
                client_key_file: raw.client_key_file,
            },
            &keys.tls,
            https,
            authority.host(),
        )
        .map_err(|e| match e {
            ConfigError::Invalid { key, message } => invalid(key, message),
            other => other,
        })?;
        let path_prefix = uri.path().trim_end_matches('/').to_owned();
        if !path_prefix.is_empty() {
            super::routes::canonical(keys.url, &path_prefix)
                .map_err(|e| invalid(keys.url, e.message()))?;
        }
        let prefix = match path(keys.prefix, raw.prefix, "/")
            .map_err(|e| invalid(keys.prefix, e.message()))?
            .trim_end_matches('/')
        {
            "" => "/".to_owned(),
            trimmed => trimmed.to_owned(),
        };
        let strip_prefix = raw.strip_prefix.unwrap_or(false);
        let public = raw
            .public
            .unwrap_or_default()
            .into_iter()
            .map(|text| public_route(keys.public, text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(keys.public, e.message()))?;
        if let Some(outside) = public
            .iter()
            .find(|p| !crate::wire::canonical_path::under(&p.path, &prefix))
        {
            return Err(invalid(
                keys.public,
                format!(
                    "`{}` is not under this upstream's prefix `{prefix}`, so no request \
                     routed here could match it",
                    outside.path
                ),
            ));
        }
        let timeout = super::timeout(keys.timeout, raw.timeout, "30s")
            .map_err(|e| invalid(keys.timeout, e.message()))?;
        let upgrades = raw
            .upgrades
            .unwrap_or_else(|| vec!["websocket".to_owned()])
            .into_iter()
            .map(|token| {
                let valid = !token.is_empty()
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
                if valid {
                    Ok(token.to_ascii_lowercase())
                } else {
                    Err(invalid(
                        keys.upgrades,
                        format!("`{token}` is not a protocol name such as \"websocket\""),
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        let ready_check = match raw.ready_check.as_deref() {
            None => None,
            Some("tcp") => Some(ReadyCheck::Tcp),
            Some(path)
                if path.starts_with('/') && !path.bytes().any(|b| b <= b' ' || b == 0x7f) =>
            {
                Some(ReadyCheck::Http(path.to_owned()))
            }
            Some(other) => {
                return Err(invalid(
                    keys.ready_check,
                    format!("`{other}`: use \"tcp\" or a path such as \"/actuator/health\""),
                ));
            }
        };
        let audience = match raw.audience {
            Some(audience) if audience.is_empty() || audience.chars().any(char::is_control) => {
                return Err(invalid(
                    keys.audience,
                    "must be a non-empty string, e.g. \"orders\"".to_owned(),
                ));
            }
            Some(audience) => audience,
            None if prefix != "/" => prefix.clone(),
            None => text.trim_end_matches('/').to_owned(),
        };
        Ok(Self {
            audience,
            prefix,
            strip_prefix,
            public,
            authority,
            tls,
            path_prefix,
            timeout,
            upgrades,
            ready_check,
        })
    }

    pub fn is_loopback(&self) -> bool {
        self.socket_addr().is_some_and(|a| a.ip().is_loopback())
    }

    /// `host:port` to connect to (port 80, or 443 for https, when the URL
    /// names none); an IPv6 host keeps its brackets, as `Authority::host` gives it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.authority.host(), self.port())
    }

    fn port(&self) -> u16 {
        let default = if self.tls.is_some() { 443 } else { 80 };
        self.authority.port_u16().unwrap_or(default)
    }

    /// The upstream as a socket address, when its host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let host = self
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ip: IpAddr = host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port()))
    }
}

/// A port written in `authority` is 1 to 65535 (`http` reads a larger one
/// as none, which would be port 80).
pub(super) fn valid_port(authority: &Authority) -> bool {
    let text = authority.as_str();
    // `[::1]` alone has no port; `[::1]:3000` and `host:3000` have one.
    let written = match text.rsplit_once(']') {
        Some((_, rest)) => rest.strip_prefix(':'),
        None => text.rsplit_once(':').map(|(_, port)| port),
    };
    match written {
        None => true,
        Some(port) => port.parse::<u16>().is_ok_and(|port| port > 0),
    }
}
