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

/// What a request to a proxied route needs. Small on purpose: it lives
/// across the session lookup's await in every request's future, so the
/// rules' judgement is made again (cheap, one branch without rules) when
/// the session is there to be admitted, rather than carried.
pub(crate) struct Access<'l> {
    pub upstream: &'l UpstreamRoute,
    /// No session needed (identity still injected when one is sent).
    pub public: bool,
}

impl<'l> Access<'l> {
    /// The access of `method` on the canonical `path`; `routes_public`:
    /// whether `routes.public` covers it (the app's route table knows
    /// already). A path no upstream covers is `no_upstream`, a `deny`
    /// rule `access_denied`.
    #[inline]
    pub(crate) fn of(
        live: &'l Live,
        method: &Method,
        path: &str,
        routes_public: bool,
    ) -> Result<Self, HttpError> {
        let upstream = live.upstreams.find(path).ok_or(HttpError::NoUpstream)?;
        let public = match live.policy.judge(method, path, upstream.index) {
            Judgement::Unruled => routes_public || upstream.is_public(method, path),
            Judgement::Public(_) => true,
            Judgement::Session(_) => false,
            Judgement::Deny(rule) => return Err(Refusal::deny(rule).into()),
        };
        Ok(Self { upstream, public })
    }

    /// Whether the session's `user` meets the rules for `method` on `path`
    /// (always, on a public route).
    #[inline]
    pub(crate) fn admits(
        &self,
        live: &Live,
        (method, path): (&Method, &str),
        user: &UserRecord,
    ) -> Result<(), HttpError> {
        if self.public || live.policy.is_empty() {
            return Ok(());
        }
        let judgement = live.policy.judge(method, path, self.upstream.index);
        Ok(live.policy.admits(&judgement, user)?)
    }
}
