//! What an operator looks at: the alert rules (deploy/prometheus, unit
//! tested with promtool), a real Prometheus scraping a running wxgate, and
//! the Grafana dashboard (deploy/grafana) — every metric the rules and the
//! dashboard use is one wxgate exports. (scripts/test installs Debian's
//! prometheus, which brings promtool.)

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::binding::BindingDouble;
use crate::common::{Gate, GateConfig, Upstream, WeChatDouble};

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/prometheus/wxgate-rules.yaml"
);
const RULE_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/prometheus/wxgate-rules.test.yaml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/grafana/wxgate-dashboard.json"
);

fn bin(name: &str) -> String {
    ["/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| name.to_owned())
}

/// A gate whose every metric family has a sample: a login (WeChat,
/// binding), a proxied request.
async fn busy_gate() -> (WeChatDouble, Upstream, BindingDouble, Gate) {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let binding = BindingDouble::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("binding", "url", &format!("\"{}\"", binding.url()));
    let gate = config.start().await;
    let id = gate.login("olga").await;
    assert_eq!(gate.get("/x", &id).send().await.unwrap().status(), 200);
    (wechat, upstream, binding, gate)
}

/// The metric families a scrape declares (`# TYPE name kind`).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// Every `wxgate_…` series name in `text`.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("wxgate_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        out.insert(text[start..end].to_owned());
        i = end;
    }
    out
}

/// The family a series belongs to (`x_total` → `x`, `x_bucket` → `x`, …).
fn family_of(series: &str, families: &BTreeSet<String>) -> Option<String> {
    if families.contains(series) {
        return Some(series.to_owned());
    }
    ["_total", "_bucket", "_sum", "_count", "_info", "_created"]
        .iter()
        .find_map(|suffix| series.strip_suffix(suffix))
        .filter(|name| families.contains(*name))
        .map(str::to_owned)
}

#[test]
fn the_alert_rules_pass_their_promtool_tests() {
    for args in [
        vec!["check", "rules", RULES],
        vec!["test", "rules", RULE_TESTS],
    ] {
        let out = Command::new(bin("promtool"))
            .args(&args)
            .output()
            .expect("promtool (scripts/test installs prometheus)");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_and_the_dashboard_use_only_metrics_wxgate_exports() {
    let (_w, _u, _b, gate) = busy_gate().await;
    let exported = families(&gate.metrics().await);
    assert!(exported.contains("wxgate_requests"), "{exported:?}");
    let dashboard = std::fs::read_to_string(DASHBOARD).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut exprs: Vec<&str> = json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    // The variables' queries too (`label_values(wxgate_build_info, instance)`).
    exprs.extend(
        json["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["query"].as_str()),
    );
    assert!(exprs.len() >= 10, "{exprs:?}");
    let rules = std::fs::read_to_string(RULES).unwrap();
    for (what, text) in [("dashboard", exprs.join("\n")), ("alert rules", rules)] {
        let names = referenced(&text);
        assert!(!names.is_empty(), "{what}");
        for name in names {
            assert!(
                family_of(&name, &exported).is_some(),
                "the {what} use {name}, which wxgate does not export ({exported:?})"
            );
        }
    }
    // And the dashboard shows every family wxgate exports.
    let shown: BTreeSet<String> = referenced(&exprs.join("\n"))
        .iter()
        .filter_map(|s| family_of(s, &exported))
        .collect();
    let missing: Vec<_> = exported.iter().filter(|f| !shown.contains(*f)).collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}

struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    addr: std::net::SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_wxgate() {
    let (_w, _u, _b, gate) = busy_gate().await;
    let dir = std::env::temp_dir().join(format!("wxgate-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let addr = crate::common::nginx::free_addr();
    let config = format!(
        "global:\n  scrape_interval: 1s\nrule_files: [{RULES:?}]\nscrape_configs:\n  - job_name: wxgate\n    \
         static_configs:\n      - targets: [\"{}\"]\n",
        gate.admin
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let child = Command::new(bin("prometheus"))
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (scripts/test installs it)");
    let prometheus = Prometheus { child, dir, addr };
    let http = reqwest::Client::new();
    let api = |path: &str| format!("http://{}{path}", prometheus.addr);
    // The target is up, and a wxgate series comes back through the query API.
    crate::common::eventually(
        60 * Duration::from_secs(1),
        "Prometheus never scraped wxgate",
        || async {
            let targets = http.get(api("/api/v1/targets")).send().await.ok()?;
            let query = http
                .get(api("/api/v1/query"))
                .query(&[("query", "sum(wxgate_requests_total)")])
                .send()
                .await
                .ok()?;
            let targets = targets.json::<serde_json::Value>().await.ok()?;
            let query = query.json::<serde_json::Value>().await.ok()?;
            let up = targets["data"]["activeTargets"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["health"] == "up"));
            let value = query["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok());
            (up && value.is_some_and(|v| v >= 1.0)).then_some(())
        },
    )
    .await;
    // The rules loaded.
    let rules: serde_json::Value = http
        .get(api("/api/v1/rules"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&"WxgateStoreDown"), "{rules}");
}
