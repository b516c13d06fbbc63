//! One conformance suite for every session store, the oauth2-proxy way:
//! the same cases run against the memory store and the Redis store (with
//! its local cache on and off), through the `SessionStore` trait only.

use std::future::Future;
use std::time::Duration;

use crate::common::redis::{RedisCluster, RedisServer};
use http::HeaderName;
use wxgate::config::secret::Secret;
use wxgate::config::{RedisConfig, RedisNodes, SessionConfig};
use wxgate::domain::session::{
    AppTag, BoundId, MemoryStore, PendingLogin, Phone, Profile, RedisStore, SessionId,
    SessionStore, Sessions, UserRecord, UserUpdate,
};
use wxgate::metrics::StoreMetrics;

fn session_config(ttl: Duration, idle: Option<Duration>, capacity: u64) -> SessionConfig {
    SessionConfig {
        ttl,
        idle,
        capacity,
        header: HeaderName::from_static("x-session-id"),
        forward_session_header: false,
    }
}

/// The `[wechat]` app: records keyed by openid alone.
fn app() -> AppTag {
    AppTag::new("wxconformance", true)
}

fn user(openid: &str, key: &str) -> UserRecord {
    UserRecord::new(&app(), openid, None, Secret::new(key)).unwrap()
}

fn phone(number: &str) -> Phone {
    Phone {
        phone_number: number.into(),
        pure_phone_number: number.into(),
        country_code: "86".into(),
    }
}

/// Runs `case` against every backend, each built for `config`.
async fn for_each_store<F, Fut>(config: SessionConfig, case: F)
where
    F: Fn(Box<dyn Fn() -> Sessions>) -> Fut,
    Fut: Future<Output = ()>,
{
    let memory = config.clone();
    case(Box::new(move || {
        Sessions::Memory(MemoryStore::new(&memory, StoreMetrics::default(), false))
    }))
    .await;
    // With the local cache, without, and with stale_if_error (which must
    // change nothing while Redis answers).
    for (local_ttl, stale_if_error) in [
        (Duration::from_secs(5), None),
        (Duration::ZERO, None),
        (Duration::from_secs(5), Some(Duration::from_secs(60))),
    ] {
        let server = RedisServer::start();
        let redis = RedisConfig {
            nodes: RedisNodes::Single(server.url()),
            key_prefix: "conformance:".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            local_ttl,
            stale_if_error,
            store_key: None,
        };
        let session = config.clone();
        case(Box::new(move || {
            Sessions::Redis(Box::new(
                RedisStore::new(
                    &redis,
                    &session,
                    vec![app()],
                    StoreMetrics::default(),
                    false,
                )
                .unwrap(),
            ))
        }))
        .await;
        drop(server);
    }
    // A real three-master Redis Cluster, every operation going to it.
    let cluster = RedisCluster::start();
    let redis = RedisConfig {
        nodes: RedisNodes::Cluster(cluster.urls()),
        key_prefix: "conformance:".into(),
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        local_ttl: Duration::ZERO,
        stale_if_error: None,
        store_key: None,
    };
    case(Box::new(move || {
        Sessions::Redis(Box::new(
            RedisStore::new(&redis, &config, vec![app()], StoreMetrics::default(), false).unwrap(),
        ))
    }))
    .await;
    drop(cluster);
}

fn name(store: &Sessions) -> &'static str {
    match store {
        Sessions::Memory(_) => "memory",
        Sessions::Redis(_) => "redis",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_resolve() {
    for_each_store(
        session_config(Duration::from_secs(60), None, 100),
        |make| async move {
            let store = make();
            let id = store.login(user("o_create", "a2V5MQ==")).await.unwrap().0;
            let resolved = store
                .resolve(&id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{}", name(&store)));
            assert_eq!(resolved.user.openid(), "o_create", "{}", name(&store));
            assert_eq!(resolved.user.session_key.expose(), "a2V5MQ==");
            assert!(
                resolved.expires_in <= Duration::from_secs(60)
                    && resolved.expires_in > Duration::from_secs(55)
            );
            assert!(
                store
                    .resolve(&SessionId::generate().unwrap())
                    .await
                    .unwrap()
                    .is_none(),
                "{}",
                name(&store)
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_expiry() {
    for_each_store(
        session_config(Duration::from_millis(1200), None, 100),
        |make| async move {
            let store = make();
            let id = store.login(user("o_ttl", "k")).await.unwrap().0;
            assert!(
                store.resolve(&id).await.unwrap().is_some(),
                "{}",
                name(&store)
            );
            tokio::time::sleep(Duration::from_millis(1800)).await;
            assert!(
                store.resolve(&id).await.unwrap().is_none(),
                "{}",
                name(&store)
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_refresh_and_idle_expiry() {
    let config = session_config(
        Duration::from_secs(60),
        Some(Duration::from_millis(1500)),
        100,
    );
    for_each_store(config, |make| async move {
        let store = make();
        let id = store.login(user("o_idle", "k")).await.unwrap().0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                store.resolve(&id).await.unwrap().is_some(),
                "{} slid",
                name(&store)
            );
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            store.resolve(&id).await.unwrap().is_none(),
            "{} idled out",
            name(&store)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_one_session() {
    for_each_store(
        session_config(Duration::from_secs(60), None, 100),
        |make| async move {
            let store = make();
            let a = store.login(user("o_out", "k")).await.unwrap().0;
            let b = store.login(user("o_out", "k")).await.unwrap().0;
            store.logout(&a).await.unwrap();
            store.logout(&a).await.unwrap();
            store.logout(&SessionId::generate().unwrap()).await.unwrap();
            assert!(
                store.resolve(&a).await.unwrap().is_none(),
                "{}",
                name(&store)
            );
            assert!(
                store.resolve(&b).await.unwrap().is_some(),
                "{}",
                name(&store)
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relogin_updates_the_user_for_every_session() {
    for_each_store(
        session_config(Duration::from_secs(60), None, 100),
        |make| async move {
            let store = make();
            let first = store
                .login(user("o_re", "b2xkb2xkb2xkb2xkb2xk"))
                .await
                .unwrap()
                .0;
            assert!(store.resolve(&first).await.unwrap().is_some());
            assert!(
                store
                    .update_user("o_re", UserUpdate::SetPhone(phone("13800000001")))
                    .await
                    .unwrap()
                    .is_some()
            );
            let newer = UserRecord::new(
                &app(),
                "o_re",
                Some("u_re"),
                Secret::new("bmV3bmV3bmV3bmV3bmV3"),
            )
            .unwrap();
            let second = store.login(newer).await.unwrap().0;
            for id in [&first, &second] {
                let user = store
                    .resolve(id)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{}", name(&store)))
                    .user;
                assert_eq!(
                    user.session_key.expose(),
                    "bmV3bmV3bmV3bmV3bmV3",
                    "{}",
                    name(&store)
                );
                assert_eq!(user.unionid(), Some("u_re"), "{}", name(&store));
                assert_eq!(
                    user.phone.as_deref(),
                    Some(&phone("13800000001")),
                    "{}: phone survives re-login",
                    name(&store)
                );
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_mark_applies_only_to_the_key_checked() {
    for_each_store(
        session_config(Duration::from_secs(60), None, 100),
        |make| async move {
            let store = make();
            let id = store.login(user("o_stale", "a2V5MQ==")).await.unwrap().0;
            // A check of a key the user no longer has changes nothing.
            store
                .update_user(
                    "o_stale",
                    UserUpdate::KeyStale {
                        key: Secret::new("b2xk"),
                    },
                )
                .await
                .unwrap();
            assert!(
                !store.resolve(&id).await.unwrap().unwrap().user.key_stale,
                "{}",
                name(&store)
            );
            store
                .update_user(
                    "o_stale",
                    UserUpdate::KeyStale {
                        key: Secret::new("a2V5MQ=="),
                    },
                )
                .await
                .unwrap();
            assert!(
                store.resolve(&id).await.unwrap().unwrap().user.key_stale,
                "{}",
                name(&store)
            );
            // A new login brings a fresh key and clears the mark.
            store.login(user("o_stale", "a2V5Mg==")).await.unwrap();
            assert!(
                !store.resolve(&id).await.unwrap().unwrap().user.key_stale,
                "{}",
                name(&store)
            );
            assert!(
                store
                    .update_user("o_nobody", UserUpdate::SetPhone(phone("1")))
                    .await
                    .unwrap()
                    .is_none(),
                "{}",
                name(&store)
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_overflow_never_refuses_the_newest_sessions() {
    for_each_store(
        session_config(Duration::from_secs(60), None, 5),
        |make| async move {
            let store = make();
            let mut ids = Vec::new();
            for i in 0..20 {
                ids.push(
                    store
                        .login(user(&format!("o_cap{i}"), "k"))
                        .await
                        .unwrap()
                        .0,
                );
            }
            for id in &ids[15..] {
                assert!(
                    store.resolve(id).await.unwrap().is_some(),
                    "{}",
                    name(&store)
                );
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_user_ends_all_its_sessions_and_the_next_login_works() {
    for_each_store(
        session_config(Duration::from_secs(60), None, 100),
        |make| async move {
            let store = make();
            let a = store.login(user("o_rev", "a2V5YQ==")).await.unwrap().0;
            let b = store.login(user("o_rev", "a2V5Yg==")).await.unwrap().0;
            let other = store.login(user("o_keep", "a2V5Yw==")).await.unwrap().0;
            assert!(store.resolve(&a).await.unwrap().is_some());
            assert!(
                store.revoke_user("o_rev").await.unwrap(),
                "{}",
                name(&store)
            );
            for id in [&a, &b] {
                assert!(
                    store.resolve(id).await.unwrap().is_none(),
                    "{}: revoked session resolves",
                    name(&store)
                );
            }
            assert!(store.resolve(&other).await.unwrap().is_some());
            // The next login opens a working session; the revoked ones stay dead.
            let c = store.login(user("o_rev", "a2V5ZA==")).await.unwrap().0;
            assert!(
                store.resolve(&c).await.unwrap().is_some(),
                "{}",
                name(&store)
            );
            for id in [&a, &b] {
                assert!(
                    store.resolve(id).await.unwrap().is_none(),
                    "{}",
                    name(&store)
                );
            }
            assert!(!store.revoke_user("o_nobody").await.unwrap());
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_user_id_is_shared_by_all_sessions_and_survives_relogin() {
    for_each_store(
        session_config(Duration::from_secs(60), None, 100),
        |make| async move {
            let store = make();
            assert!(store.user("o_bind").await.unwrap().is_none());
            let first = store.login(user("o_bind", "a2V5YQ==")).await.unwrap().0;
            let id = BoundId::new("member-7").unwrap();
            let updated = store
                .update_user("o_bind", UserUpdate::SetUserId(id.clone()))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(updated.user_id(), Some(&id), "{}", name(&store));
            // A later login carries no bound id of its own: the stored one stays.
            let second = store.login(user("o_bind", "a2V5Yg==")).await.unwrap().0;
            for session in [&first, &second] {
                let resolved = store.resolve(session).await.unwrap().unwrap();
                assert_eq!(resolved.user.user_id(), Some(&id), "{}", name(&store));
            }
            let record = store.user("o_bind").await.unwrap().unwrap();
            assert_eq!(record.user_id(), Some(&id));
            assert_eq!(record.session_key.expose(), "a2V5Yg==");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_browser_login_is_taken_once_and_not_after_its_ttl() {
    for_each_store(
        session_config(Duration::from_secs(60), None, 100),
        |make| async move {
            let store = make();
            let pending = PendingLogin {
                appid: "wxconformance".into(),
                redirect: "/orders?id=7".into(),
            };
            let ttl = Duration::from_secs(30);
            store
                .put_pending("state-a", pending.clone(), ttl)
                .await
                .unwrap();
            store
                .put_pending("state-b", pending.clone(), ttl)
                .await
                .unwrap();
            assert_eq!(store.take_pending("state-unknown").await.unwrap(), None);
            let taken = store.take_pending("state-a").await.unwrap();
            assert_eq!(taken, Some(pending.clone()), "{}", name(&store));
            assert_eq!(
                store.take_pending("state-a").await.unwrap(),
                None,
                "{}: once",
                name(&store)
            );
            assert_eq!(
                store.take_pending("state-b").await.unwrap(),
                Some(pending.clone())
            );
            // Past its ttl, nothing (tests/web_login.rs: across replicas).
            store
                .put_pending("state-c", pending.clone(), Duration::from_millis(150))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(
                store.take_pending("state-c").await.unwrap(),
                None,
                "{}: expired",
                name(&store)
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_user_s_profile_is_kept_across_logins() {
    for_each_store(
        session_config(Duration::from_secs(60), None, 100),
        |make| async move {
            let store = make();
            let mut first = user("o_prof", "");
            first.profile = Some(Box::new(Profile {
                nickname: "Hana".into(),
                headimgurl: "https://thirdwx.qlogo.cn/h/132".into(),
            }));
            let (id, stored) = store.login(first).await.unwrap();
            assert_eq!(stored.profile.as_ref().unwrap().nickname, "Hana");
            // An snsapi_base login brings no profile: the stored one stays.
            store.login(user("o_prof", "")).await.unwrap();
            let resolved = store.resolve(&id).await.unwrap().unwrap();
            assert_eq!(
                resolved.user.profile.as_ref().map(|p| p.nickname.as_str()),
                Some("Hana"),
                "{}",
                name(&store)
            );
            let record = store.user("o_prof").await.unwrap().unwrap();
            assert_eq!(
                record.profile.as_ref().unwrap().headimgurl,
                "https://thirdwx.qlogo.cn/h/132"
            );
        },
    )
    .await;
}
