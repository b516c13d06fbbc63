//! The app's access token shared by a fleet through one real Redis (中控):
//! one `stable_token` call for the fleet, not one per replica; a report of
//! a rejected token at any replica refreshes it once for all; a token
//! replaced by one replica is what every other hands out next; the token
//! is sealed at rest. Each test starts from a state where a fetch is due:
//! the replicas' start-up checks keep their tokens to themselves.

use std::time::Duration;

use crate::common::redis::RedisServer;
use crate::common::{APPID, Gate, GateConfig, Upstream, WeChatDouble, json, metric};

const ADMIN_TOKEN: &str = "an-admin-token-of-32-characters!";
const STORE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

struct Fleet {
    wechat: WeChatDouble,
    _upstream: Upstream,
    redis: RedisServer,
    a: Gate,
    b: Gate,
}

impl Fleet {
    async fn start() -> Self {
        let wechat = WeChatDouble::start().await;
        let upstream = Upstream::start().await;
        let redis = RedisServer::start();
        let mut config = GateConfig::new(&wechat, &upstream);
        config
            .redis(&redis.url())
            .env("WXGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("WXGATE_STORE_KEY", STORE_KEY);
        let (a, b) = (config.start().await, config.start().await);
        a.until_ready().await;
        b.until_ready().await;
        Self {
            wechat,
            _upstream: upstream,
            redis,
            a,
            b,
        }
    }

    fn replicas(&self) -> [&Gate; 2] {
        [&self.a, &self.b]
    }

    async fn fleet_metric(&self, series: &str) -> f64 {
        metric(&self.a.metrics().await, series) + metric(&self.b.metrics().await, series)
    }
}

fn token_url(gate: &Gate, action: &str) -> String {
    gate.admin_url(&format!("/apps/{APPID}/access_token{action}"))
}

async fn token_at(gate: &Gate) -> serde_json::Value {
    json(gate.http.get(token_url(gate, "")).bearer_auth(ADMIN_TOKEN)).await
}

async fn report(gate: &Gate, token: &str) -> bool {
    let request = gate
        .http
        .post(token_url(gate, "/invalidate"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "access_token": token }));
    json(request).await["refreshed"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_callers_across_two_replicas_cause_one_fetch() {
    let fleet = Fleet::start().await;
    // Each replica's start-up check asked once; the fleet holds nothing yet.
    assert_eq!(fleet.wechat.token_calls(), (2, 0));
    fleet.wechat.slow_tokens(Duration::from_millis(300));
    let asks = (0..200).map(|i| token_at(fleet.replicas()[i % 2]));
    let answers = futures_util::future::join_all(asks).await;
    let token = answers[0]["access_token"].as_str().unwrap().to_owned();
    for answer in &answers {
        assert_eq!(answer["access_token"], token.as_str(), "{answer}");
        assert!(answer["expires_in"].as_u64().unwrap() > 7000, "{answer}");
    }
    assert_eq!(fleet.wechat.token_calls(), (3, 0));
    // wxgate's own calls at either replica use it: no further fetch.
    for gate in fleet.replicas() {
        let id = gate.login(&format!("slow:1:uma{}", gate.addr.port())).await;
        assert_eq!(
            gate.post_phone(&id, "phone:13800000001").await.status(),
            200
        );
    }
    assert_eq!(fleet.wechat.token_calls(), (3, 0));
    // The counters of the two replicas add up to the calls WeChat saw.
    let calls =
        r#"wxgate_wechat_api_calls_total{app="wxtestappid0001",api="stable_token",result="ok"}"#;
    assert_eq!(fleet.fleet_metric(calls).await, 3.0);
    let fetched = r#"wxgate_wechat_tokens_fetched_total{app="wxtestappid0001",token="access_token",forced="false"}"#;
    assert_eq!(fleet.fleet_metric(fetched).await, 3.0);
    // Sealed at rest: Redis holds it, but not readable.
    let dump = format!("{:?}", fleet.redis.dump());
    assert!(
        dump.contains("wxgate:c:wxtestappid0001:access_token"),
        "{dump}"
    );
    assert!(
        !dump.contains(&token),
        "the token is readable in Redis: {dump}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_at_both_replicas_force_one_refresh_for_the_fleet() {
    let fleet = Fleet::start().await;
    let rejected = token_at(&fleet.a).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fleet.wechat.token_calls(), (3, 0));
    let reports = (0..50).map(|i| report(fleet.replicas()[i % 2], &rejected));
    let refreshed = futures_util::future::join_all(reports).await;
    assert_eq!(refreshed.iter().filter(|r| **r).count(), 1, "{refreshed:?}");
    assert_eq!(fleet.wechat.token_calls(), (3, 1));
    // Both hand out the new one at once; a report of the old one changes nothing.
    let replaced = token_at(&fleet.b).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(replaced, rejected);
    assert_eq!(token_at(&fleet.a).await["access_token"], replaced.as_str());
    assert!(!report(&fleet.a, &rejected).await);
    assert!(!report(&fleet.b, &rejected).await);
    assert_eq!(fleet.wechat.token_calls(), (3, 1));
    let forced = r#"wxgate_wechat_tokens_fetched_total{app="wxtestappid0001",token="access_token",forced="true"}"#;
    assert_eq!(fleet.fleet_metric(forced).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_one_replica_replaced_is_what_the_other_hands_out() {
    let fleet = Fleet::start().await;
    let first = token_at(&fleet.a).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // It reaches its end at WeChat: B's own call meets 42001 and replaces
    // it for the fleet with one normal fetch; A hands out B's replacement.
    fleet.wechat.expire_token();
    let id = fleet.b.login("vera").await;
    assert_eq!(
        fleet.b.post_phone(&id, "phone:13800000002").await.status(),
        200
    );
    assert_eq!(fleet.wechat.token_calls(), (4, 0));
    let now = token_at(&fleet.a).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(now, first);
    assert_eq!(fleet.wechat.token_calls(), (4, 0));
    let id = fleet.a.login("wim").await;
    assert_eq!(
        fleet.a.post_phone(&id, "phone:13800000003").await.status(),
        200
    );
    assert_eq!(fleet.wechat.token_calls(), (4, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_out_of_reach_a_replica_serves_its_own_copy() {
    let mut fleet = Fleet::start().await;
    let token = token_at(&fleet.a).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    fleet.redis.kill();
    // Not a 503: the replica's copy of the token it fetched serves.
    assert_eq!(token_at(&fleet.a).await["access_token"], token.as_str());
    assert_eq!(fleet.wechat.token_calls(), (3, 0));
    fleet.redis.resume();
}
