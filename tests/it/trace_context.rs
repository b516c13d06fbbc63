//! W3C Trace Context through wxgate to a real backend: a client's
//! well-formed traceparent (and its tracestate) reaches the backend as
//! sent, so the backend's spans join the client's trace; a malformed or
//! doubled one never does, nor the tracestate beside it.

use crate::common::upstream::header_values;
use crate::common::{GateConfig, Upstream, WeChatDouble, json};

const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const STATE: &str = "congo=t61rcWkgMzE";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_gets_the_client_s_trace_and_never_a_malformed_one() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let session = gate.login("tia").await;
    let seen = |traceparents: &[&str]| {
        let mut request = gate.get("/orders", &session).header("tracestate", STATE);
        for tp in traceparents {
            request = request.header("traceparent", *tp);
        }
        async move {
            let echo = json(request).await;
            (
                header_values(&echo, "traceparent"),
                header_values(&echo, "tracestate"),
            )
        }
    };
    assert_eq!(
        seen(&[CLIENT]).await,
        (vec![CLIENT.to_owned()], vec![STATE.to_owned()])
    );
    let upper = CLIENT.to_uppercase();
    let zeros = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    for sent in [
        &["00-not-a-trace"][..],
        &[CLIENT, CLIENT],
        &[upper.as_str()],
        &[zeros],
    ] {
        assert_eq!(seen(sent).await, (vec![], vec![]), "{sent:?}");
    }
}
