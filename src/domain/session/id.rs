//! Session ids: 256 bits from the OS CSPRNG, URL-safe base64 without padding.
//!
//! Only [`SessionId::redacted`] may be logged; `Debug` prints the same short
//! prefix, so a full id never reaches a log line by accident.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Length of the encoded form: 32 bytes → 43 base64 characters.
pub(super) const ENCODED_LEN: usize = 43;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
/// A session id: 256 random bits.
pub struct SessionId([u8; 32]);

impl SessionId {
    /// A new id from the system's randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Parses the header form; anything but exactly 43 URL-safe base64
    /// characters is rejected before any store lookup.
    pub fn parse(text: &[u8]) -> Option<Self> {
        if text.len() != ENCODED_LEN {
            return None;
        }
        let mut bytes = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(32) => Some(Self(bytes)),
            _ => None,
        }
    }

    /// The id as the client sends it (base64url, 43 characters).
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The raw bits.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short prefix for logs: enough to correlate lines, useless as a credential.
    pub fn redacted(&self) -> String {
        let mut s = self.encode();
        s.truncate(6);
        s.push('…');
        s
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_uniqueness() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        let text = a.encode();
        assert_eq!(text.len(), ENCODED_LEN);
        assert!(!text.contains(['+', '/', '=']));
        assert_eq!(SessionId::parse(text.as_bytes()), Some(a));
    }

    #[test]
    fn rejects_malformed() {
        let good = SessionId::generate().unwrap().encode();
        for bad in [
            String::new(),
            good[..42].to_owned(),
            format!("{good}A"),
            good.replacen(|_| true, "+", 1),
            "!".repeat(43),
            // 43 chars whose last symbol carries non-zero padding bits.
            format!("{}B", &"A".repeat(42)),
        ] {
            assert_eq!(SessionId::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let id = SessionId::generate().unwrap();
        let full = id.encode();
        assert!(!format!("{id:?}").contains(&full));
        assert!(!id.redacted().contains(&full[..10]));
    }
}
