//! Who may reach a proxied route: the upstream it is routed to, what
//! `[[rules]]` say of it, and so whether it needs a session and which.
//!
//! One answer for the proxy port (`app`), forward-auth and
//! `wxgate check-policy`, so the three never disagree: each asks
//! [`Access::of`] about the canonical path, then [`Access::admits`] about
//! the session it found.

use http::Method;

use super::context::Live;
use crate::domain::policy::{Judgement, Refusal};
use crate::domain::session::UserRecord;
use crate::proxy::UpstreamRoute;
use crate::response::HttpError;

/// What a request to a proxied route needs.
pub(crate) struct Access<'l> {
    pub upstream: &'l UpstreamRoute,
    pub judgement: Judgement<'l>,
    /// No session needed (identity still injected when one is sent).
    pub public: bool,
}

impl<'l> Access<'l> {
    /// The access of `method` on the canonical `path`; `routes_public`:
    /// whether `routes.public` covers it (the app's route table knows
    /// already). A path no upstream covers is `no_upstream`, a `deny`
    /// rule `access_denied`.
    pub(crate) fn of(
        live: &'l Live,
        method: &Method,
        path: &str,
        routes_public: bool,
    ) -> Result<Self, HttpError> {
        let upstream = live.upstreams.find(path).ok_or(HttpError::NoUpstream)?;
        let judgement = live.policy.judge(method, path, upstream.index);
        let public = match judgement {
            Judgement::Unruled => routes_public || upstream.is_public(method, path),
            Judgement::Public(_) => true,
            Judgement::Session(_) => false,
            Judgement::Deny(rule) => return Err(Refusal::deny(rule).into()),
        };
        Ok(Self {
            upstream,
            judgement,
            public,
        })
    }

    /// Whether the session's `user` meets the rules (always, on a public route).
    pub(crate) fn admits(&self, live: &Live, user: &UserRecord) -> Result<(), HttpError> {
        Ok(live.policy.admits(&self.judgement, user)?)
    }
}
