//! What the app leaves on a request's response for the access log
//! ([`Handled`]): its outcome, who it was for, what it asked.

use std::sync::Arc;

use http::Method;

use crate::domain::session::UserRecord;
use crate::metrics::Outcome;

/// What the access log learns from the app about one request.
#[derive(Debug, Clone)]
pub struct Handled {
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
    /// A browser page (the web login's routes): an error is answered as a
    /// plain page, not JSON.
    pub page: bool,
}

impl From<Outcome> for Handled {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            user: None,
            asked: None,
            app: None,
            path: None,
            page: false,
        }
    }
}
