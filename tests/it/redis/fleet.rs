//! Several replicas sharing one real Redis: logins travel, logouts reach
//! every replica's local cache by the revocation channel (the tests wait
//! until a replica has applied the message, never on a clock: local_ttl is
//! 30 s, so only the channel can end a cached session), restarts lose
//! nothing, outages degrade to 503 (never 401) and heal by themselves, and
//! nothing usable sits in Redis.

use std::time::{Duration, Instant};

use crate::common::link::Link;
use crate::common::redis::{RedisCluster, RedisServer};
use crate::common::upstream::header_values;
use crate::common::wechat::openid_of;
use crate::common::{Gate, GateConfig, Upstream, WeChatDouble, assert_error};

struct Fleet {
    wechat: WeChatDouble,
    upstream: Upstream,
    redis: RedisServer,
}

impl Fleet {
    async fn new() -> Self {
        Self {
            wechat: WeChatDouble::start().await,
            upstream: Upstream::start().await,
            redis: RedisServer::start(),
        }
    }

    fn config(&self) -> GateConfig {
        let mut config = GateConfig::new(&self.wechat, &self.upstream);
        config
            .redis(&self.redis.url())
            .set("session", "local_ttl", "\"30s\"");
        config
    }

    async fn replica(&self) -> Gate {
        let gate = self.config().start().await;
        gate.until_ready().await;
        gate
    }
}

async fn status(gate: &Gate, id: &str) -> u16 {
    gate.get("/x", id).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_at_one_replica_works_at_another() {
    let fleet = Fleet::new().await;
    let (a, b) = (fleet.replica().await, fleet.replica().await);
    let id = a.login("alma").await;
    let echo = crate::common::json(b.get("/x", &id)).await;
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("alma")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_ends_the_session_everywhere_by_the_revocation_channel() {
    let fleet = Fleet::new().await;
    let (a, b) = (fleet.replica().await, fleet.replica().await);
    let id = a.login("bert").await;
    // B now holds the session in its local cache (for up to 30 s: only
    // the revocation can end it there sooner).
    assert_eq!(status(&b, &id).await, 200);
    assert_eq!(status(&b, &id).await, 200);
    // The login's own message (its user changed) first, then the logout's:
    // the first request B answers once it has applied that is refused.
    // How soon it is applied is bench material, not a timed test.
    until_heard(&b, 0.0).await;
    let before = heard(&b).await;
    let logout = a
        .http
        .post(a.url("/logout"))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    until_heard(&b, before).await;
    assert_eq!(
        status(&b, &id).await,
        401,
        "B still accepts a logged-out session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_login_reaches_every_replica_s_cached_user() {
    let fleet = Fleet::new().await;
    let (a, b) = (fleet.replica().await, fleet.replica().await);
    let first = a.login("cleo").await;
    assert_eq!(status(&b, &first).await, 200); // B caches cleo's record
    until_heard(&b, 0.0).await; // the first login's message
    let before = heard(&b).await;
    a.login("union:cleo").await; // a new key and a unionid
    until_heard(&b, before).await;
    let echo = crate::common::json(b.get("/x", &first)).await;
    assert_eq!(
        header_values(&echo, "x-wx-unionid"),
        ["u_cleo"],
        "B kept a stale user record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_of_wxgate() {
    let fleet = Fleet::new().await;
    let a = fleet.replica().await;
    let id = a.login("dora").await;
    a.stop().await;
    let restarted = fleet.replica().await;
    assert_eq!(status(&restarted, &id).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_503_not_401_and_heals_without_a_restart() {
    let mut fleet = Fleet::new().await;
    let mut config = fleet.config();
    // Short, so the outage shows at once (a killed server refuses at once
    // anyway), yet long enough for a loaded 2-core CI machine.
    config.set("redis", "command_timeout", "\"1s\"");
    let (a, b, cached, unseen) = cached_at_a(&config, ["eve", "finn"]).await;

    fleet.redis.kill();
    // A answers from its local cache; B has never seen the session.
    assert_eq!(status(&a, &cached).await, 200);
    let response = b.get("/x", &unseen).send().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "store_unavailable").await;
    assert_error(
        a.post_login(r#"{"code":"gus"}"#).await,
        503,
        "store_unavailable",
    )
    .await;
    // Readiness is the replica's own: still 200, the store named down.
    until_store(&b, "down").await;
    let ready = b.http.get(b.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        crate::common::metric(&b.metrics().await, "wxgate_store_up"),
        0.0
    );

    fleet.redis.resume();
    b.until_ready().await;
    a.until_ready().await;
    assert_eq!(status(&b, &unseen).await, 200);
    assert_eq!(status(&b, &cached).await, 200);
    let id = b.login("hana").await;
    assert_eq!(status(&a, &id).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_usable_is_stored_at_rest() {
    let fleet = Fleet::new().await;
    let mut config = fleet.config();
    config.env(
        "WXGATE_STORE_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    );
    let gate = config.start().await;
    gate.until_ready().await;
    let id = gate.login("ivy").await;
    let response = gate.post_phone(&id, "phone:13912345678").await;
    assert_eq!(response.status(), 200);
    let dump = fleet.redis.dump();
    assert!(
        dump.iter().any(|(k, _)| k.starts_with("wxgate:s:")),
        "{dump:?}"
    );
    let text = format!("{dump:?}");
    for secret in [id.as_str(), &fleet.wechat.current_key("ivy"), "13912345678"] {
        assert!(
            !text.contains(secret),
            "{secret} is readable in Redis: {text}"
        );
    }
    // Expiry in Redis matches the session's lifetime.
    let (session_key, _) = dump
        .iter()
        .find(|(k, _)| k.starts_with("wxgate:s:"))
        .unwrap();
    let pttl = fleet.redis.pttl(session_key);
    assert!(
        pttl > 7 * 86_400_000 - 60_000 && pttl <= 7 * 86_400_000,
        "{pttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_refresh_writes_at_most_once_per_tenth_of_idle() {
    let fleet = Fleet::new().await;
    let mut config = fleet.config();
    config
        .set("session", "idle", "\"2s\"")
        .set("session", "local_ttl", "\"0s\"");
    let gate = config.start().await;
    gate.until_ready().await;
    let id = gate.login("jade").await;
    let calls = || {
        let mut c = fleet.redis.connection().unwrap();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut c)
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_pexpire:calls="))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let started = Instant::now();
    for _ in 0..40 {
        assert_eq!(status(&gate, &id).await, 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed().as_millis() as u64;
    let pexpires = calls();
    // One write per 200 ms at most (idle/10), however many requests came;
    // and at least one: the requests went on past 200 ms after the login,
    // so the idle clock had to be re-armed.
    assert!(elapsed >= 400, "{elapsed} ms");
    assert!(
        (1..=elapsed / 200 + 1).contains(&pexpires),
        "{pexpires} PEXPIREs in {elapsed} ms for 40 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_sessions_travel_and_logouts_reach_every_replica() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let cluster = RedisCluster::start();
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let replica = || async {
        let mut config = GateConfig::new(&wechat, &upstream);
        config
            .set("session", "store", "\"redis\"")
            .set("session", "local_ttl", "\"30s\"")
            .set("redis", "cluster", &format!("[{}]", nodes.join(", ")))
            .set("redis", "command_timeout", "\"2s\"");
        let gate = config.start().await;
        gate.until_ready().await;
        gate
    };
    let (a, b) = (replica().await, replica().await);
    // Sessions of several users, so their keys fall in several slots.
    let ids = [
        a.login("cora").await,
        a.login("dirk").await,
        a.login("edna").await,
    ];
    for id in &ids {
        assert_eq!(status(&b, id).await, 200, "a login at A works at B");
    }
    // The three logins' messages heard at B, then the logout's.
    until_heard(&b, 2.0).await;
    let before = heard(&b).await;
    let logout = a
        .http
        .post(a.url("/logout"))
        .header("x-session-id", &ids[0])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    until_heard(&b, before).await;
    assert_eq!(
        status(&b, &ids[0]).await,
        401,
        "B still accepts a logged-out session"
    );
    assert_eq!(status(&b, &ids[1]).await, 200, "the others live on");
    // The keys really are spread over the cluster's masters.
    let holding = cluster
        .nodes
        .iter()
        .filter(|node| !node.dump().is_empty())
        .count();
    assert!(holding >= 2, "all keys on {holding} node(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logout_ends_the_user_s_sessions_on_every_replica_by_the_revocation_channel() {
    let fleet = Fleet::new().await;
    let (a, b) = (fleet.replica().await, fleet.replica().await);
    let (at_a, at_b) = (a.login("rita").await, b.login("slow:1:rita").await);
    // Each replica now holds both sessions in its local cache (for up to 30 s).
    for (gate, id) in [(&a, &at_a), (&a, &at_b), (&b, &at_a), (&b, &at_b)] {
        assert_eq!(status(gate, id).await, 200);
    }
    // Both logins' messages heard at B, then the revocation's.
    until_heard(&b, 1.0).await;
    let before = heard(&b).await;
    let url = a.admin_url(&format!("/users/{}/logout", openid_of("rita")));
    let revoked = crate::common::json(a.http.post(url)).await;
    assert_eq!(revoked["revoked"], true);
    until_heard(&b, before).await;
    for (gate, id) in [(&a, &at_a), (&a, &at_b), (&b, &at_a), (&b, &at_b)] {
        assert_eq!(status(gate, id).await, 401, "a revoked session still works");
    }
    // The user's next login works at both.
    let again = b.login("slow:2:rita").await;
    assert_eq!(status(&a, &again).await, 200);
    assert_eq!(status(&b, &again).await, 200);
    assert_eq!(status(&a, &at_a).await, 401);
}

/// A replica on its own [`Link`] to the fleet's Redis, and the link.
async fn replica_behind_a_link(fleet: &Fleet) -> (Gate, Link) {
    let redis = std::net::SocketAddr::from(([127, 0, 0, 1], fleet.redis.port));
    let link = Link::start(redis).await;
    let mut config = fleet.config();
    config.redis(&link.url());
    let gate = config.start().await;
    gate.until_ready().await;
    (gate, link)
}

/// Revocations B has heard and applied (its own count).
async fn heard(b: &Gate) -> f64 {
    crate::common::metric(&b.metrics().await, "wxgate_store_revocations_heard_total")
}

/// Waits until B has applied more than `than` revocations.
async fn until_heard(b: &Gate, than: f64) {
    crate::common::until("B never heard the revocation", || async {
        heard(b).await > than
    })
    .await;
}

/// Holds B's Redis answers while `during` runs at A, until B has applied
/// the revocation it causes; then lets B's read (`read`, a request to B
/// already sent) finish, and returns its status: it began before the
/// change, so either answer is fair. The order is the issue's race, made
/// certain: B's read is in flight when the revocation lands, and ends after.
async fn while_b_reads<F: std::future::Future>(
    b: &Gate,
    link: &Link,
    read: impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
    during: F,
) -> (u16, F::Output) {
    link.hold();
    let (held, before) = (link.answers_held(), heard(b).await);
    let read = tokio::spawn(read);
    link.until(Link::answers_held, held).await;
    let out = during.await;
    until_heard(b, before).await;
    link.release();
    let status = read.await.unwrap().unwrap().status().as_u16();
    (status, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_during_another_replica_s_read_is_never_undone() {
    let fleet = Fleet::new().await;
    let a = fleet.replica().await;
    let (b, link) = replica_behind_a_link(&fleet).await;
    for round in 0..15 {
        let before = heard(&b).await;
        let id = a.login(&format!("race{round}")).await;
        // The login's own message has reached B before the race begins.
        until_heard(&b, before).await;
        let read = b.get("/x", &id).send();
        let logout = a
            .http
            .post(a.url("/logout"))
            .header("x-session-id", &id)
            .send();
        let (first, logout) = while_b_reads(&b, &link, read, logout).await;
        assert_eq!(logout.unwrap().status(), 204);
        assert!([200, 401].contains(&first), "round {round}: {first}");
        assert_eq!(
            status(&b, &id).await,
            401,
            "round {round}: B serves a session logged out while it was reading it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_during_another_replica_s_read_never_goes_back() {
    let fleet = Fleet::new().await;
    let a = fleet.replica().await;
    let (b, link) = replica_behind_a_link(&fleet).await;
    let payload = serde_json::json!({"nickName": "n", "watermark": {"appid": crate::common::APPID, "timestamp": 1}});
    for round in 0..10 {
        let user = format!("turn{round}");
        let before = heard(&b).await;
        let id = a.login(&user).await;
        until_heard(&b, before).await;
        // B reads the user's record (the operator's view: one Redis GET)
        // while A's new login rotates its key.
        let read = b
            .http
            .get(b.admin_url(&format!("/users/{}", openid_of(&user))))
            .send();
        let code = format!("slow:1:{user}");
        let (first, _) = while_b_reads(&b, &link, read, a.login(&code)).await;
        assert_eq!(first, 200, "round {round}");
        let newest = crate::common::encrypt(&fleet.wechat.current_key(&user), &payload);
        let body = serde_json::json!({"encryptedData": newest, "iv": crate::common::IV});
        assert_eq!(
            b.post_decrypt(&id, body).await.status(),
            200,
            "round {round}: B went back to the key before the rotation"
        );
    }
}

/// Two replicas of `config`, A with `users[0]`'s session in its local
/// cache, and `users[1]`'s session, which B has never looked up.
async fn cached_at_a(config: &GateConfig, users: [&str; 2]) -> (Gate, Gate, String, String) {
    let (a, b) = (config.start().await, config.start().await);
    a.until_ready().await;
    b.until_ready().await;
    let before = heard(&a).await;
    let cached = a.login(users[0]).await;
    let unseen = a.login(users[1]).await;
    // A hears its own logins' messages too; a read racing one is not cached.
    until_heard(&a, before + 1.0).await;
    assert_eq!(status(&a, &cached).await, 200);
    (a, b, cached, unseen)
}

/// Waits until `/readyz` names the store `state`.
async fn until_store(gate: &Gate, state: &str) -> serde_json::Value {
    gate.readyz_until(|_, body| body["store"] == state).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_requires_store_puts_the_store_back_in_readiness() {
    let mut fleet = Fleet::new().await;
    let mut config = fleet.config();
    config.set("redis", "command_timeout", "\"500ms\"").set(
        "admin",
        "ready_requires_store",
        "true",
    );
    let gate = config.start().await;
    gate.until_ready().await;
    fleet.redis.kill();
    let (status, body) = gate.readyz_until(|_, body| body["store"] == "down").await;
    assert_eq!(
        (status, &body["status"]),
        (503, &"store_unavailable".into()),
        "{body}"
    );
    fleet.redis.resume();
    gate.until_ready().await;
    assert_eq!(
        crate::common::metric(&gate.metrics().await, "wxgate_store_up"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_cached_sessions_through_an_outage_and_nothing_else() {
    let mut fleet = Fleet::new().await;
    let mut config = fleet.config();
    config
        .set("session", "local_ttl", "\"200ms\"")
        .set("session", "stale_if_error", "\"1m\"")
        .set("redis", "command_timeout", "\"500ms\"");
    let (a, b, cached, unseen) = cached_at_a(&config, ["ivy", "jon"]).await;

    fleet.redis.kill();
    until_store(&a, "down").await;
    // Well past local_ttl (a TTL, not a race: nothing here waits on another task).
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..3 {
        assert_eq!(
            status(&a, &cached).await,
            200,
            "a cached session keeps working"
        );
    }
    let served = crate::common::metric(&a.metrics().await, "wxgate_store_stale_served_total");
    assert!(served >= 3.0, "{served}");
    // What the cache does not hold, and every write, still waits for Redis.
    assert_error(
        b.get("/x", &unseen).send().await.unwrap(),
        503,
        "store_unavailable",
    )
    .await;
    assert_error(
        a.post_login(r#"{"code":"kai"}"#).await,
        503,
        "store_unavailable",
    )
    .await;
    let logout = a
        .http
        .post(a.url("/logout"))
        .header("x-session-id", &cached)
        .send();
    assert_error(logout.await.unwrap(), 503, "store_unavailable").await;

    // Back without a restart: stale copies are dropped, Redis decides again.
    fleet.redis.resume();
    a.until_ready().await;
    b.until_ready().await;
    assert_eq!(status(&b, &unseen).await, 200);
    let logout = a
        .http
        .post(a.url("/logout"))
        .header("x-session-id", &cached)
        .send();
    assert_eq!(logout.await.unwrap().status(), 204);
    assert_eq!(status(&a, &cached).await, 401);
    assert_eq!(status(&b, &cached).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stale_if_error_an_outage_past_local_ttl_is_503() {
    let mut fleet = Fleet::new().await;
    let mut config = fleet.config();
    config
        .set("session", "local_ttl", "\"200ms\"")
        .set("redis", "command_timeout", "\"500ms\"");
    let a = config.start().await;
    a.until_ready().await;
    let cached = a.login("lux").await;
    assert_eq!(status(&a, &cached).await, 200);
    fleet.redis.kill();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_error(
        a.get("/x", &cached).send().await.unwrap(),
        503,
        "store_unavailable",
    )
    .await;
    fleet.redis.resume();
    a.until_ready().await;
    assert_eq!(status(&a, &cached).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_prefix_keeps_a_fleet_apart_and_its_revocations_reach_its_replicas() {
    let fleet = Fleet::new().await;
    let with_prefix = |prefix: &str| {
        let mut config = fleet.config();
        config.set("redis", "key_prefix", &format!("\"{prefix}\""));
        config
    };
    let (a, b) = (
        with_prefix("shop:").start().await,
        with_prefix("shop:").start().await,
    );
    let other = with_prefix("club:").start().await;
    for gate in [&a, &b, &other] {
        gate.until_ready().await;
    }
    let id = a.login("kai").await;
    assert_eq!(
        status(&b, &id).await,
        200,
        "the same prefix shares sessions"
    );
    assert_eq!(status(&other, &id).await, 401, "another prefix does not");
    // Every key the fleet wrote is under its prefix.
    let keys: Vec<String> = fleet.redis.dump().into_iter().map(|(k, _)| k).collect();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("shop:")),
        "{keys:?}"
    );
    // B caches the session; a logout at A reaches it on the prefix's channel.
    assert_eq!(status(&b, &id).await, 200);
    let logout = a.http.post(a.url("/logout")).header("x-session-id", &id);
    assert_eq!(logout.send().await.unwrap().status(), 204);
    crate::common::until("B still accepts a logged-out session", || async {
        status(&b, &id).await == 401
    })
    .await;
}
