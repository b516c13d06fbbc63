//! Route classification of any request path (public prefixes normalised
//! in every way a backend may read them): never a panic, and a path judged
//! public keeps the prefix under its plainest reading.
#![no_main]

use std::sync::LazyLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use wxgate::Config;
use wxgate::route::{Route, Routes};

static ROUTES: LazyLock<Routes> = LazyLock::new(|| {
    let text = "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wxapp\"\n\
                secret = \"s\"\n[routes]\npublic = [\"/public\", \"GET /static\"]\n";
    Routes::new(&Config::parse(text, &|_| None).expect("config").routes)
});

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    for method in [Method::GET, Method::POST] {
        if ROUTES.classify(&method, path) == Route::Public && !path.contains(['%', '\\', ';', '.'])
        {
            let plain: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            assert!(
                matches!(plain.first(), Some(&"public" | &"static")),
                "{path:?}"
            );
        }
    }
});
