//! One HTTP client for every WeChat API call, and one way to read answers.
//!
//! WeChat answers with JSON whatever its `Content-Type` says (often
//! `text/plain`); a success may carry no `errcode` at all, so a missing one
//! means 0. An HTML error page from a relay, a 5xx or a body that is not
//! JSON is an upstream failure (502), never a crash. Request URLs carry the
//! app secret or an access token, so error messages are built without them.
//!
//! At most `wechat.max_in_flight` calls are out at once. Each one is made
//! with the app's credentials and counts against its WeChat quota, and a
//! flood of logins must not become a flood of calls (45011 would then hit
//! every user of the app): a call beyond the bound waits up to
//! [`QUEUE_WAIT`] for a slot, then fails as `Saturated` (503 `wechat_busy`).

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::WeChatError;
use crate::config::WechatConfig;
use crate::metrics::WechatMetrics;
use crate::telemetry::{KeyValue, Span, SpanKind};
use crate::wire::describe;

/// Longest a call waits for one of the `max_in_flight` slots.
pub(super) const QUEUE_WAIT: Duration = Duration::from_secs(1);

pub(super) struct ApiClient {
    http: reqwest::Client,
    slots: Semaphore,
    base: String,
    timeout: Duration,
    metrics: WechatMetrics,
}

impl ApiClient {
    pub(super) fn new(
        config: &WechatConfig,
        metrics: WechatMetrics,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::config::trusting(
            reqwest::Client::builder()
                .timeout(config.timeout)
                .connect_timeout(config.timeout),
            config.ca_file.as_ref(),
        )?
        .build()?;
        Ok(Self {
            http,
            slots: Semaphore::new(config.max_in_flight),
            base: config.api_base.clone(),
            timeout: config.timeout,
            metrics,
        })
    }

    /// The app's WeChat counters.
    pub(super) fn metrics(&self) -> &WechatMetrics {
        &self.metrics
    }

    /// How long a caller may wait for one call: a slot, then the answer.
    pub(super) fn call_bound(&self) -> Duration {
        QUEUE_WAIT + self.timeout
    }

    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, WeChatError> {
        let request = self.http.get(format!("{}{path}", self.base)).query(query);
        self.send("GET", path, request).await
    }

    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<T, WeChatError> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .query(query)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send("POST", path, request).await
    }

    /// Sends and reads the answer, counting it by api and result, in a
    /// client span (the path only: the query holds the secret or token).
    async fn send<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, WeChatError> {
        let span = Span::start(SpanKind::Client, || {
            let url = reqwest::Url::parse(&self.base).ok();
            let host = url.as_ref().and_then(|u| u.host_str()).unwrap_or_default();
            let mut attributes = vec![
                KeyValue::new("http.request.method", method),
                KeyValue::new("server.address", host.to_owned()),
                KeyValue::new("url.template", path.to_owned()),
                KeyValue::new("wxgate.wechat.api", api_name(path)),
            ];
            if let Some(port) = url.and_then(|u| u.port_or_known_default()) {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
            (format!("{method} {path}").into(), attributes)
        });
        let started = Instant::now();
        // The semaphore is never closed: an acquire fails only by waiting too long.
        let result = match tokio::time::timeout(QUEUE_WAIT, self.slots.acquire()).await {
            Ok(Ok(_slot)) => self.exchange(request).await,
            _ => Err(WeChatError::Saturated(QUEUE_WAIT)),
        };
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => {
                let label = e.label();
                span.fail(label.clone());
                label
            }
        };
        self.metrics
            .call(api_name(path), outcome, started.elapsed());
        result
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, WeChatError> {
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        if !response.status().is_success() {
            return Err(WeChatError::Status(response.status().as_u16()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        parse(&body)
    }

    fn transport_error(&self, e: reqwest::Error) -> WeChatError {
        if e.is_timeout() {
            return WeChatError::Timeout(self.timeout);
        }
        // The URL carries the app secret or an access token.
        WeChatError::Unreachable(describe(&e.without_url()))
    }
}

/// The metric label of an API path: its last segment, from a fixed set so
/// the label cannot grow without bound.
fn api_name(path: &str) -> &'static str {
    match path.rsplit('/').next() {
        Some("jscode2session") => "jscode2session",
        Some("stable_token") => "stable_token",
        Some("getuserphonenumber") => "getuserphonenumber",
        Some("getticket") => "getticket",
        Some("checksession") => "checksession",
        Some("access_token") => "oauth2_access_token",
        Some("userinfo") => "userinfo",
        _ => "other",
    }
}

/// Reads an answer: `errcode` (missing = 0) first, then the expected shape.
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, WeChatError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| WeChatError::BadResponse("body is not JSON"))?;
    if !value.is_object() {
        return Err(WeChatError::BadResponse("body is not a JSON object"));
    }
    let errcode = match value.get("errcode") {
        None | Some(serde_json::Value::Null) => 0,
        Some(code) => code
            .as_i64()
            .ok_or(WeChatError::BadResponse("errcode is not a number"))?,
    };
    if errcode != 0 {
        let errmsg = value
            .get("errmsg")
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        return Err(WeChatError::Api {
            errcode,
            errmsg: errmsg.to_owned(),
        });
    }
    serde_json::from_value(value).map_err(|_| WeChatError::BadResponse("unexpected answer shape"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Answer {
        value: i32,
    }

    #[test]
    fn parse_table() {
        assert_eq!(parse::<Answer>(br#"{"value":1}"#).unwrap().value, 1);
        assert_eq!(
            parse::<Answer>(br#"{"errcode":0,"errmsg":"ok","value":2}"#)
                .unwrap()
                .value,
            2
        );
        assert!(matches!(
            parse::<Answer>(br#"{"errcode":40029,"errmsg":"invalid code"}"#),
            Err(WeChatError::Api { errcode: 40029, .. })
        ));
        for broken in [
            &b"<html>502</html>"[..],
            b"",
            b"[1]",
            br#"{"errcode":"x"}"#,
            br#"{"other":1}"#,
        ] {
            assert!(
                matches!(parse::<Answer>(broken), Err(WeChatError::BadResponse(_))),
                "{broken:?}"
            );
        }
    }
}
