//! Bounded reads of request bodies, for the routes wxgate answers itself.
//!
//! Proxied requests stream their bodies untouched; only wxgate's own routes
//! (login, decrypt, phone) read one whole, and never more than a limit.

use std::time::Duration;

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::body_idle::{BodyError, RequestBody};

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum ReadError {
    #[error("request body over {limit} bytes")]
    TooLarge { limit: usize },
    /// Not a JSON object of the expected shape; `shape` shows one.
    #[error("send a JSON body like {shape}")]
    NotJson { shape: String },
    /// A key given twice (`wire::json`): which one counts is ambiguous.
    #[error("the body repeats the key `{0}`: send each key once")]
    RepeatedKey(String),
    #[error("the request body sent nothing for {0:?}")]
    Idle(Duration),
    #[error("the request body could not be read")]
    Unreadable,
}

/// Reads a JSON request body of at most `limit` bytes into `T`; `shape`
/// shows the client what was expected.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    request: http::Request<RequestBody>,
    limit: usize,
    shape: &str,
) -> Result<T, ReadError> {
    let (parts, body) = request.into_parts();
    let bytes = read_limited(&parts.headers, body, limit).await?;
    let bad = || ReadError::NotJson {
        shape: shape.to_owned(),
    };
    // serde would also read a struct from a JSON array; only objects are meant.
    let object = super::json::object(&bytes).map_err(|e| match e {
        super::json::JsonError::RepeatedKey(key) => ReadError::RepeatedKey(key),
        super::json::JsonError::NotAnObject => bad(),
    })?;
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|_| bad())
}

/// Reads a whole request body of at most `limit` bytes.
///
/// A declared `Content-Length` over the limit is refused before reading;
/// a chunked body is cut off as soon as it passes the limit.
pub async fn read_limited(
    headers: &http::HeaderMap,
    body: RequestBody,
    limit: usize,
) -> Result<Bytes, ReadError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ReadError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ReadError::TooLarge { limit }),
        Err(e) => Err(match BodyError::idle_in(&*e) {
            Some(timeout) => ReadError::Idle(timeout),
            None => ReadError::Unreadable,
        }),
    }
}
