//! What the app hands the access log with a request's response
//! ([`Answer`]): the response, and beside it ([`Handled`]) its outcome,
//! who it was for, what it asked, and the error it answers, if any.
//!
//! Beside the response, not in its extensions: an extension map is an
//! allocation and a hashed insert and remove per request, for facts that
//! only the observe layer, one step up, reads.

use std::sync::Arc;

use http::{Method, Response};

use super::{Body, HttpError};
use crate::domain::session::UserRecord;
use crate::metrics::Outcome;

/// A response and what the log line says of it.
pub struct Answer {
    /// The answer.
    pub response: Response<Body>,
    /// What the log line says of it.
    pub handled: Handled,
    /// The error this response answers (named on the log line).
    pub error: Option<HttpError>,
}

impl Answer {
    /// `error`'s answer, for a request refused before any route saw it.
    pub fn error(error: HttpError) -> Self {
        Self {
            response: error.into_response(),
            handled: Handled::from(Outcome::Rejected),
            error: Some(error),
        }
    }
}

/// What the access log learns from the app about one request.
#[derive(Debug, Clone)]
pub struct Handled {
    /// What the request was.
    pub outcome: Outcome,
    /// The session's user, when the request carried a valid session.
    pub user: Option<Arc<UserRecord>>,
    /// Forward-auth: the method and path the front proxy asked about
    /// (boxed: most requests have none).
    pub asked: Option<Box<(Method, String)>>,
    /// The AppID of the session's user, or of the app a login chose.
    pub app: Option<Arc<str>>,
    /// The canonical path, when it differs from the one the client sent
    /// (boxed: most requests send theirs canonical).
    pub path: Option<Box<str>>,
    /// An audited route's action and client (`crate::audit`; boxed: the
    /// proxied requests have none).
    pub audit: Option<Box<Audited>>,
}

/// What the audit event of an audited route needs beside the log's facts.
#[derive(Debug, Clone)]
pub struct Audited {
    /// The event's `action`.
    pub action: &'static str,
    /// The client, through trusted proxies.
    pub client_ip: std::net::IpAddr,
}

impl From<Outcome> for Handled {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            user: None,
            asked: None,
            app: None,
            path: None,
            audit: None,
        }
    }
}
