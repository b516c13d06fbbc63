//! One typed struct per config section, each built from its raw twin.

// The typed sections' fields are their TOML keys, each documented once in
// docs/configuration.md (tests/it/docs.rs checks that every key the parser
// accepts is there): a doc comment per field would say it twice.
#![allow(missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use super::raw::{RawHeaders, RawLogin, RawServer, RawSession};
use super::tls::ServerTls;
use super::{ConfigError, duration};

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
    /// `tls_cert_file` and `tls_key_file`, loaded: the listener speaks TLS.
    pub tls: Option<ServerTls>,
    /// A cleartext connection may speak HTTP/2 with prior knowledge.
    pub h2c: bool,
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
        let tls = ServerTls::from_raw(raw.tls_cert_file, raw.tls_key_file)?;
        Ok(Self {
            listen,
            drain_timeout,
            threads,
            max_in_flight,
            body_idle_timeout,
            trusted_proxies,
            tls,
            h2c: raw.h2c.unwrap_or(false),
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
        let header = header_name("session.header", raw.header, DEFAULT_SESSION_HEADER)?;
        Ok(Self {
            ttl,
            idle,
            capacity,
            header,
            forward_session_header: raw.forward_session_header.unwrap_or(false),
        })
    }
}

/// `session.header`'s default.
pub const DEFAULT_SESSION_HEADER: &str = "X-Session-Id";

/// The defaults of `headers.openid`, `user_id`, `unionid` and `appid`:
/// stripped from clients whatever the config names instead, since a
/// backend may still read them.
pub const DEFAULT_IDENTITY_HEADERS: [&str; 4] =
    ["X-WX-OpenId", "X-User-Id", "X-WX-UnionId", "X-WX-AppId"];

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
    /// `assertion.header`: stripped from clients always, set by wxgate
    /// when `[assertion]` is on.
    pub assertion: HeaderName,
}

impl HeadersConfig {
    /// `assertion`: `assertion.header` as written.
    pub(super) fn from_raw(
        raw: RawHeaders,
        session: &HeaderName,
        assertion: Option<String>,
    ) -> Result<Self, ConfigError> {
        let [openid, user_id, unionid, appid] = DEFAULT_IDENTITY_HEADERS;
        let openid = header_name("headers.openid", raw.openid, openid)?;
        let user_id = header_name("headers.user_id", raw.user_id, user_id)?;
        let unionid = header_name("headers.unionid", raw.unionid, unionid)?;
        let appid = header_name("headers.appid", raw.appid, appid)?;
        let phone = raw
            .phone
            .map(|p| header_name("headers.phone", Some(p), ""))
            .transpose()?;
        let assertion = header_name(
            "assertion.header",
            assertion,
            super::DEFAULT_ASSERTION_HEADER,
        )?;
        let mut all = vec![
            ("headers.openid", &openid),
            ("headers.unionid", &unionid),
            ("headers.appid", &appid),
            ("headers.user_id", &user_id),
            ("assertion.header", &assertion),
        ];
        if let Some(phone) = &phone {
            all.push(("headers.phone", phone));
        }
        for (i, (key, name)) in all.iter().enumerate() {
            let canon = crate::wire::header::folded_name(name.as_str());
            if canon == crate::wire::header::folded_name(session.as_str()) {
                return Err(ConfigError::invalid(key, "must differ from session.header"));
            }
            if all[..i]
                .iter()
                .any(|(_, other)| crate::wire::header::folded_name(other.as_str()) == canon)
            {
                return Err(ConfigError::invalid(
                    key,
                    "must differ from the other identity headers",
                ));
            }
            if crate::wire::hop_by_hop::is_hop_by_hop(name) {
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
            assertion,
        })
    }
}

/// The default identity, session and assertion header names, lower case
/// (as `HeaderName::from_static` wants them).
const STATIC_NAMES: [&str; 7] = [
    "x-wx-openid",
    "x-user-id",
    "x-wx-unionid",
    "x-wx-appid",
    "x-wx-phone",
    "x-session-id",
    "x-wxgate-assertion",
];

pub(super) fn header_name(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<HeaderName, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    let name = HeaderName::try_from(text)
        .map_err(|_| ConfigError::invalid(key, format!("`{text}` is not a valid header name")))?;
    // The default names as static ones: a parsed name's bytes are shared
    // (an atomic count on every clone and drop), a static name's are not,
    // and wxgate clones each name it injects on every request.
    let name = STATIC_NAMES
        .iter()
        .find(|known| **known == name.as_str())
        .map_or(name, |known| HeaderName::from_static(known));
    if crate::wire::hop_by_hop::is_hop_by_hop(&name) {
        return Err(ConfigError::invalid(
            key,
            format!("`{text}` is a hop-by-hop header"),
        ));
    }
    Ok(name)
}
