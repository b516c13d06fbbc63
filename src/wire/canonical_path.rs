//! The one reading of a request path that every decision and the backend
//! share.
//!
//! Computed once per request, before any route, public-route, upstream or
//! forward-auth decision, and it is what the backend receives: what was
//! judged is what is served (Envoy's `normalize_path` + `merge_slashes` +
//! `path_with_escaped_slashes_action`). The rules, in order:
//!
//! - the path must start with `/` (origin form, RFC 9112 §3.2.1);
//! - percent-encoded *unreserved* characters are decoded (RFC 3986 §2.3,
//!   §6.2.2.2: `%7E` → `~`, `%61` → `a`), other escapes keep their bytes
//!   with upper-case hex (§6.2.2.1: `%c3%a9` → `%C3%A9`);
//! - `//` is merged into `/` (`merge_slashes`, as nginx reads it);
//! - `.` and `..` segments are resolved (§5.2.4); a `..` above the root is
//!   refused, never clamped;
//! - what backends read differently is refused (`path_ambiguous`): an
//!   encoded `/` or `\` (`%2F`, `%5C`: one backend decodes it, another
//!   not), an encoded `.` (`%2E`: `%2e%2e` is `..` only to some), a raw
//!   `\` (a segment separator to IIS and Windows-hosted servers), `;`
//!   path parameters (a separator to Tomcat and Spring, text to nginx) and
//!   an encoded one (`%3B`, decoded before parameters are cut by some), a
//!   malformed escape, and control bytes or NUL, encoded or not.
//!
//! [`PathPolicy`] relaxes two of the refusals for backends that need them
//! (`[routes.normalize]`): `path_params = "allow"` keeps `;params`
//! (`;jsessionid=…`), never on a `.` or `..` segment (`..;` stays refused);
//! `encoded_slashes = "keep"` forwards `%2F`/`%5C` as sent, never next to a
//! dot segment. With either, decisions take every reading (see
//! [`readings`]) and routing reads the path as a servlet container does.

use std::borrow::Cow;

/// Which of the refusals are relaxed; the default is strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPolicy {
    /// `;params` inside segments pass (never on `.`/`..`).
    pub allow_path_params: bool,
    /// `%2F` and `%5C` pass as sent (never beside a dot segment).
    pub keep_encoded_slashes: bool,
    /// `//` → `/`. Off: empty segments are kept, and a path with an empty
    /// segment and a `..` is refused (backends resolve it differently).
    pub merge_slashes: bool,
}

impl PathPolicy {
    /// Neither `;params` nor encoded slashes pass: a canonical path then
    /// has exactly one reading, and routing reads it as it is.
    pub fn is_strict(&self) -> bool {
        !self.allow_path_params && !self.keep_encoded_slashes
    }
}

impl Default for PathPolicy {
    fn default() -> Self {
        Self {
            allow_path_params: false,
            keep_encoded_slashes: false,
            merge_slashes: true,
        }
    }
}

/// Why a path was refused: each is a reading some backend disagrees on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum PathError {
    #[error("the request target must be a path starting with `/`")]
    NotAPath,
    #[error("the path has an encoded `/` or `\\` (%2F, %5C), which backends read differently")]
    EncodedSlash,
    #[error("the path has an encoded `.` (%2E), which backends read differently")]
    EncodedDot,
    #[error("the path has a `\\`, which some backends read as `/`")]
    Backslash,
    #[error("the path has `;` parameters, which some backends drop and others keep")]
    PathParams,
    #[error("the path has `;` parameters on a `.` or `..` segment")]
    DotWithParams,
    #[error("the path has an encoded `;` (%3B), which some backends read as parameters")]
    EncodedSemicolon,
    #[error("the path has a malformed percent-escape")]
    BadEscape,
    #[error("the path has a control byte or NUL")]
    Control,
    #[error("the path climbs above the root with `..`")]
    AboveRoot,
    #[error("the path has `..` beside an empty segment (`//`), which backends resolve differently")]
    DotsBesideEmpty,
    /// Forward-auth only: wxgate does not forward, so it answers only
    /// about a path the front proxy routes as written.
    #[error(
        "the path is not in canonical form (`.` or `..` segments, `//`, or an encoded letter, digit or `-._~`), which the front proxy may route as written"
    )]
    NotCanonical,
    /// Forward-auth only: no request target carries a fragment.
    #[error("the URI has a `#` fragment, which no request target carries")]
    Fragment,
}

/// `path` when it is canonical as written (a percent-escape's hex case
/// aside: every reader decodes `%c3` and `%C3` alike), for a decision
/// about a request wxgate will not forward itself (forward-auth).
pub fn as_written<'a>(path: &'a str, policy: &PathPolicy) -> Result<Cow<'a, str>, PathError> {
    let canonical = canonicalize(path, policy)?;
    // The canonical form only resolves, merges, decodes or upper-cases
    // hex: of the same length and equal but for case, only hex changed.
    if canonical.len() == path.len() && canonical.eq_ignore_ascii_case(path) {
        Ok(canonical)
    } else {
        Err(PathError::NotCanonical)
    }
}

/// The canonical form of `path`; borrowed when it is already canonical
/// (the common case costs one pass over the bytes and no allocation).
#[inline]
pub fn canonicalize<'a>(path: &'a str, policy: &PathPolicy) -> Result<Cow<'a, str>, PathError> {
    if is_plain(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    slow(path, policy)
}

#[inline(never)]
fn slow<'a>(path: &'a str, policy: &PathPolicy) -> Result<Cow<'a, str>, PathError> {
    let out = canonicalize_slow(path, policy)?;
    Ok(if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    })
}

/// Starts with `/`, only bytes that need no decision (RFC 3986 `pchar`
/// without `%` and `;`, and `/`), and no segment that is empty or starts
/// with `.` (so no `//`, `.` or `..`; `/.well-known` takes the slow path,
/// which finds it canonical).
#[inline]
fn is_plain(bytes: &[u8]) -> bool {
    if bytes.first() != Some(&b'/') {
        return false;
    }
    let mut prev = 0u8;
    for &b in bytes {
        if !PLAIN[usize::from(b)] || (prev == b'/' && (b == b'/' || b == b'.')) {
            return false;
        }
        prev = b;
    }
    true
}

/// RFC 3986 `pchar` less `%` (escapes need decoding) and `;` (parameters), and `/`.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let allowed =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/";
    let mut i = 0;
    while i < allowed.len() {
        table[allowed[i] as usize] = true;
        i += 1;
    }
    table
};

fn canonicalize_slow(path: &str, policy: &PathPolicy) -> Result<String, PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAPath);
    };
    let mut segments: Vec<String> = Vec::new();
    let mut any_empty = false;
    let mut any_dots = false;
    // Whether the last segment asks for a trailing `/` (`/a/`, `/a/.`, `/a/..`).
    let mut trailing = false;
    let pieces: Vec<&str> = rest.split('/').collect();
    let last = pieces.len() - 1;
    for (i, raw) in pieces.into_iter().enumerate() {
        let segment = decode_segment(raw, policy)?;
        let name = segment.split(';').next().unwrap_or("");
        let dot_name = name == "." || name == "..";
        if dot_name && segment.len() != name.len() {
            return Err(PathError::DotWithParams);
        }
        if policy.keep_encoded_slashes && is_dot_beside_encoded_slash(&segment) {
            return Err(PathError::EncodedSlash);
        }
        trailing = i == last && (segment.is_empty() || dot_name);
        match segment.as_str() {
            "" if i == last => {}
            "" if policy.merge_slashes => {}
            "" => {
                any_empty = true;
                segments.push(segment);
            }
            "." => {}
            ".." => {
                any_dots = true;
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            _ => segments.push(segment),
        }
    }
    if any_empty && any_dots {
        return Err(PathError::DotsBesideEmpty);
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// One segment with unreserved escapes decoded and the refusals applied.
fn decode_segment(raw: &str, policy: &PathPolicy) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|&h| (h as char).to_digit(16));
                let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(PathError::BadEscape);
                };
                let value = (high * 16 + low) as u8;
                match value {
                    b'.' => return Err(PathError::EncodedDot),
                    b';' => return Err(PathError::EncodedSemicolon),
                    b'/' | b'\\' if policy.keep_encoded_slashes => {
                        out.push_str(if value == b'/' { "%2F" } else { "%5C" });
                    }
                    b'/' | b'\\' => return Err(PathError::EncodedSlash),
                    0..=0x1f | 0x7f => return Err(PathError::Control),
                    v if v.is_ascii_alphanumeric() || v == b'-' || v == b'_' || v == b'~' => {
                        out.push(char::from(v));
                    }
                    v => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        out.push('%');
                        out.push(char::from(HEX[usize::from(v >> 4)]));
                        out.push(char::from(HEX[usize::from(v & 0xf)]));
                    }
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' if !policy.allow_path_params => return Err(PathError::PathParams),
            0..=0x1f | 0x7f => return Err(PathError::Control),
            _ => {}
        }
        // Any other byte is kept as it came (non-ASCII included: hyper
        // passed it, and no backend reads it as a separator).
        let start = i;
        while i < bytes.len() && !matches!(bytes[i], b'%' | b'\\' | b';' | 0..=0x1f | 0x7f) {
            i += 1;
        }
        if start == i {
            // `;` with parameters allowed.
            i += 1;
        }
        out.push_str(&raw[start..i]);
    }
    Ok(out)
}

/// `a%2F..` or `.%5Cb`: a decoding backend would see a dot segment.
fn is_dot_beside_encoded_slash(segment: &str) -> bool {
    if !segment.contains("%2F") && !segment.contains("%5C") {
        return false;
    }
    segment
        .split(';')
        .next()
        .unwrap_or("")
        .split("%2F")
        .flat_map(|piece| piece.split("%5C"))
        .any(|piece| piece == "." || piece == "..")
}

/// The path as routing reads it: a canonical path with `;params` removed
/// from each segment (as servlet containers route), unchanged without them
/// — and, under a strict `policy` (none can be there), without a look.
pub fn routing_form<'a>(canonical: &'a str, policy: &PathPolicy) -> Cow<'a, str> {
    if policy.is_strict() || !canonical.contains(';') {
        return Cow::Borrowed(canonical);
    }
    Cow::Owned(strip_params(canonical))
}

fn strip_params(path: &str) -> String {
    path.split('/')
        .map(|segment| segment.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/")
}

/// Every reading of a canonical path that a backend may give it: the path
/// itself, and where a relaxed [`PathPolicy`] let them through, the path
/// without `;params` and with `%2F`/`%5C` read as `/`. A public route must
/// hold under each. One reading under the strict default.
pub fn readings(canonical: &str) -> Vec<Cow<'_, str>> {
    let mut out = vec![Cow::Borrowed(canonical)];
    let params = canonical.contains(';');
    let slashes = canonical.contains("%2F") || canonical.contains("%5C");
    if params {
        out.push(Cow::Owned(strip_params(canonical)));
    }
    if slashes {
        let decoded = |p: &str| p.replace("%2F", "/").replace("%5C", "/");
        out.push(Cow::Owned(decoded(canonical)));
        if params {
            out.push(Cow::Owned(decoded(&strip_params(canonical))));
        }
    }
    out
}

/// `path` is `prefix` or below it, on whole segments (`/` is above everything).
pub fn under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// `text` when it is a path on this site: `/` then anything but a second
/// `/` or a `\` (which browsers read as `/`), and visible ASCII only (no
/// control byte, no space). `//evil`, `/\evil`, `https://evil` and
/// `%2F%2Fevil` (decoded from the query: `//evil`) are all refused.
pub fn same_site_path(text: &str) -> Option<&str> {
    let ok = text.starts_with('/')
        && !text.starts_with("//")
        && !text.contains('\\')
        && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: PathPolicy = PathPolicy {
        allow_path_params: false,
        keep_encoded_slashes: false,
        merge_slashes: true,
    };

    #[test]
    fn strict_table() {
        use PathError::*;
        let cases: &[(&str, Result<&str, PathError>)] = &[
            // Already canonical: borrowed.
            ("/", Ok("/")),
            ("/a/b", Ok("/a/b")),
            ("/a/b/", Ok("/a/b/")),
            ("/a.b/c..d/...", Ok("/a.b/c..d/...")),
            ("/a%20b/%E4%B8%AD", Ok("/a%20b/%E4%B8%AD")),
            // RFC 3986 §6.2.2.2: unreserved escapes decoded; §6.2.2.1: hex upper case.
            ("/%7Euser/%61%2D%5F", Ok("/~user/a-_")),
            ("/%6dember/card", Ok("/member/card")),
            ("/a%c3%a9", Ok("/a%C3%A9")),
            ("/%25", Ok("/%25")),
            ("/%252e%252e/x", Ok("/%252e%252e/x")),
            // merge_slashes.
            ("//a//b", Ok("/a/b")),
            ("//", Ok("/")),
            ("/a//", Ok("/a/")),
            // §5.2.4: dot segments resolved.
            ("/a/./b", Ok("/a/b")),
            ("/a/b/../c", Ok("/a/c")),
            ("/a/b/..", Ok("/a/")),
            ("/a/.", Ok("/a/")),
            ("/.", Ok("/")),
            ("/a/..", Ok("/")),
            ("/shop/../member/card", Ok("/member/card")),
            ("/x//..//y", Ok("/y")),
            // Above the root: refused, never clamped.
            ("/..", Err(AboveRoot)),
            ("/a/../..", Err(AboveRoot)),
            ("/orders/../../actuator/env", Err(AboveRoot)),
            // What backends read differently.
            ("/a%2Fb", Err(EncodedSlash)),
            ("/a%2fb", Err(EncodedSlash)),
            ("/..%2fadmin", Err(EncodedSlash)),
            ("/a%5Cb", Err(EncodedSlash)),
            ("/%2e%2e/admin", Err(EncodedDot)),
            ("/.%2E/admin", Err(EncodedDot)),
            ("/a%2eb", Err(EncodedDot)),
            ("/a\\b", Err(Backslash)),
            ("/..\\admin", Err(Backslash)),
            ("/member;x=1/card", Err(PathParams)),
            ("/..;/admin", Err(PathParams)),
            ("/a%3Bx/b", Err(EncodedSemicolon)),
            ("/a%00b", Err(Control)),
            ("/a%0ab", Err(Control)),
            ("/a%7f", Err(Control)),
            ("/a\u{1}b", Err(Control)),
            ("/a%zz", Err(BadEscape)),
            ("/a%", Err(BadEscape)),
            ("/a%4", Err(BadEscape)),
            ("*", Err(NotAPath)),
            ("", Err(NotAPath)),
            ("a/b", Err(NotAPath)),
        ];
        for (path, want) in cases {
            let got = canonicalize(path, &STRICT);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{path:?}");
            if let Ok(Cow::Owned(owned)) = &got {
                assert_ne!(owned, path, "{path:?} was canonical yet copied");
            }
        }
    }

    #[test]
    fn canonical_paths_are_fixed_points() {
        for path in ["/a/./b/../c", "/%7e/x", "//a//", "/a/b/..", "/a%c3"] {
            let once = canonicalize(path, &STRICT).unwrap().into_owned();
            let twice = canonicalize(&once, &STRICT).unwrap();
            assert!(matches!(twice, Cow::Borrowed(_)), "{path:?}");
            assert_eq!(twice, once);
        }
    }

    #[test]
    fn relaxed_table() {
        use PathError::*;
        let params = PathPolicy {
            allow_path_params: true,
            ..STRICT
        };
        let slashes = PathPolicy {
            keep_encoded_slashes: true,
            ..STRICT
        };
        let unmerged = PathPolicy {
            merge_slashes: false,
            ..STRICT
        };
        let cases: &[(&PathPolicy, &str, Result<&str, PathError>)] = &[
            (
                &params,
                "/page.jsp;jsessionid=AB",
                Ok("/page.jsp;jsessionid=AB"),
            ),
            (&params, "/a;x/b", Ok("/a;x/b")),
            (&params, "/a;x/../b", Ok("/b")),
            (&params, "/..;/admin", Err(DotWithParams)),
            (&params, "/a/.;x", Err(DotWithParams)),
            (&slashes, "/repo/a%2fb", Ok("/repo/a%2Fb")),
            (&slashes, "/a%5cb", Ok("/a%5Cb")),
            (&slashes, "/static/..%2Fadmin", Err(EncodedSlash)),
            (&slashes, "/x/a%2F.", Err(EncodedSlash)),
            (&slashes, "/a%2Eb", Err(EncodedDot)),
            (&unmerged, "/a//b", Ok("/a//b")),
            (&unmerged, "/a//../b", Err(DotsBesideEmpty)),
            (&unmerged, "//a/../b", Err(DotsBesideEmpty)),
        ];
        for (policy, path, want) in cases {
            let got = canonicalize(path, policy);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{path:?} {policy:?}");
        }
    }

    #[test]
    fn routing_and_readings() {
        let params = PathPolicy {
            allow_path_params: true,
            ..STRICT
        };
        assert_eq!(routing_form("/a/b", &params), "/a/b");
        assert_eq!(routing_form("/member;x=1/card;y", &params), "/member/card");
        assert_eq!(readings("/a/b"), ["/a/b"]);
        assert_eq!(readings("/a;x/b"), ["/a;x/b", "/a/b"]);
        assert_eq!(readings("/a%2Fb"), ["/a%2Fb", "/a/b"]);
        assert_eq!(
            readings("/s;x/a%2Fb"),
            ["/s;x/a%2Fb", "/s/a%2Fb", "/s;x/a/b", "/s/a/b"]
        );
    }

    #[test]
    fn redirects_stay_on_this_site() {
        let cases = [
            ("/", true),
            ("/orders?id=1#top", true),
            ("/a/b/%2F%2Fx", true),
            ("//evil.example", false),
            ("///evil.example", false),
            ("/\\evil.example", false),
            ("\\\\evil.example", false),
            ("https://evil.example", false),
            ("evil.example", false),
            ("%2F%2Fevil.example", false),
            ("/\tevil", false),
            ("/a b", false),
            ("/\u{7f}", false),
            ("/é", false),
            ("", false),
        ];
        for (text, ok) in cases {
            assert_eq!(same_site_path(text).is_some(), ok, "{text:?}");
        }
    }
}
