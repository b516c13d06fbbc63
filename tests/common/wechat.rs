//! A test double of WeChat's `jscode2session`, following its documented
//! behaviour: answers are `text/plain` JSON, a success has no `errcode`,
//! a code works once (a second use answers 40163), wrong credentials answer
//! 40013 / 40125. Special codes select the other documented or broken
//! answers:
//!
//! | code              | answer                                        |
//! |-------------------|-----------------------------------------------|
//! | `err:N`           | `{"errcode": N, "errmsg": ...}`               |
//! | `slow:MS:USER`    | success for USER after MS milliseconds        |
//! | `union:USER`      | success with a unionid                        |
//! | `html`            | HTTP 502 with an HTML error page              |
//! | `http500`         | HTTP 500                                      |
//! | `garbage`         | HTTP 200, text/plain, not JSON                |
//! | `nokey:USER`      | "success" without a session_key               |
//! | anything else     | success for the user named by the code        |
//!
//! The user behind `alice`, `slow:10:alice` and `union:alice` is the same.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::{APPID, SECRET};

#[derive(Default)]
struct State {
    calls: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct WeChatDouble {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

pub fn openid_of(user: &str) -> String {
    format!("o_{user}")
}

pub fn unionid_of(user: &str) -> String {
    format!("u_{user}")
}

impl WeChatDouble {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind double");
        let addr = listener.local_addr().expect("addr");
        let double = Self {
            addr,
            state: Arc::default(),
        };
        let served = double.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let double = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let double = double.clone();
                        async move { Ok::<_, Infallible>(double.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        double
    }

    /// How many times `code` was presented to jscode2session.
    pub fn calls(&self, code: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(code)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.state.lock().unwrap().calls.values().sum()
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path() != "/sns/jscode2session" {
            return reply(StatusCode::NOT_FOUND, "text/plain", "not found".into());
        }
        let query: HashMap<String, String> = url_pairs(req.uri().query().unwrap_or(""));
        let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
        if get("grant_type") != "authorization_code" {
            return api_error(40002, "invalid grant_type");
        }
        if get("appid") != APPID {
            return api_error(40013, "invalid appid");
        }
        if get("secret") != SECRET {
            return api_error(40125, "invalid appsecret");
        }
        let code = get("js_code").to_owned();
        let uses = {
            let mut state = self.state.lock().unwrap();
            let n = state.calls.entry(code.clone()).or_default();
            *n += 1;
            *n
        };
        let (kind, rest) = code.split_once(':').unwrap_or(("", &code));
        match (kind, rest) {
            ("err", n) => return api_error(n.parse().unwrap_or(-1), "test error"),
            ("", "html") => {
                return reply(
                    StatusCode::BAD_GATEWAY,
                    "text/html",
                    "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
                );
            }
            ("", "http500") => {
                return reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "{}".into());
            }
            ("", "garbage") => {
                return reply(
                    StatusCode::OK,
                    "text/plain",
                    "upstream connect error".into(),
                );
            }
            _ => {}
        }
        if uses > 1 {
            return api_error(40163, "code been used");
        }
        let user = match (kind, rest) {
            ("slow", rest) => {
                let (ms, user) = rest.split_once(':').unwrap_or((rest, "slow"));
                tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
                user
            }
            ("nokey", user) => {
                let body = format!(r#"{{"openid":"{}"}}"#, openid_of(user));
                return reply(StatusCode::OK, "text/plain", body);
            }
            (_, user) => user,
        };
        let key = base64_of_user(user);
        let body = if kind == "union" {
            format!(
                r#"{{"session_key":"{key}","openid":"{}","unionid":"{}"}}"#,
                openid_of(user),
                unionid_of(user)
            )
        } else {
            format!(
                r#"{{"session_key":"{key}","openid":"{}"}}"#,
                openid_of(user)
            )
        };
        reply(StatusCode::OK, "text/plain", body)
    }
}

fn base64_of_user(user: &str) -> String {
    // Any 24-character base64 text does; this one is distinct per user.
    let mut key = format!("{user:A<22}");
    key.truncate(22);
    key.retain(|c| c.is_ascii_alphanumeric());
    format!("{key:A<22}==")
}

fn api_error(errcode: i64, errmsg: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::OK,
        "text/plain",
        format!(r#"{{"errcode":{errcode},"errmsg":"{errmsg}, rid: 0000"}}"#),
    )
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn url_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
