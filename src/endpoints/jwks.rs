//! `GET /_wxgate/jwks.json` (under `routes.prefix`, public): the keys a
//! backend verifies wxgate's identity assertions with (`[assertion]`), as
//! a JWK Set (RFC 7517 §5). The admin port serves the same at `/jwks.json`.
//!
//! Cacheable for [`MAX_AGE`] seconds: a key rotation publishes the new key
//! one reload before it signs, and a verifier that cached the old set
//! must have fetched again by then (docs/backend.md says to wait that long).

use http::{HeaderValue, Request, Response, StatusCode, header};

use super::context::{Caller, Context};
use crate::domain::assertion::Assertions;
use crate::response::{self, Body, HttpError};
use crate::wire::body_idle::RequestBody;

/// How long a verifier may keep the key set (seconds).
pub(crate) const MAX_AGE: u32 = 300;

pub(crate) async fn handle(
    cx: &mut Context<'_>,
    _caller: Caller,
    _request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    let assertion = cx.live.assertion.as_ref().ok_or(HttpError::NotFound(
        "nothing here: wxgate signs no identity assertions ([assertion] is not configured)",
    ))?;
    Ok(answer(assertion))
}

/// The key set's answer, on either port.
pub(crate) fn answer(assertion: &Assertions) -> Response<Body> {
    let mut response = response::json_bytes(StatusCode::OK, assertion.jwks());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={MAX_AGE}"))
            .unwrap_or(HeaderValue::from_static("no-cache")),
    );
    response
}
