//! Any request path made canonical, then classified: never a panic; a
//! canonical path has no dot segment, no `//` and nothing backends read
//! differently, and one judged public is under its prefix.
#![no_main]

use std::sync::LazyLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use wxgate::Config;
use wxgate::domain::route::{Route, Routes};
use wxgate::wire::canonical_path::{PathPolicy, canonicalize};

static ROUTES: LazyLock<Routes> = LazyLock::new(|| {
    let text = "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wxapp\"\n\
                secret = \"s\"\n[routes]\npublic = [\"/public\", \"GET /static\"]\n";
    Routes::new(&Config::parse(text, &|_| None).expect("config").routes)
});

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(canonical) = canonicalize(path, &PathPolicy::default()) else {
        return;
    };
    assert!(canonical.starts_with('/'), "{path:?}");
    assert!(
        !canonical.contains("//") && !canonical.contains(['\\', ';']),
        "{path:?}"
    );
    assert!(
        canonical.split('/').all(|s| s != "." && s != ".."),
        "{path:?} -> {canonical:?}"
    );
    for method in [Method::GET, Method::POST] {
        if ROUTES.classify(&method, &canonical) == Route::Public {
            let first = canonical.split('/').nth(1).unwrap_or("");
            assert!(
                matches!(first, "public" | "static"),
                "{path:?} -> {canonical:?}"
            );
        }
    }
});
