//! The docs against the parser: every config key the parser accepts is in
//! docs/configuration.md, every key the docs name exists, and the two
//! READMEs (English and Chinese) name the same keys and sections.
//!
//! The key list is not kept by hand: it is read from the parser itself,
//! whose raw structs deny unknown fields and so name every field they know
//! ("unknown field `zzz`, expected one of …").

use std::collections::BTreeSet;
use std::path::Path;

/// The fields the parser lists for `table`, or `None` if it is no table.
fn fields(table: &str, array: bool) -> Option<Vec<String>> {
    let text = match (table, array) {
        ("", _) => "zzz = 1\n".to_owned(),
        (_, true) => format!("[[{table}]]\nzzz = 1\n"),
        (_, false) => format!("[{table}]\nzzz = 1\n"),
    };
    let error = wxgate::Config::parse(&text, &|_| None).err()?.to_string();
    // serde: "expected one of `a`, `b`", or "expected `a`" for a single field.
    let list = error.split("unknown field `zzz`, expected ").nth(1)?;
    let list = list.strip_prefix("one of ").unwrap_or(list);
    Some(
        list.split([',', ' '])
            .filter(|f| *f != "or")
            .map(|f| f.trim().trim_matches('`').to_owned())
            .filter(|f| !f.is_empty())
            .collect(),
    )
}

/// Every leaf key the parser accepts, as `section.key` (`[[arrays]]`' own
/// keys as `upstreams.url`), and the array tables.
fn parser_keys() -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut keys, mut arrays) = (BTreeSet::new(), BTreeSet::new());
    for section in fields("", false).expect("the top level lists its sections") {
        // An array of tables answers with its fields only when written as one.
        let (list, array) = match fields(&section, true) {
            Some(list) if fields(&section, false).is_none() => (list, true),
            _ => (fields(&section, false).unwrap_or_default(), false),
        };
        if array {
            arrays.insert(section.clone());
        }
        let mut pending: Vec<(String, String)> =
            list.into_iter().map(|k| (section.clone(), k)).collect();
        while let Some((table, key)) = pending.pop() {
            let path = format!("{table}.{key}");
            match (array, fields(&path, false)) {
                (false, Some(inner)) => {
                    pending.extend(inner.into_iter().map(|k| (path.clone(), k)));
                }
                _ => {
                    keys.insert(path);
                }
            }
        }
    }
    (keys, arrays)
}

/// The sections `keys` (`section.key`) are in.
fn sections_of(keys: &BTreeSet<String>) -> BTreeSet<String> {
    keys.iter()
        .filter_map(|k| k.split_once('.'))
        .map(|(s, _)| s.to_owned())
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Backticked `section.key` names in `text`, for the parser's sections.
fn named_keys(text: &str, sections: &BTreeSet<String>) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|code| code.split([' ', '=']).next())
        .filter(|name| {
            name.split_once('.').is_some_and(|(section, rest)| {
                sections.contains(section)
                    && !rest.is_empty()
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
            })
        })
        .map(str::to_owned)
        .collect()
}

/// `[section]` and `[[array]]` headers named in backticks in `text`.
fn named_sections(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|code| code.starts_with('[') && code.ends_with(']'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_configuration_reference_documents_every_key_the_parser_accepts() {
    let (keys, arrays) = parser_keys();
    assert!(keys.contains("server.listen") && keys.contains("routes.normalize.merge_slashes"));
    assert!(
        arrays.contains("upstreams") && arrays.contains("apps"),
        "{arrays:?}"
    );
    let reference = read("docs/configuration.md");
    let rows: Vec<&str> = reference.lines().filter(|l| l.starts_with("| `")).collect();
    // A row's first cell names its key (or a few keys side by side).
    let row_of = |name: &str| {
        rows.iter().find(|row| {
            row.split('|')
                .nth(1)
                .is_some_and(|cell| cell.contains(&format!("`{name}`")))
        })
    };
    let mut missing = Vec::new();
    for key in &keys {
        let (section, field) = key.split_once('.').unwrap_or_default();
        let documented = if arrays.contains(section) {
            row_of(&format!("[[{section}]]")).is_some_and(|row| row.contains(&format!("`{field}`")))
        } else {
            row_of(key).is_some()
        };
        if !documented {
            missing.push(key.as_str());
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md: {missing:?}"
    );
    let sections = sections_of(&keys);
    let stale: Vec<String> = named_keys(&reference, &sections)
        .into_iter()
        .filter(|name| {
            !keys.contains(name) && !arrays.contains(name.split('.').next().unwrap_or(""))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "docs/configuration.md names keys the parser does not know: {stale:?}"
    );
}

#[test]
fn both_readmes_name_the_same_real_keys_and_sections() {
    let (keys, _) = parser_keys();
    let sections = sections_of(&keys);
    let (english, chinese) = (read("README.md"), read("README.zh-CN.md"));
    let (en_keys, zh_keys) = (
        named_keys(&english, &sections),
        named_keys(&chinese, &sections),
    );
    assert!(en_keys.contains("wechat.secret"), "{en_keys:?}");
    assert_eq!(
        en_keys, zh_keys,
        "README.md and README.zh-CN.md name different config keys"
    );
    let unknown: Vec<&String> = en_keys.iter().filter(|k| !keys.contains(*k)).collect();
    assert!(
        unknown.is_empty(),
        "the READMEs name keys the parser does not know: {unknown:?}"
    );
    assert_eq!(
        named_sections(&english),
        named_sections(&chinese),
        "README.md and README.zh-CN.md name different config sections"
    );
    for section in named_sections(&english) {
        let name = section.trim_matches(['[', ']']);
        assert!(
            sections.contains(name),
            "the READMEs name a section the parser does not know: {section}"
        );
    }
    for readme in [&english, &chinese] {
        assert!(
            readme.contains("cargo run") && readme.contains("scripts/test"),
            "the two commands"
        );
    }
}

/// Every `| status | \`code\` |` row of docs/endpoints.md's error table.
fn documented_errors() -> BTreeSet<(u16, String)> {
    read("docs/endpoints.md")
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let status = cells.next()?.parse().ok()?;
            let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            Some((status, code.to_owned()))
        })
        .collect()
}

#[test]
fn the_error_table_lists_every_answer_and_only_those() {
    let answered: BTreeSet<(u16, String)> = wxgate::response::HttpError::catalogue()
        .into_iter()
        .map(|(status, code)| (status, code.to_owned()))
        .collect();
    let documented = documented_errors();
    assert!(documented.contains(&(401, "session_invalid".to_owned())));
    let missing: Vec<_> = answered.difference(&documented).collect();
    assert!(missing.is_empty(), "not in docs/endpoints.md: {missing:?}");
    let unknown: Vec<_> = documented.difference(&answered).collect();
    assert!(
        unknown.is_empty(),
        "documented, never answered: {unknown:?}"
    );
}

/// The reference a Chinese platform team reads first, in both languages.
const TRANSLATED: [&str; 5] = [
    "configuration",
    "backend",
    "client",
    "web-login",
    "operating",
];

/// What a reference names that a translation must name too: config keys,
/// paths (a route, `/_wxgate/auth/<…>` up to its placeholder) and error codes.
#[derive(Debug, PartialEq)]
struct Named {
    keys: BTreeSet<String>,
    paths: BTreeSet<String>,
    errors: BTreeSet<String>,
}

fn named(text: &str, sections: &BTreeSet<String>, codes: &BTreeSet<String>) -> Named {
    let spans: Vec<&str> = text.split('`').skip(1).step_by(2).collect();
    Named {
        keys: named_keys(text, sections),
        paths: spans
            .iter()
            .filter(|span| span.starts_with('/'))
            .filter_map(|span| span.split([' ', '<']).next())
            .map(str::to_owned)
            .collect(),
        errors: spans
            .iter()
            .flat_map(|span| span.split(|c: char| !(c.is_ascii_lowercase() || c == '_')))
            .filter(|word| codes.contains(*word))
            .map(str::to_owned)
            .collect(),
    }
}

#[test]
fn the_chinese_reference_names_the_same_keys_routes_and_error_codes() {
    let (keys, _) = parser_keys();
    let sections = sections_of(&keys);
    let codes: BTreeSet<String> = documented_errors().into_iter().map(|(_, c)| c).collect();
    for doc in TRANSLATED {
        let english = read(&format!("docs/{doc}.md"));
        let chinese = read(&format!("docs/{doc}.zh-CN.md"));
        let (en, zh) = (
            named(&english, &sections, &codes),
            named(&chinese, &sections, &codes),
        );
        assert!(
            !en.keys.is_empty() || !en.paths.is_empty(),
            "docs/{doc}.md names nothing: {en:?}"
        );
        assert_eq!(en.keys, zh.keys, "docs/{doc}: config keys differ");
        assert_eq!(en.paths, zh.paths, "docs/{doc}: routes and paths differ");
        assert_eq!(en.errors, zh.errors, "docs/{doc}: error codes differ");
        // Each links to the other.
        assert!(
            english.contains(&format!("({doc}.zh-CN.md)")),
            "docs/{doc}.md"
        );
        assert!(
            chinese.contains(&format!("({doc}.md)")),
            "docs/{doc}.zh-CN.md"
        );
        // The Chinese one is Chinese, not a copy.
        assert!(
            chinese
                .chars()
                .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
                .count()
                > 200,
            "docs/{doc}.zh-CN.md"
        );
    }
}
