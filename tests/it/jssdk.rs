//! JS-SDK signatures for an official account's H5 pages
//! (`/_wxgate/jssdk`): signed per WeChat's algorithm with the account's
//! jsapi_ticket, checked here with the test's own SHA-1; a page of another
//! host refused.

use sha1::{Digest, Sha1};

use crate::common::assert_error;
use crate::common::web::{OA, PUBLIC, Setup};

fn sha1_hex(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h5_page_gets_a_signature_wechat_s_js_sdk_accepts() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    let page = format!("{PUBLIC}/shop/item?id=7&from=share");
    let ask = |url: &str| {
        gate.http
            .get(gate.url("/_wxgate/jssdk"))
            .query(&[("url", url)])
            .send()
    };
    let answer: serde_json::Value = ask(&format!("{page}#reviews"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (calls, ticket) = setup.wechat.ticket_of(OA);
    let ticket = ticket.expect("wxgate fetched the account's ticket");
    assert_eq!(answer["appId"], OA, "{answer}");
    let nonce = answer["nonceStr"].as_str().unwrap();
    let timestamp = answer["timestamp"].as_u64().unwrap();
    // WeChat's algorithm, by the test's own hand: the fragment is not signed.
    let expected = sha1_hex(&format!(
        "jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={page}"
    ));
    assert_eq!(answer["signature"], expected.as_str());
    // The ticket is cached: another page, no second getticket.
    let again: serde_json::Value = ask(&format!("{PUBLIC}/other"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(again["nonceStr"], answer["nonceStr"]);
    assert_eq!(setup.wechat.ticket_of(OA).0, calls);
    // Counted as what it is, once.
    let series =
        format!(r#"wxgate_wechat_api_calls_total{{app="{OA}",api="getticket",result="ok"}}"#);
    assert_eq!(crate::common::metric(&gate.metrics().await, &series), 1.0);
    // Another host, a lookalike, userinfo, no scheme, no url: refused.
    for url in [
        "https://evil.example/shop",
        "https://m.example.com.evil.example/",
        "https://m.example.com@evil.example/",
        "javascript:alert(1)",
        "/shop",
    ] {
        assert_error(ask(url).await.unwrap(), 400, "bad_request").await;
    }
    let none = gate
        .http
        .get(gate.url("/_wxgate/jssdk"))
        .send()
        .await
        .unwrap();
    assert_error(none, 400, "bad_request").await;
    gate.stop().await;
}
