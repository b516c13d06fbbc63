//! `POST /logout`: ends the session everywhere (the store's revocation
//! reaches every replica's local cache; see `domain::session`).
//!
//! Idempotent: ending an unknown or absent session succeeds too, so a
//! client that retries after a lost answer sees the same 204.

use http::{Response, StatusCode};

use crate::domain::session::{SessionId, SessionStore, Sessions};
use crate::response::{self, Body, HttpError};

pub async fn handle(
    sessions: &Sessions,
    id: Option<SessionId>,
) -> Result<Response<Body>, HttpError> {
    if let Some(id) = id {
        sessions.logout(&id).await?;
    }
    Ok(response::empty(StatusCode::NO_CONTENT))
}
