//! Header rules every layer reads alike: headers that must appear exactly
//! once, header names folded as lenient backends fold them, and wxgate's
//! own mark on the answers it makes.
//!
//! A repeated session id, request id or `X-Forwarded-Uri` is ambiguous:
//! two hops may each read a different copy. wxgate reads such a header
//! only when there is exactly one value, and treats anything else as absent.

use http::header::{AsHeaderName, HeaderMap, HeaderName, HeaderValue};

/// On every error response wxgate makes itself, its `code`; never on a backend's.
pub static WXGATE_ERROR: HeaderName = HeaderName::from_static("x-wxgate-error");

/// The value of `name` when it appears exactly once.
pub fn single<K: AsHeaderName>(headers: &HeaderMap, name: K) -> Option<&HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// A header name folded the way the most lenient backend folds it: its
/// ASCII letters and digits, lower case (`X_WX.OpenId` → `xwxopenid`).
/// CGI, PHP, nginx and lighttpd read names that fold alike as one
/// (see `domain::identity`).
pub fn folded_name(name: &str) -> String {
    folded(name).map(char::from).collect()
}

/// The bytes of [`folded_name`].
pub fn folded(name: &str) -> impl Iterator<Item = u8> + '_ {
    name.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
}

/// `name` folds to `folded`.
pub fn folds_to(name: &str, folded_name: &str) -> bool {
    folded(name).eq(folded_name.bytes())
}

/// The first letter or digit of `name`, folded.
fn first(name: &str) -> Option<u8> {
    folded(name).next()
}

/// Header names are folded into a stack buffer of this many bytes.
const FOLD_BUFFER: usize = 64;

/// Each byte folded: letters and digits to their lower case, anything else to 0.
const FOLD: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if byte.is_ascii_alphanumeric() {
            table[b] = byte.to_ascii_lowercase();
        }
        b += 1;
    }
    table
};

/// A set of header names matched in every spelling a lenient backend
/// folds together (`folded_name`), with quick rejections for the names
/// almost every request carries: a request pays a table lookup per header,
/// a fold only for the `x-` names, and a comparison only with the names of
/// the same folded length.
#[derive(Debug, Clone)]
pub struct FoldedNames {
    /// Folded names, sorted, without repeats.
    names: Vec<String>,
    /// The first folded byte of every name: most header names (`host`,
    /// `accept`, `content-type`, …) are ruled out by it alone.
    first_bytes: [bool; 128],
    /// The names by their folded length (index: the length).
    by_length: Vec<Vec<Box<[u8]>>>,
}

impl FoldedNames {
    /// `names` folded already (`folded_name`).
    pub fn new(mut names: Vec<String>) -> Self {
        names.sort();
        names.dedup();
        let mut first_bytes = [false; 128];
        let longest = names.iter().map(String::len).max().unwrap_or(0);
        let mut by_length = vec![Vec::new(); longest + 1];
        for name in &names {
            if let Some(b) = first(name) {
                first_bytes[usize::from(b & 0x7f)] = true;
                by_length[name.len()].push(Box::from(name.as_bytes()));
            }
        }
        Self {
            names,
            first_bytes,
            by_length,
        }
    }

    /// The names, as configured.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether `name` is one of them, folded as the strip folds it.
    pub fn contains(&self, name: &HeaderName) -> bool {
        let name = name.as_str();
        let longest = self.by_length.len().saturating_sub(1);
        if longest >= FOLD_BUFFER {
            // Only with a configured name longer than the buffer.
            return self.names.iter().any(|c| folds_to(name, c));
        }
        let bytes = name.as_bytes();
        // Most names (`host`, `accept`, …) are ruled out by their first byte.
        if let Some(&b) = bytes.first() {
            let f = FOLD[usize::from(b)];
            if f != 0 && !self.first_bytes[usize::from(f & 0x7f)] {
                return false;
            }
        }
        // Folded in one pass into a buffer, without branching on what each
        // byte is, and given up once it folds longer than every name.
        let mut folded = [0u8; FOLD_BUFFER];
        let mut len = 0;
        for &b in bytes {
            let f = FOLD[usize::from(b)];
            folded[len] = f;
            len += usize::from(f != 0);
            if len > longest {
                return false;
            }
        }
        // A name of no letters or digits folds to "", which no name is.
        let folded = &folded[..len];
        self.by_length[len].iter().any(|c| **c == *folded)
    }

    /// Removes every header whose name is in the set, every value of it.
    pub fn remove_from(&self, headers: &mut HeaderMap) {
        // One pass finds the names (usually only the session header), kept
        // on the stack; more than fit are removed one pass at a time.
        let mut found: [Option<HeaderName>; 4] = Default::default();
        let mut more = false;
        let mut slots = found.iter_mut();
        for name in headers.keys().filter(|k| self.contains(k)) {
            match slots.next() {
                Some(slot) => *slot = Some(name.clone()),
                None => {
                    more = true;
                    break;
                }
            }
        }
        for name in found.into_iter().flatten() {
            headers.remove(name);
        }
        while more && let Some(name) = headers.keys().find(|k| self.contains(k)).cloned() {
            headers.remove(name);
        }
    }
}
