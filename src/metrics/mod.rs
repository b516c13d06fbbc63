//! Prometheus metrics, served on the admin port's `/metrics`.
//!
//! Every metric name is a constant in [`names`], so dashboards and alerts
//! have one list to read. Labelled series that the request path touches are
//! created once at start-up and kept as handles: counting a request is an
//! atomic add, with no label-map lookup; histograms too (`histogram.rs`:
//! atomics, where prometheus-client's own takes a mutex all workers share).
//!
//! Each `App` owns its own [`Metrics`] (no global registry), so tests that
//! run several gateways in one process see only their own figures.
//!
//! Below the domain: the store, WeChat clients and binding are handed
//! their handles ([`StoreMetrics`], [`WechatMetrics`], [`BindingMetrics`])
//! and this module imports none of them.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use histogram::SecondsHistogram;
pub use outcome::Outcome;

mod histogram;
mod outcome;

/// Binding calls by result (`domain::binding` counts them).
pub type BindingMetrics = Family<[(&'static str, &'static str); 1], Counter>;

/// Spans by what became of them: `[exported, dropped, failed]`
/// (`telemetry::export` counts them).
#[derive(Clone, Debug, Default)]
pub struct SpanMetrics {
    /// Received by the collector.
    pub exported: Counter,
    /// Not queued: the export queue was full (a collector slow or down).
    pub dropped: Counter,
    /// Sent, and refused or never answered.
    pub failed: Counter,
}

/// Metric names. Counters gain `_total` when exposed.
// Each name is its metric, described once in docs/operating.md (and the
// registry's help text); tests/it/prometheus.rs checks the rules and the
// dashboard use only these.
#[allow(missing_docs)]
pub mod names {
    pub const BUILD: &str = "wxgate_build";
    pub const REQUESTS: &str = "wxgate_requests";
    pub const REQUEST_DURATION: &str = "wxgate_request_duration_seconds";
    pub const REQUESTS_IN_FLIGHT: &str = "wxgate_requests_in_flight";
    pub const DRAINING: &str = "wxgate_draining";
    pub const UPSTREAM_DURATION: &str = "wxgate_upstream_duration_seconds";
    pub const LOGINS: &str = "wxgate_logins";
    pub const WECHAT_API_CALLS: &str = "wxgate_wechat_api_calls";
    pub const WECHAT_TOKENS_FETCHED: &str = "wxgate_wechat_tokens_fetched";
    pub const WECHAT_DURATION: &str = "wxgate_wechat_request_duration_seconds";
    pub const SESSIONS_LIVE: &str = "wxgate_sessions_live";
    pub const SESSION_LOOKUPS: &str = "wxgate_session_lookups";
    pub const STORE_ERRORS: &str = "wxgate_store_errors";
    pub const STORE_UP: &str = "wxgate_store_up";
    pub const STORE_DURATION: &str = "wxgate_store_command_duration_seconds";
    pub const STORE_STALE_SERVED: &str = "wxgate_store_stale_served";
    pub const STORE_REVOCATIONS: &str = "wxgate_store_revocations_heard";
    pub const BINDING_REQUESTS: &str = "wxgate_binding_requests";
    pub const CONFIG_RELOADS: &str = "wxgate_config_reloads";
    pub const UNTRUSTED_FORWARDED: &str = "wxgate_untrusted_forwarded";
    pub const TRACE_SPANS: &str = "wxgate_trace_spans";
}

/// The media type `encode` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The status classes requests are counted by (`wxgate_requests_total{status}`).
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

type Labels1 = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

/// Every metric family, registered once; the handles below are given to
/// the parts that count.
pub struct Metrics {
    registry: Registry,
    requests: Vec<[Counter; 5]>,
    request_duration: Vec<SecondsHistogram>,
    in_flight: Gauge,
    draining: Gauge,
    /// One per upstream, in config order (`UpstreamRoute::index`).
    upstream_duration: Vec<SecondsHistogram>,
    logins: Family<[(&'static str, String); 2], Counter>,
    sessions_live: Gauge,
    /// SIGHUP reloads: `[applied, refused]`.
    config_reloads: [Counter; 2],
    /// The WeChat clients' counters.
    pub wechat: WechatMetrics,
    /// The session store's counters.
    pub store: StoreMetrics,
    /// The binding client's counters.
    pub binding: BindingMetrics,
    /// The span exporter's counters (`[tracing]`).
    pub spans: SpanMetrics,
    /// Requests that came with `X-Forwarded-For` from a peer outside
    /// `server.trusted_proxies` (`proxy::UntrustedForwarded`).
    pub untrusted_forwarded: Counter,
}

impl Metrics {
    /// `upstreams`: the upstreams' prefixes, in config order, for their duration series.
    pub fn new(upstreams: &[&str]) -> Self {
        let mut registry = Registry::default();
        registry.register(
            names::BUILD,
            "wxgate version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );

        let requests_family = Family::<Labels2, Counter>::default();
        let requests = Outcome::ALL
            .iter()
            .map(|outcome| {
                STATUS_CLASSES.map(|class| {
                    requests_family
                        .get_or_create_owned(&[("outcome", outcome.as_str()), ("status", class)])
                })
            })
            .collect();
        registry.register(
            names::REQUESTS,
            "Requests answered, by outcome and status class",
            requests_family,
        );

        let duration_family = Family::<Labels1, SecondsHistogram>::default();
        let request_duration = Outcome::ALL
            .iter()
            .map(|o| duration_family.get_or_create_owned(&[("outcome", o.as_str())]))
            .collect();
        registry.register(
            names::REQUEST_DURATION,
            "Time to the response head, by outcome",
            duration_family,
        );

        let in_flight = Gauge::default();
        registry.register(
            names::REQUESTS_IN_FLIGHT,
            "Requests being handled now",
            in_flight.clone(),
        );
        let draining = Gauge::default();
        registry.register(
            names::DRAINING,
            "1 once shutdown has begun (SIGTERM): /readyz says draining",
            draining.clone(),
        );
        let upstream_family = Family::<[(&'static str, String); 1], SecondsHistogram>::default();
        let upstream_duration = upstreams
            .iter()
            .map(|prefix| {
                upstream_family.get_or_create_owned(&[("upstream", (*prefix).to_owned())])
            })
            .collect();
        registry.register(
            names::UPSTREAM_DURATION,
            "Time from forwarding a request to the upstream's response head, by upstream (its prefix)",
            upstream_family,
        );
        let logins = Family::<[(&'static str, String); 2], Counter>::default();
        registry.register(
            names::LOGINS,
            "Logins, by result (ok or the error code) and app (the AppID; \"none\" before one was chosen)",
            logins.clone(),
        );
        let sessions_live = Gauge::default();
        registry.register(
            names::SESSIONS_LIVE,
            "Sessions held by this replica's memory store (0 with Redis)",
            sessions_live.clone(),
        );

        let reloads_family = Family::<Labels1, Counter>::default();
        let config_reloads = ["applied", "refused"]
            .map(|result| reloads_family.get_or_create_owned(&[("result", result)]));
        registry.register(
            names::CONFIG_RELOADS,
            "Config reloads (SIGHUP), by result: applied, or refused (the file does not load, \
             changes a setting that needs a restart, or holds credentials WeChat refuses)",
            reloads_family,
        );

        let wechat = WechatMetrics::default();
        registry.register(
            names::WECHAT_API_CALLS,
            "WeChat API calls, by app, api and result (ok; WeChat's errcode; timeout, unreachable, http_NNN, bad_response, saturated)",
            wechat.calls.clone(),
        );
        registry.register(
            names::WECHAT_TOKENS_FETCHED,
            "Access tokens and jsapi_tickets this replica fetched from WeChat, by app, token and forced (a forced refresh)",
            wechat.fetched.clone(),
        );
        registry.register(
            names::WECHAT_DURATION,
            "WeChat API call duration, by api and app",
            wechat.duration.clone(),
        );
        let store = StoreMetrics::default();
        registry.register(
            names::SESSION_LOOKUPS,
            "Session lookups, by layer (memory, local, redis) and result (hit, miss)",
            store.0.family.clone(),
        );
        registry.register(
            names::STORE_ERRORS,
            "Session store commands that failed or timed out",
            store.0.errors.clone(),
        );
        registry.register(
            names::STORE_DURATION,
            "Time a Redis command (or pipeline, or script) took, failures included",
            store.0.duration.clone(),
        );
        registry.register(
            names::STORE_UP,
            "1 while the session store answers (and, with Redis, revocations are heard)",
            store.0.up.clone(),
        );
        registry.register(
            names::STORE_REVOCATIONS,
            "Revocations (logouts, changed users) heard from other replicas and applied to the local cache",
            store.0.revocations.clone(),
        );
        registry.register(
            names::STORE_STALE_SERVED,
            "Sessions served from the local cache past local_ttl while Redis was unreachable \
             (session.stale_if_error)",
            store.0.stale_served.clone(),
        );

        let binding = BindingMetrics::default();
        registry.register(
            names::BINDING_REQUESTS,
            "Binding endpoint calls, by result (bound, not_found, error, timeout, unreachable, bad_response)",
            binding.clone(),
        );

        let untrusted_forwarded = Counter::default();
        registry.register(
            names::UNTRUSTED_FORWARDED,
            "Requests with X-Forwarded-For from a peer outside server.trusted_proxies, on a \
             listener beyond loopback: behind a proxy, every client then shares the proxy's \
             login rate-limit bucket",
            untrusted_forwarded.clone(),
        );

        let span_results = Family::<Labels1, Counter>::default();
        let [exported, dropped, failed] = ["exported", "dropped", "failed"]
            .map(|result| span_results.get_or_create_owned(&[("result", result)]));
        let spans = SpanMetrics {
            exported,
            dropped,
            failed,
        };
        registry.register(
            names::TRACE_SPANS,
            "Spans ([tracing]), by result: exported (the collector took them), dropped (the \
             export queue was full: the collector slow or down), failed (sent, and refused or \
             never answered)",
            span_results,
        );
        Self {
            registry,
            requests,
            request_duration,
            in_flight,
            draining,
            upstream_duration,
            logins,
            sessions_live,
            config_reloads,
            wechat,
            store,
            binding,
            spans,
            untrusted_forwarded,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, outcome: Outcome, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[outcome as usize][class].inc();
        self.request_duration[outcome as usize].observe(elapsed);
    }

    /// Counts a config reload, applied or refused.
    pub fn config_reload(&self, applied: bool) {
        self.config_reloads[usize::from(!applied)].inc();
    }

    /// Counts a request for as long as the returned guard lives.
    /// Shutdown has begun.
    pub fn draining(&self) {
        self.draining.set(1);
    }

    /// Counts a request in flight until the handle is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// A response head from upstream `index` (config order) after `elapsed`.
    pub fn upstream(&self, index: usize, elapsed: Duration) {
        if let Some(histogram) = self.upstream_duration.get(index) {
            histogram.observe(elapsed);
        }
    }

    /// Counts a login for `app` (`None`: refused before an app was chosen).
    pub fn login(&self, result: &'static str, app: Option<&str>) {
        let labels = [
            ("result", result.to_owned()),
            ("app", app.unwrap_or("none").to_owned()),
        ];
        self.logins.get_or_create(&labels).inc();
    }

    /// The exposition text; `live_sessions` is read at scrape time.
    pub fn encode(&self, live_sessions: u64) -> String {
        self.sessions_live
            .set(i64::try_from(live_sessions).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    /// With one upstream, `/`.
    fn default() -> Self {
        Self::new(&["/"])
    }
}

/// A request in flight: the gauge goes down when it is dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// WeChat API calls of one app ([`Self::for_app`]); cloned into its WeChat client.
#[derive(Clone, Default)]
pub struct WechatMetrics {
    calls: Family<[(&'static str, String); 3], Counter>,
    fetched: Family<[(&'static str, String); 3], Counter>,
    duration: Family<[(&'static str, String); 2], SecondsHistogram>,
    app: String,
}

impl WechatMetrics {
    /// The same series, labelled with `appid`.
    pub fn for_app(&self, appid: &str) -> Self {
        Self {
            app: appid.to_owned(),
            ..self.clone()
        }
    }

    /// One call to `api`, answered with `result` after `elapsed`.
    pub fn call(&self, api: &'static str, result: String, elapsed: Duration) {
        let app = ("app", self.app.clone());
        self.calls
            .get_or_create(&[app.clone(), ("api", api.to_owned()), ("result", result)])
            .inc();
        self.duration
            .get_or_create(&[("api", api.to_owned()), app])
            .observe(elapsed);
    }

    /// A token (`access_token`, `jsapi_ticket`) fetched from WeChat, with
    /// `force_refresh` or not.
    pub fn fetched(&self, token: &'static str, forced: bool) {
        let forced = if forced { "true" } else { "false" };
        self.fetched
            .get_or_create(&[
                ("app", self.app.clone()),
                ("token", token.to_owned()),
                ("forced", forced.to_owned()),
            ])
            .inc();
    }
}

/// Session store lookups and errors; cloned into the store (one pointer).
#[derive(Clone, Default)]
pub struct StoreMetrics(Arc<StoreCounters>);

struct StoreCounters {
    family: Family<Labels2, Counter>,
    /// Indexed by `Layer as usize * 2 + miss`.
    lookups: [Counter; 6],
    errors: Counter,
    up: Gauge,
    stale_served: Counter,
    revocations: Counter,
    duration: SecondsHistogram,
}

/// Where a session lookup was answered.
#[derive(Debug, Clone, Copy)]
pub enum Layer {
    /// The memory store (`store = "memory"`).
    Memory,
    /// A Redis replica's local cache.
    Local,
    /// Redis itself.
    Redis,
}

impl Default for StoreCounters {
    fn default() -> Self {
        let family = Family::<Labels2, Counter>::default();
        let lookups = [
            ("memory", "hit"),
            ("memory", "miss"),
            ("local", "hit"),
            ("local", "miss"),
            ("redis", "hit"),
            ("redis", "miss"),
        ]
        .map(|(layer, result)| family.get_or_create_owned(&[("layer", layer), ("result", result)]));
        let up = Gauge::default();
        // The memory store is always up; Redis's health check says otherwise.
        up.set(1);
        Self {
            family,
            lookups,
            errors: Counter::default(),
            up,
            stale_served: Counter::default(),
            revocations: Counter::default(),
            duration: SecondsHistogram::default(),
        }
    }
}

impl StoreMetrics {
    /// A session lookup in `layer`.
    pub fn lookup(&self, layer: Layer, hit: bool) {
        self.0.lookups[layer as usize * 2 + usize::from(!hit)].inc();
    }

    /// A Redis command that failed or timed out.
    pub fn error(&self) {
        self.0.errors.inc();
    }

    /// A Redis command's latency.
    pub fn command(&self, elapsed: Duration) {
        self.0.duration.observe(elapsed);
    }

    /// Whether the store answers (and hears revocations).
    pub fn set_up(&self, up: bool) {
        self.0.up.set(i64::from(up));
    }

    /// A session served past `local_ttl` during an outage.
    pub fn stale_served(&self) {
        self.0.stale_served.inc();
    }

    /// A revocation from another replica applied here.
    pub fn revocation_heard(&self) {
        self.0.revocations.inc();
    }
}
