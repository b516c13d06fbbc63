//! A test double of a business system's binding endpoint (`[binding] url`):
//! it answers `{"user_id": "acct-<openid>"}`, `"acct-union-<unionid>"`
//! when the request carries a unionid (one person across apps), or
//! `"acct-phone-<digits>"` when it carries a phone number, and records
//! every call.
//!
//! | mode        | answer                                   |
//! |-------------|------------------------------------------|
//! | `Bind`      | 200 with the user id above (after `delay`) |
//! | `NotFound`  | 404                                      |
//! | `Error`     | 500                                      |
//! | `Garbage`   | 200, an HTML page                        |
//! | `Slow`      | 200 after 5 s (past any test's timeout)  |
//! | `Redirect`  | 307 to `/followed`, which binds (a client that follows gets an id) |

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bind,
    NotFound,
    Error,
    Garbage,
    Slow,
    Redirect,
}

struct State {
    mode: Mode,
    delay: Duration,
    /// Every request: (Authorization header, JSON body).
    calls: Vec<(Option<String>, serde_json::Value)>,
    /// Every request's `traceparent` header.
    traceparents: Vec<Option<String>>,
    in_flight: usize,
    peak_in_flight: usize,
}

#[derive(Clone)]
pub struct BindingDouble {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl BindingDouble {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind double");
        let double = Self {
            addr: listener.local_addr().expect("addr"),
            state: Arc::new(Mutex::new(State {
                mode: Mode::Bind,
                delay: Duration::ZERO,
                calls: Vec::new(),
                traceparents: Vec::new(),
                in_flight: 0,
                peak_in_flight: 0,
            })),
        };
        let served = double.clone();
        super::serve(listener, move |req| {
            let double = served.clone();
            async move { double.answer(req).await }
        });
        double
    }

    pub fn url(&self) -> String {
        format!("http://{}/wx/bind", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Every `Bind` answer waits this long first.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// The calls so far: (Authorization header, body).
    pub fn calls(&self) -> Vec<(Option<String>, serde_json::Value)> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Each call's `traceparent`, in order.
    pub fn traceparents(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().traceparents.clone()
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let followed = req.uri().path() == "/followed";
        let traceparent = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = req.into_body().collect().await.map(|b| b.to_bytes());
        let body: serde_json::Value = body
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let (mode, delay) = {
            let mut state = self.state.lock().unwrap();
            state.calls.push((auth, body.clone()));
            state.traceparents.push(traceparent);
            state.in_flight += 1;
            state.peak_in_flight = state.peak_in_flight.max(state.in_flight);
            (state.mode, state.delay)
        };
        let mode = if followed { Mode::Bind } else { mode };
        let response = match mode {
            Mode::Redirect => Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", "/followed")
                .body(Full::new(Bytes::new()))
                .unwrap(),
            Mode::Bind => {
                tokio::time::sleep(delay).await;
                let id = match (body["phone"].as_str(), body["unionid"].as_str()) {
                    (Some(phone), _) => format!("acct-phone-{phone}"),
                    (None, Some(unionid)) => format!("acct-union-{unionid}"),
                    (None, None) => format!("acct-{}", body["openid"].as_str().unwrap_or("?")),
                };
                json(
                    StatusCode::OK,
                    serde_json::json!({ "user_id": id }).to_string(),
                )
            }
            Mode::NotFound => json(StatusCode::NOT_FOUND, r#"{"error":"no account"}"#.into()),
            Mode::Error => json(StatusCode::INTERNAL_SERVER_ERROR, "{}".into()),
            Mode::Garbage => json(StatusCode::OK, "<html>oops</html>".into()),
            Mode::Slow => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                json(StatusCode::OK, r#"{"user_id":"late"}"#.into())
            }
        };
        self.state.lock().unwrap().in_flight -= 1;
        response
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// The user id the double binds `openid` to.
pub fn account_of(openid: &str) -> String {
    format!("acct-{openid}")
}
