//! Bodies: the response body type, JSON answers, and bounded request reads.
//!
//! Proxied responses stream the upstream's body untouched; answers
//! wxgate writes itself are small `Full` buffers. `Either` holds both without
//! boxing.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};

use crate::error::HttpError;
use crate::stack::RequestBody;
use crate::stack::body_idle::BodyError;

pub type Body = Either<crate::proxy::ResponseBody, Full<Bytes>>;

/// A JSON answer written by wxgate itself.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(value.to_string()))));
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

/// An empty answer written by wxgate itself.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}

/// Reads a JSON request body of at most `limit` bytes into `T`; `shape`
/// shows the client what was expected.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    request: http::Request<RequestBody>,
    limit: usize,
    shape: &str,
) -> Result<T, HttpError> {
    let (parts, body) = request.into_parts();
    let bytes = read_limited(&parts.headers, body, limit).await?;
    let bad = || HttpError::BadRequest(format!("send a JSON body like {shape}"));
    // serde would also read a struct from a JSON array; only objects are meant.
    match serde_json::from_slice(&bytes).map_err(|_| bad())? {
        object @ serde_json::Value::Object(_) => serde_json::from_value(object).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Reads a whole request body of at most `limit` bytes.
///
/// A declared `Content-Length` over the limit is refused before reading;
/// a chunked body is cut off as soon as it passes the limit.
pub async fn read_limited(
    headers: &http::HeaderMap,
    body: RequestBody,
    limit: usize,
) -> Result<Bytes, HttpError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(HttpError::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(HttpError::PayloadTooLarge { limit }),
        Err(e) => Err(match BodyError::idle_in(&*e) {
            Some(timeout) => HttpError::BodyIdle(timeout),
            None => HttpError::BadRequest("the request body could not be read".to_owned()),
        }),
    }
}
