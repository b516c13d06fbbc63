//! One typed struct per config section, each built from its raw twin.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use http::HeaderName;
use http::uri::{Authority, Scheme, Uri};
use ipnet::IpNet;

use super::raw::{RawHeaders, RawLogin, RawServer, RawSession, RawUpstream, RawWechat};
use super::{ConfigError, duration};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    /// Worker threads, one listener each; defaults to the cores available.
    pub threads: usize,
    /// Requests one worker serves at once; past it, 503 `overloaded`.
    pub max_in_flight: usize,
    /// A request body that sends nothing for this long is ended (408).
    pub body_idle_timeout: Duration,
    /// Peers whose `X-Forwarded-For` says who the client is (ingress, LB).
    pub trusted_proxies: Vec<IpNet>,
}

impl ServerConfig {
    pub(super) fn from_raw(raw: RawServer) -> Result<Self, ConfigError> {
        let listen = super::socket_addr("server.listen", raw.listen.as_deref(), "0.0.0.0:8080")?;
        let drain_timeout = super::timeout("server.drain_timeout", raw.drain_timeout, "20s")?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = raw.threads.unwrap_or(cores);
        if threads == 0 || threads > 1024 {
            return Err(ConfigError::invalid(
                "server.threads",
                "must be between 1 and 1024",
            ));
        }
        let max_in_flight = raw.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if max_in_flight == 0 {
            return Err(ConfigError::invalid(
                "server.max_in_flight",
                "must be at least 1",
            ));
        }
        let body_idle_timeout =
            super::timeout("server.body_idle_timeout", raw.body_idle_timeout, "30s")?;
        let trusted_proxies = raw
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|text| cidr(text))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            listen,
            drain_timeout,
            threads,
            max_in_flight,
            body_idle_timeout,
            trusted_proxies,
        })
    }
}

/// Requests in flight per worker thread by default: far above what one
/// core serves at sidecar latencies, low enough to shed a flood early.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

/// `10.0.0.0/8`, `fd00::/8`, or a bare address (one host).
fn cidr(text: &str) -> Result<IpNet, ConfigError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| {
            ConfigError::invalid(
                "server.trusted_proxies",
                format!("`{text}` is not an address or CIDR such as \"10.0.0.0/8\""),
            )
        })
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Always plain HTTP (checked at load).
    pub authority: Authority,
    /// Prepended to every forwarded path; empty or starting with `/`, never ending with one.
    pub path_prefix: String,
    /// Time allowed for the upstream to answer with a status line and headers.
    /// Bodies stream without a deadline, so large downloads are not cut off.
    pub timeout: Duration,
    /// Protocols a client may upgrade to (lower case); any other upgrade
    /// request is refused before it reaches the backend.
    pub upgrades: Vec<String>,
}

impl UpstreamConfig {
    pub(super) fn from_raw(raw: RawUpstream) -> Result<Self, ConfigError> {
        const KEY: &str = "upstream.url";
        let text = raw
            .url
            .ok_or_else(|| ConfigError::invalid(KEY, "missing; e.g. \"http://127.0.0.1:3000\""))?;
        let uri: Uri = text
            .parse()
            .map_err(|e| ConfigError::invalid(KEY, format!("`{text}` is not a URL: {e}")))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(ConfigError::invalid(
                KEY,
                format!(
                    "`{text}` must start with http:// (wxgate talks plain HTTP to its backend)"
                ),
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| ConfigError::invalid(KEY, format!("`{text}` has no host")))?;
        if uri.query().is_some() {
            return Err(ConfigError::invalid(
                KEY,
                format!("`{text}` must not have a query"),
            ));
        }
        let path_prefix = uri.path().trim_end_matches('/').to_owned();
        let timeout = super::timeout("upstream.timeout", raw.timeout, "30s")?;
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
                    Err(ConfigError::invalid(
                        "upstream.upgrades",
                        format!("`{token}` is not a protocol name such as \"websocket\""),
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            authority,
            path_prefix,
            timeout,
            upgrades,
        })
    }

    pub fn is_loopback(&self) -> bool {
        self.socket_addr().is_some_and(|a| a.ip().is_loopback())
    }

    /// `host:port` to connect to (port 80 when the URL names none); an IPv6
    /// host keeps its brackets, as `Authority::host` gives it.
    pub fn address(&self) -> String {
        let port = self.authority.port_u16().unwrap_or(80);
        format!("{}:{port}", self.authority.host())
    }

    /// The upstream as a socket address, when its host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let host = self
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ip: IpAddr = host.parse().ok()?;
        Some(SocketAddr::new(ip, self.authority.port_u16().unwrap_or(80)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WechatMode {
    /// Exchange codes with WeChat's real `jscode2session` API.
    Live,
    /// Dev mode: any code logs in as an openid derived from it. Never for production.
    Mock,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WechatConfig {
    pub appid: String,
    pub secret: Secret,
    /// Base URL of WeChat's API, without a trailing slash.
    pub api_base: String,
    pub timeout: Duration,
    pub mode: WechatMode,
    pub mock_allow_non_loopback: bool,
    /// WeChat calls in flight at once; more wait up to a second, then 503.
    pub max_in_flight: usize,
}

impl WechatConfig {
    pub(super) fn from_raw(
        raw: RawWechat,
        secret_env: Option<String>,
    ) -> Result<Self, ConfigError> {
        let mode = match raw.mode.as_deref().unwrap_or("live") {
            "live" => WechatMode::Live,
            "mock" => WechatMode::Mock,
            other => {
                return Err(ConfigError::invalid(
                    "wechat.mode",
                    format!("`{other}` is not one of \"live\", \"mock\""),
                ));
            }
        };
        let appid = raw.appid.unwrap_or_default();
        if appid.is_empty() || !appid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConfigError::invalid(
                "wechat.appid",
                "missing or not alphanumeric; it is the mini-program's AppID, e.g. \"wx1234567890abcdef\"",
            ));
        }
        let secret = Secret::new(secret_env.or(raw.secret).unwrap_or_default());
        if mode == WechatMode::Live && secret.is_empty() {
            return Err(ConfigError::invalid(
                "wechat.secret",
                format!(
                    "missing; set it in the file or, better, in the {} environment variable",
                    super::SECRET_ENV
                ),
            ));
        }
        let api_base = raw
            .api_base
            .unwrap_or_else(|| "https://api.weixin.qq.com".to_owned());
        let parsed: Uri = api_base.parse().map_err(|e| {
            ConfigError::invalid("wechat.api_base", format!("`{api_base}` is not a URL: {e}"))
        })?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return Err(ConfigError::invalid(
                "wechat.api_base",
                format!("`{api_base}` must be an http:// or https:// URL"),
            ));
        }
        Ok(Self {
            appid,
            secret,
            api_base: api_base.trim_end_matches('/').to_owned(),
            timeout: super::timeout("wechat.timeout", raw.timeout, "5s")?,
            mode,
            mock_allow_non_loopback: raw.mock_allow_non_loopback.unwrap_or(false),
            max_in_flight: match raw.max_in_flight.unwrap_or(64) {
                0 => {
                    return Err(ConfigError::invalid(
                        "wechat.max_in_flight",
                        "must be at least 1",
                    ));
                }
                n => n,
            },
        })
    }
}

/// `/login` attempts per client IP: a token bucket (GCRA) refilled at
/// `rate` per second, holding at most `burst`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginConfig {
    /// One token every this long.
    pub period: Duration,
    pub burst: NonZeroU32,
}

impl LoginConfig {
    pub(super) fn from_raw(raw: RawLogin) -> Result<Self, ConfigError> {
        // Generous on purpose: a carrier-grade NAT puts many phones behind one IP.
        let rate = raw.rate.unwrap_or(10.0);
        if !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0) {
            return Err(ConfigError::invalid(
                "login.rate",
                "must be a number of logins per second above 0, e.g. 10 or 0.5",
            ));
        }
        let burst = NonZeroU32::new(raw.burst.unwrap_or(100))
            .ok_or_else(|| ConfigError::invalid("login.burst", "must be at least 1"))?;
        Ok(Self {
            period: Duration::from_secs_f64(1.0 / rate),
            burst,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Absolute lifetime of a session, counted from login.
    pub ttl: Duration,
    /// Optional sliding idle timeout: a session unused this long ends early.
    pub idle: Option<Duration>,
    /// Most sessions held at once; the least recently used go first.
    pub capacity: u64,
    pub header: HeaderName,
    pub forward_session_header: bool,
}

impl SessionConfig {
    pub(super) fn from_raw(raw: RawSession) -> Result<Self, ConfigError> {
        let ttl = duration("session.ttl", raw.ttl, "7d")?;
        if ttl.is_zero() {
            return Err(ConfigError::invalid(
                "session.ttl",
                "must be longer than 0s",
            ));
        }
        let idle = match raw.idle {
            None => None,
            Some(text) => {
                let idle = duration("session.idle", Some(text), "")?;
                if idle.is_zero() {
                    return Err(ConfigError::invalid(
                        "session.idle",
                        "must be longer than 0s; leave it out to disable the idle timeout",
                    ));
                }
                Some(idle)
            }
        };
        let capacity = raw.capacity.unwrap_or(1_000_000);
        if capacity == 0 {
            return Err(ConfigError::invalid(
                "session.capacity",
                "must be at least 1",
            ));
        }
        let header = header_name("session.header", raw.header, "X-Session-Id")?;
        Ok(Self {
            ttl,
            idle,
            capacity,
            header,
            forward_session_header: raw.forward_session_header.unwrap_or(false),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeadersConfig {
    pub openid: HeaderName,
    /// The bound user id (`[binding]`); stripped from clients always.
    pub user_id: HeaderName,
    pub unionid: HeaderName,
    pub appid: HeaderName,
    /// Injected only when configured; `X-WX-Phone` is stripped from clients always.
    pub phone: Option<HeaderName>,
    /// Keep `X-Original-URL`, `X-HTTP-Method-Override`, … (stripped by default).
    pub pass_routing_overrides: bool,
}

impl HeadersConfig {
    pub(super) fn from_raw(raw: RawHeaders, session: &HeaderName) -> Result<Self, ConfigError> {
        let openid = header_name("headers.openid", raw.openid, "X-WX-OpenId")?;
        let user_id = header_name("headers.user_id", raw.user_id, "X-User-Id")?;
        let unionid = header_name("headers.unionid", raw.unionid, "X-WX-UnionId")?;
        let appid = header_name("headers.appid", raw.appid, "X-WX-AppId")?;
        let phone = raw
            .phone
            .map(|p| header_name("headers.phone", Some(p), ""))
            .transpose()?;
        let mut all = vec![
            ("headers.openid", &openid),
            ("headers.unionid", &unionid),
            ("headers.appid", &appid),
            ("headers.user_id", &user_id),
        ];
        if let Some(phone) = &phone {
            all.push(("headers.phone", phone));
        }
        for (i, (key, name)) in all.iter().enumerate() {
            let canon = crate::identity::canonical(name.as_str());
            if canon == crate::identity::canonical(session.as_str()) {
                return Err(ConfigError::invalid(key, "must differ from session.header"));
            }
            if all[..i]
                .iter()
                .any(|(_, other)| crate::identity::canonical(other.as_str()) == canon)
            {
                return Err(ConfigError::invalid(
                    key,
                    "must differ from the other identity headers",
                ));
            }
            if crate::hop_by_hop::is_hop_by_hop(name) {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{name}` is a hop-by-hop header and would never reach the upstream"),
                ));
            }
        }
        Ok(Self {
            openid,
            user_id,
            unionid,
            appid,
            phone,
            pass_routing_overrides: raw.pass_routing_overrides.unwrap_or(false),
        })
    }
}

pub(super) fn header_name(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<HeaderName, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    let name = HeaderName::try_from(text)
        .map_err(|_| ConfigError::invalid(key, format!("`{text}` is not a valid header name")))?;
    if crate::hop_by_hop::is_hop_by_hop(&name) {
        return Err(ConfigError::invalid(
            key,
            format!("`{text}` is a hop-by-hop header"),
        ));
    }
    Ok(name)
}
