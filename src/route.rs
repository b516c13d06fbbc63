//! Which route a request path belongs to.
//!
//! Built-in routes match the raw path exactly. Public prefixes match the
//! *normalised* path — percent-decoded, `\` read as `/`, empty and `.`
//! segments dropped, `..` resolved — because that is how most backends will
//! read it: `/public/../admin` or `/public/%2e%2e/admin` must not reach
//! `/admin` without a session (oauth2-proxy's route-bypass advisories).
//! Prefixes match whole segments: `/static` covers `/static/a.css`, not
//! `/statics`.

use std::borrow::Cow;

use crate::config::RoutesConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Login,
    Logout,
    Decrypt,
    Phone,
    SessionCheck,
    Healthz,
    Readyz,
    /// Proxied without a session (identity injected when one is present).
    Public,
    /// Proxied only with a valid session.
    Protected,
}

pub struct Routes {
    login: String,
    logout: String,
    decrypt: String,
    phone: String,
    session: String,
    public: Vec<String>,
}

impl Routes {
    pub fn new(config: &RoutesConfig) -> Self {
        Self {
            login: config.login.clone(),
            logout: config.logout.clone(),
            decrypt: config.decrypt.clone(),
            phone: config.phone.clone(),
            session: config.session.clone(),
            public: config.public.iter().map(|p| prefix(p)).collect(),
        }
    }

    pub fn classify(&self, path: &str) -> Route {
        if path == self.login {
            Route::Login
        } else if path == self.logout {
            Route::Logout
        } else if path == self.decrypt {
            Route::Decrypt
        } else if path == self.phone {
            Route::Phone
        } else if path == self.session {
            Route::SessionCheck
        } else if path == "/healthz" {
            Route::Healthz
        } else if path == "/readyz" {
            Route::Readyz
        } else if self.is_public(path) {
            Route::Public
        } else {
            Route::Protected
        }
    }

    fn is_public(&self, path: &str) -> bool {
        if self.public.is_empty() {
            return false;
        }
        let path = normalize(path);
        self.public.iter().any(|prefix| under(&path, prefix))
    }
}

/// A configured prefix in the form [`under`] expects: normalised, no trailing `/`.
fn prefix(configured: &str) -> String {
    let normalized = normalize(configured);
    match normalized.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

fn under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// The path as a backend would resolve it.
fn normalize(path: &str) -> Cow<'_, str> {
    let simple = !path.contains(['%', '\\'])
        && !path.contains("//")
        && !path.split('/').any(|s| s == "." || s == "..");
    if simple {
        return Cow::Borrowed(path);
    }
    let decoded = percent_decode(path).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    Cow::Owned(format!("/{}", segments.join("/")))
}

fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(public: &[&str]) -> Routes {
        Routes::new(&RoutesConfig {
            login: "/login".into(),
            logout: "/logout".into(),
            decrypt: "/decrypt".into(),
            phone: "/phone".into(),
            session: "/session".into(),
            public: public.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn classify_table() {
        let r = routes(&["/public", "/static/"]);
        let cases = [
            ("/login", Route::Login),
            ("/logout", Route::Logout),
            ("/decrypt", Route::Decrypt),
            ("/phone", Route::Phone),
            ("/session", Route::SessionCheck),
            ("/healthz", Route::Healthz),
            ("/readyz", Route::Readyz),
            ("/login/x", Route::Protected),
            ("/public", Route::Public),
            ("/public/a/b", Route::Public),
            ("/publicity", Route::Protected),
            ("/static/app.css", Route::Public),
            ("/api/orders", Route::Protected),
            // Traversal out of a public prefix is not public.
            ("/public/../admin", Route::Protected),
            ("/public/%2e%2e/admin", Route::Protected),
            ("/public/%2E%2E%2Fadmin", Route::Protected),
            ("/public/..%5cadmin", Route::Protected),
            ("/public\\..\\admin", Route::Protected),
            // Traversal that stays inside is still public.
            ("/public/a/../b", Route::Public),
            ("//public//a", Route::Public),
            ("/public/./a", Route::Public),
            // Traversal into a public prefix is public, as the backend sees it.
            ("/admin/../public/a", Route::Public),
        ];
        for (path, want) in cases {
            assert_eq!(r.classify(path), want, "{path}");
        }
    }

    #[test]
    fn no_public_routes_means_everything_protected() {
        assert_eq!(routes(&[]).classify("/anything"), Route::Protected);
        assert_eq!(routes(&["/"]).classify("/anything"), Route::Public);
    }

    #[test]
    fn normalize_handles_odd_input() {
        assert_eq!(normalize("/a/%zz/%"), "/a/%zz/%");
        assert_eq!(normalize("/../../"), "/");
        assert_eq!(normalize("/a/%ff"), "/a/\u{fffd}");
    }
}
