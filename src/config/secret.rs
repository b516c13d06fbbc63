//! A string that must never be printed: the app secret, a session_key.
//!
//! `Debug` and `Display` both print a fixed placeholder, so a secret that ends
//! up in a `tracing` field or an error message by mistake leaks nothing. The
//! value is reachable only through [`Secret::expose`], which makes every use
//! easy to find in review.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
/// A secret value: never printed (`Debug` and `Display` write `***`).
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into_boxed_str())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
