//! `[routes]`: the paths wxgate answers itself, and the public ones.
//!
//! Only `/login` and `/logout` sit at the top of the path space; every
//! other route of wxgate's lives under one reserved prefix (`/_wxgate` by
//! default), so wxgate claims nothing a legacy backend may already serve
//! (`/auth/profile`, `/session`, `/healthz` are the backend's). The probes
//! are on the admin port only.

// The typed sections' fields are their TOML keys, each documented once in
// docs/configuration.md (tests/it/docs.rs checks that every key the parser
// accepts is there): a doc comment per field would say it twice.
#![allow(missing_docs)]

use http::Method;

use super::ConfigError;
use super::raw::{RawNormalize, RawRoutes};
use crate::wire::canonical_path::{PathPolicy, canonicalize};

/// The default reserved prefix.
pub const DEFAULT_PREFIX: &str = "/_wxgate";

#[derive(Debug, Clone, PartialEq)]
pub struct RoutesConfig {
    /// Reserved for wxgate: a path under it that is no route is a 404,
    /// never forwarded. Without a trailing `/`.
    pub prefix: String,
    pub login: String,
    pub logout: String,
    pub decrypt: String,
    pub phone: String,
    pub session: String,
    /// Forward-auth endpoint for nginx `auth_request`, Traefik ForwardAuth
    /// and Envoy `ext_authz`; `None` when switched off (`auth = ""`).
    pub auth: Option<String>,
    /// Served without a session (matched on whole segments).
    pub public: Vec<PublicRoute>,
    /// `[routes.normalize]`: how request paths are made canonical.
    pub normalize: PathPolicy,
}

/// `"/static"` (any method) or `"GET /api/products"` (that method only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRoute {
    pub method: Option<Method>,
    pub path: String,
}

impl RoutesConfig {
    /// The browser login's routes under the prefix: start, callback, and
    /// the mock authorize page (`endpoints::web_login`).
    pub fn web_paths(&self) -> [String; 3] {
        ["start", "callback", "mock"].map(|route| format!("{}/oauth/{route}", self.prefix))
    }

    pub(super) fn from_raw(raw: RawRoutes) -> Result<Self, ConfigError> {
        let prefix = path("routes.prefix", raw.prefix, DEFAULT_PREFIX)?
            .trim_end_matches('/')
            .to_owned();
        if prefix.is_empty() {
            return Err(ConfigError::invalid(
                "routes.prefix",
                "`/` would reserve every path for wxgate; use a prefix such as \"/_wxgate\"",
            ));
        }
        let under = |name: &str| format!("{prefix}/{name}");
        let login = path("routes.login", raw.login, "/login")?;
        let logout = path("routes.logout", raw.logout, "/logout")?;
        let decrypt = path("routes.decrypt", raw.decrypt, &under("decrypt"))?;
        let phone = path("routes.phone", raw.phone, &under("phone"))?;
        let session = path("routes.session", raw.session, &under("session"))?;
        let auth = match raw.auth.as_deref() {
            Some("") => None,
            _ => Some(path("routes.auth", raw.auth, &under("auth"))?),
        };
        let mut built_in = vec![
            ("routes.login", &login),
            ("routes.logout", &logout),
            ("routes.decrypt", &decrypt),
            ("routes.phone", &phone),
            ("routes.session", &session),
        ];
        if let Some(auth) = &auth {
            built_in.push(("routes.auth", auth));
        }
        for (i, (key, route)) in built_in.iter().enumerate() {
            if built_in[..i].iter().any(|(_, other)| other == route) {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{route}` is already taken by another built-in route"),
                ));
            }
        }
        let public = raw
            .public
            .unwrap_or_default()
            .into_iter()
            .map(|text| public_route("routes.public", text))
            .collect::<Result<_, _>>()?;
        let normalize = normalize(raw.normalize.unwrap_or_default())?;
        Ok(Self {
            prefix,
            login,
            logout,
            decrypt,
            phone,
            session,
            auth,
            public,
            normalize,
        })
    }
}

fn normalize(raw: RawNormalize) -> Result<PathPolicy, ConfigError> {
    let strict = PathPolicy::default();
    let choice = |key: &'static str, value: Option<String>, relaxed: &str| match value.as_deref() {
        None | Some("reject") => Ok(false),
        Some(v) if v == relaxed => Ok(true),
        Some(other) => Err(ConfigError::invalid(
            key,
            format!("`{other}`: use \"reject\" (the default) or \"{relaxed}\""),
        )),
    };
    Ok(PathPolicy {
        allow_path_params: choice("routes.normalize.path_params", raw.path_params, "allow")?,
        keep_encoded_slashes: choice(
            "routes.normalize.encoded_slashes",
            raw.encoded_slashes,
            "keep",
        )?,
        merge_slashes: raw.merge_slashes.unwrap_or(strict.merge_slashes),
    })
}

pub(super) fn public_route(key: &'static str, text: String) -> Result<PublicRoute, ConfigError> {
    let Some((method, rest)) = text.split_once(' ') else {
        return Ok(PublicRoute {
            method: None,
            path: path(key, Some(text), "")?,
        });
    };
    let method = Method::from_bytes(method.as_bytes())
        .ok()
        .filter(|m| m.as_str().bytes().all(|b| b.is_ascii_uppercase()))
        .ok_or_else(|| {
            ConfigError::invalid(
                key,
                format!(
                    "`{text}`: write \"/path\" or \"METHOD /path\", e.g. \"GET /api/products\""
                ),
            )
        })?;
    Ok(PublicRoute {
        method: Some(method),
        path: path(key, Some(rest.trim().to_owned()), "")?,
    })
}

pub(super) fn path(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    // Dot segments, `..;` and the rest are `canonical`'s to refuse.
    if !text.starts_with('/') || text.contains(['?', '#']) {
        return Err(ConfigError::invalid(
            key,
            format!("`{text}` must be a plain path starting with `/`"),
        ));
    }
    canonical(key, &text)?;
    Ok(text)
}

/// `text` is already a canonical path (`canonical_path`), as requests are
/// compared against it: `/%7Euser` or `//a` would never match.
pub(super) fn canonical(key: &'static str, text: &str) -> Result<(), ConfigError> {
    match canonicalize(text, &PathPolicy::default()) {
        Ok(canonical) if canonical == text => Ok(()),
        Ok(canonical) => Err(ConfigError::invalid(
            key,
            format!("`{text}` is not in canonical form: write `{canonical}`"),
        )),
        Err(e) => Err(ConfigError::invalid(key, format!("`{text}`: {e}"))),
    }
}
