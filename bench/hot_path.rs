//! Micro-benchmarks of the request hot path: session id parse + lookup in
//! the memory store, and header strip + inject. `cargo bench --bench hot_path`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use wxgate::config::Config;
use wxgate::config::secret::Secret;
use wxgate::domain::identity::IdentityHeaders;
use wxgate::domain::session::{AppTag, MemoryStore, SessionId, SessionStore, UserRecord};
use wxgate::metrics::StoreMetrics;

const CONFIG: &str = r#"
[upstream]
url = "http://127.0.0.1:3000"
[wechat]
appid = "wx1234567890abcdef"
secret = "s"
"#;

fn typical_request() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) MicroMessenger/8.0.44",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("content-type", "application/json"),
        (
            "referer",
            "https://servicewechat.com/wx1234567890abcdef/12/page-frame.html",
        ),
        (
            "x-session-id",
            "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF",
        ),
        ("x-request-id", "5f0c6a1e-2d4b-4c1a-9a6b-1f2e3d4c5b6a"),
        ("connection", "keep-alive"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers
}

fn session_lookup(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = Config::parse(CONFIG, &|_| None).expect("config");
    let store = MemoryStore::new(&config.session, StoreMetrics::default(), false);
    let ids: Vec<String> = runtime.block_on(async {
        let mut ids = Vec::new();
        for i in 0..100_000 {
            let user = UserRecord::new(
                &AppTag::new("wxbench", true),
                &format!("o{i:0>27}"),
                None,
                Secret::new("a2V5a2V5a2V5a2V5a2V5aw=="),
            )
            .expect("user");
            ids.push(store.login(user).await.expect("login").0.encode());
        }
        ids
    });
    let mut i = 0;
    c.bench_function("session id parse + resolve (100k sessions)", |b| {
        b.to_async(&runtime).iter(|| {
            i = (i + 7919) % ids.len();
            let id = SessionId::parse(ids[i].as_bytes()).expect("id");
            let store = &store;
            async move { black_box(store.resolve(&id).await.expect("resolve")) }
        })
    });
    c.bench_function("session id parse + resolve (unknown id)", |b| {
        let unknown = SessionId::generate().expect("id").encode();
        b.to_async(&runtime).iter(|| {
            let id = SessionId::parse(unknown.as_bytes()).expect("id");
            let store = &store;
            async move { black_box(store.resolve(&id).await.expect("resolve")) }
        })
    });
}

fn headers(c: &mut Criterion) {
    let config = Config::parse(CONFIG, &|_| None).expect("config");
    let identity = IdentityHeaders::new(
        &config.headers,
        &config.session,
        [config.apps[0].appid.as_str()],
    );
    let user = UserRecord::new(
        &AppTag::new("wxbench", true),
        "oGZUI0egBJY1zhBYw2KhdUfwVJJE",
        Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA"),
        Secret::new("k"),
    )
    .expect("user");
    let request = typical_request();
    c.bench_function("hop-by-hop strip + identity strip + inject", |b| {
        b.iter_batched_ref(
            || request.clone(),
            |headers| {
                wxgate::wire::hop_by_hop::strip(headers, false);
                identity.strip(headers, false);
                identity.inject(headers, &user);
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = hot_path;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = session_lookup, headers
}
criterion_main!(hot_path);
