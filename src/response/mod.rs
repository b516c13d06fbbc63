//! What wxgate answers itself: the response body type, JSON answers, the
//! one mapping of every error to its answer ([`error`]), and what a request
//! leaves on its response for the access log ([`handled`]).
//!
//! It sits above the domain and the proxy: their errors are their own
//! types, and only here do they become statuses and codes.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};

pub mod error;
pub mod handled;

pub use error::{HttpError, WXGATE_ERROR};
pub use handled::{Answer, Audited, Handled};

/// Every response: the upstream's body streamed untouched, or a small
/// buffer of wxgate's own. `Either` holds both without boxing.
pub type Body = Either<crate::proxy::ResponseBody, Full<Bytes>>;

/// A JSON answer written by wxgate itself.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json_bytes(status, Bytes::from(value.to_string()))
}

/// A JSON answer whose body is already written.
pub fn json_bytes(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An HTML page written by wxgate itself (the web login's): never cached,
/// never framed by another site.
pub fn page(status: StatusCode, html: String) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(html))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// An empty answer written by wxgate itself.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}
