//! What happened to a request: one word for its log line and its metrics.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What a request was, for its log line and the metrics' `outcome` label.
pub enum Outcome {
    /// A valid session was required and present.
    Authenticated,
    /// A public route, with or without a session.
    Public,
    /// No valid session where one was required (401).
    Rejected,
    /// A login (mini-program, or a browser's callback).
    Login,
    /// A logout.
    Logout,
    /// wxgate or something behind it failed (any 5xx).
    Error,
    /// A browser login sent to WeChat's authorize page (or mock mode's).
    LoginStart,
}

impl Outcome {
    /// In `as usize` order, for tables indexed by outcome.
    pub const ALL: [Self; 7] = [
        Self::Authenticated,
        Self::Public,
        Self::Rejected,
        Self::Login,
        Self::Logout,
        Self::Error,
        Self::LoginStart,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::Public => "public",
            Self::Rejected => "rejected",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Error => "error",
            Self::LoginStart => "login_start",
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
