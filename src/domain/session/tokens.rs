//! A session's signed identity assertions, cached with the session
//! (`[assertion]`): signing ES256 costs far more than the rest of a
//! proxied request, so each session signs once per audience and reuses
//! the token until shortly before it expires.
//!
//! A token is reused only while everything it says still holds: the same
//! audience, the same signer (a reload that rotates keys or changes a
//! claim's source re-signs), and the same user record (a binding or any
//! other change of the user makes a new `Arc`, and the token holds the
//! old one, so its address is never reused while compared).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::HeaderValue;

use super::UserRecord;

/// The tokens of one session, one per audience it has been forwarded to.
#[derive(Default)]
pub struct TokenSlot {
    tokens: Mutex<Vec<Token>>,
}

struct Token {
    audience: usize,
    signer: u64,
    user: Arc<UserRecord>,
    refresh_at: Instant,
    value: HeaderValue,
}

impl fmt::Debug for TokenSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A token is a bearer credential to the backends: never printed.
        f.write_str("TokenSlot")
    }
}

impl TokenSlot {
    /// The token for `audience` made by `signer` for `user`, unless due
    /// for refresh at `now`.
    pub fn get(
        &self,
        audience: usize,
        signer: u64,
        user: &Arc<UserRecord>,
        now: Instant,
    ) -> Option<HeaderValue> {
        let tokens = self.lock();
        tokens
            .iter()
            .find(|t| t.audience == audience)
            .filter(|t| t.signer == signer && Arc::ptr_eq(&t.user, user) && now < t.refresh_at)
            .map(|t| t.value.clone())
    }

    /// Keeps `value` for `audience`, in place of the one it had.
    pub fn put(
        &self,
        audience: usize,
        signer: u64,
        user: Arc<UserRecord>,
        refresh_at: Instant,
        value: HeaderValue,
    ) {
        let token = Token {
            audience,
            signer,
            user,
            refresh_at,
            value,
        };
        let mut tokens = self.lock();
        match tokens.iter_mut().find(|t| t.audience == audience) {
            Some(slot) => *slot = token,
            None => tokens.push(token),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Token>> {
        // Nothing panics while holding it; a poisoned one holds whole tokens.
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;
    use crate::domain::session::AppTag;
    use std::time::Duration;

    #[test]
    fn a_token_is_reused_only_while_everything_it_says_holds() {
        let user = |openid| {
            Arc::new(
                UserRecord::new(&AppTag::new("wxapp", true), openid, None, Secret::new("k"))
                    .unwrap(),
            )
        };
        let (alice, changed) = (user("o1"), user("o1"));
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let slot = TokenSlot::default();
        slot.put(0, 1, alice.clone(), later, HeaderValue::from_static("t0"));
        slot.put(1, 1, alice.clone(), later, HeaderValue::from_static("t1"));
        assert_eq!(slot.get(0, 1, &alice, now).unwrap(), "t0");
        assert_eq!(slot.get(1, 1, &alice, now).unwrap(), "t1");
        // Another audience, signer, record, or past its refresh: none.
        assert!(slot.get(2, 1, &alice, now).is_none());
        assert!(slot.get(0, 2, &alice, now).is_none());
        assert!(slot.get(0, 1, &changed, now).is_none());
        assert!(slot.get(0, 1, &alice, later).is_none());
        // A new token for an audience replaces its old one.
        slot.put(0, 2, changed.clone(), later, HeaderValue::from_static("t2"));
        assert_eq!(slot.get(0, 2, &changed, now).unwrap(), "t2");
        assert_eq!(slot.lock().len(), 2);
    }
}
