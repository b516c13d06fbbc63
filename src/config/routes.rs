//! `[routes]`: the paths wxgate answers itself, and the public ones.

use http::Method;

use super::ConfigError;
use super::raw::RawRoutes;

/// Paths wxgate answers itself on the proxy port, whatever `[routes]` says.
pub const PROBES: [&str; 2] = ["/healthz", "/readyz"];

#[derive(Debug, Clone, PartialEq)]
pub struct RoutesConfig {
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
}

/// `"/static"` (any method) or `"GET /api/products"` (that method only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRoute {
    pub method: Option<Method>,
    pub path: String,
}

impl RoutesConfig {
    pub(super) fn from_raw(raw: RawRoutes) -> Result<Self, ConfigError> {
        let login = path("routes.login", raw.login, "/login")?;
        let logout = path("routes.logout", raw.logout, "/logout")?;
        let decrypt = path("routes.decrypt", raw.decrypt, "/decrypt")?;
        let phone = path("routes.phone", raw.phone, "/phone")?;
        let session = path("routes.session", raw.session, "/session")?;
        let auth = match raw.auth.as_deref() {
            Some("") => None,
            _ => Some(path("routes.auth", raw.auth, "/auth")?),
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
            if built_in[..i].iter().any(|(_, other)| other == route)
                || PROBES.contains(&route.as_str())
            {
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
            .map(public_route)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            login,
            logout,
            decrypt,
            phone,
            session,
            auth,
            public,
        })
    }
}

fn public_route(text: String) -> Result<PublicRoute, ConfigError> {
    const KEY: &str = "routes.public";
    let Some((method, rest)) = text.split_once(' ') else {
        return Ok(PublicRoute {
            method: None,
            path: path(KEY, Some(text), "")?,
        });
    };
    let method = Method::from_bytes(method.as_bytes())
        .ok()
        .filter(|m| m.as_str().bytes().all(|b| b.is_ascii_uppercase()))
        .ok_or_else(|| {
            ConfigError::invalid(
                KEY,
                format!(
                    "`{text}`: write \"/path\" or \"METHOD /path\", e.g. \"GET /api/products\""
                ),
            )
        })?;
    Ok(PublicRoute {
        method: Some(method),
        path: path(KEY, Some(rest.trim().to_owned()), "")?,
    })
}

fn path(key: &'static str, value: Option<String>, default: &str) -> Result<String, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let dot_segment = text
        .split('/')
        .any(|segment| matches!(segment.split(';').next(), Some("." | "..")));
    if !text.starts_with('/') || text.contains(['?', '#']) || dot_segment {
        return Err(ConfigError::invalid(
            key,
            format!("`{text}` must be a plain path starting with `/`"),
        ));
    }
    Ok(text)
}
