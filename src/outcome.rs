//! What happened to a request: one word for its log line and its metrics,
//! and who it was for ([`Handled`], which the app leaves on its response
//! for the access log).

use std::sync::Arc;

use http::Method;

use crate::session::UserRecord;

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
}

impl From<Outcome> for Handled {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            user: None,
            asked: None,
            app: None,
            path: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A valid session was required and present.
    Authenticated,
    /// A public route, with or without a session.
    Public,
    /// No valid session where one was required (401).
    Rejected,
    Login,
    Logout,
    /// wxgate or something behind it failed (any 5xx).
    Error,
}

impl Outcome {
    /// In `as usize` order, for tables indexed by outcome.
    pub const ALL: [Self; 6] = [
        Self::Authenticated,
        Self::Public,
        Self::Rejected,
        Self::Login,
        Self::Logout,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::Public => "public",
            Self::Rejected => "rejected",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Error => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i, "{outcome:?}");
        }
    }
}
