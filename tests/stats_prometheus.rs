//! `/metrics`: the registry's text parsed by a strict line parser of the
//! Prometheus text format (0.0.4) and checked for OpenMetrics' shape; a
//! real processor's and a real feed-sim's `/metrics` pass `promtool check
//! metrics` and expose exactly the families the code says; and every
//! metric the Grafana dashboard in `dashboards/grafana.json` queries
//! exists.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use support::fleet::{http_get_with, spawn_feed, spawn_processor};
use tickshard::stats::{
    metric_names, processor_registry, BadInput, ClusterValues, Metrics, TextFormat,
    LATENCY_BUCKETS_SECONDS,
};
use tickshard_testkit::exposition::{counter, parse, parse_value, Exposition};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn busy_metrics() -> Metrics {
    let m = Metrics::new();
    m.counters.ticks_in.add(1000);
    m.counters.applied.add(600);
    m.counters.forwarded_out.add(400);
    m.counters.leases_acquired.add(22);
    m.bad_input(BadInput::MalformedJson, &"not json");
    for v in 1..=1000 {
        m.e2e_us.record_us(v);
    }
    m.forward_us.record_us(90);
    // Half the samples in a closed interval, half still running.
    let _ = m.flush_us.take_interval();
    m.flush_us.record_us(1500);
    let _ = m.flush_us.take_interval();
    m.flush_us.record_us(2500);
    m
}

/// `metrics` (and a cluster owning `owned` partitions) in `format`.
fn render(metrics: Metrics, owned: u32, format: TextFormat) -> String {
    let cluster = ClusterValues {
        partitions_owned: owned,
        ..ClusterValues::default()
    };
    format
        .render(&processor_registry(Arc::new(metrics), cluster))
        .unwrap()
}

/// The value of the sample `name` whose labels include `labels`.
fn value(exp: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    exp.value(name, labels)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// `le` → cumulative count of the histogram `family`'s `kind` series;
/// checks that the buckets are cumulative and end in `+Inf` = `_count`.
fn buckets(exp: &Exposition, family: &str, kind: &str) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = exp
        .samples
        .iter()
        .filter(|s| {
            s.name == format!("{family}_bucket")
                && s.labels.get("kind").map(String::as_str) == Some(kind)
        })
        .map(|s| (parse_value(&s.labels["le"]).unwrap(), s.value))
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        out.windows(2).all(|w| w[0].1 <= w[1].1),
        "{family}{{kind={kind}}} buckets not cumulative: {out:?}"
    );
    let last = out.last().copied().unwrap();
    assert_eq!(last.0, f64::INFINITY);
    assert_eq!(
        last.1,
        value(exp, &format!("{family}_count"), &[("kind", kind)])
    );
    out
}

/// The cumulative count at bucket bound `le` (seconds).
fn at(buckets: &[(f64, f64)], le: f64) -> f64 {
    buckets
        .iter()
        .find(|(b, _)| *b == le)
        .unwrap_or_else(|| panic!("no bucket le={le}: {buckets:?}"))
        .1
}

#[test]
fn parser_rejects_malformed_text() {
    for bad in [
        "x 1",                                     // no newline at the end
        "x 1\n",                                   // no TYPE
        "# TYPE x counter\nx -1\n",                // negative counter
        "# TYPE x counter\nx{a=\"1\" 1\n",         // unterminated labels
        "# TYPE x counter\nx{a=1} 1\n",            // unquoted value
        "# TYPE x counter\nx one\n",               // bad value
        "# TYPE x counter\nx 1\nx 2\n",            // duplicate sample
        "# TYPE x counter\n# TYPE x gauge\nx 1\n", // repeated TYPE
        "# TYPE x summary\nx 1\n",                 // summary without quantile
        "# TYPE x wat\nx 1\n",                     // unknown type
        "# TYPE 1x counter\n1x 1\n",               // bad name
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad:?}");
    }
    assert!(parse("# HELP x h\n# TYPE x gauge\nx{a=\"q\\\"\"} 1.5e3 1700000000\n").is_ok());
}

#[test]
fn metrics_text_parses_and_has_every_series() {
    let text = render(busy_metrics(), 22, TextFormat::Prometheus);
    let exp = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let v = |name: &str, labels: &[(&str, &str)]| value(&exp, name, labels);
    assert_eq!(v("tickshard_ticks_in_total", &[]), 1000.0);
    assert_eq!(v("tickshard_applied_total", &[]), 600.0);
    assert_eq!(v("tickshard_leases_lost_total", &[]), 0.0);
    assert_eq!(v("tickshard_partitions_owned", &[]), 22.0);
    assert_eq!(
        v("tickshard_bad_input_total", &[("kind", "malformed_json")]),
        1.0
    );
    for kind in BadInput::ALL {
        v("tickshard_bad_input_total", &[("kind", kind.as_str())]);
    }
    assert_eq!(
        v("tickshard_latency_seconds_count", &[("kind", "e2e")]),
        1000.0
    );
    // 1..=1000 µs: half at or under 500 µs, all under 1 ms.
    let e2e = buckets(&exp, "tickshard_latency_seconds", "e2e");
    assert_eq!(at(&e2e, 5e-4), 500.0);
    assert_eq!(at(&e2e, 1e-3), 1000.0);
    assert_eq!(at(&e2e, 1e-5), 10.0);
    let bounds: Vec<f64> = e2e.iter().map(|(le, _)| *le).collect();
    let mut want = LATENCY_BUCKETS_SECONDS.to_vec();
    want.push(f64::INFINITY);
    assert_eq!(bounds, want, "10 µs to 10 s, then +Inf");
    let sum = v("tickshard_latency_seconds_sum", &[("kind", "e2e")]);
    assert!((sum - 0.5005).abs() < 0.5005 * 0.001, "{sum}");
    // Closed and running intervals both count.
    assert_eq!(
        v("tickshard_latency_seconds_count", &[("kind", "flush")]),
        2.0
    );
    let flush = buckets(&exp, "tickshard_latency_seconds", "flush");
    assert_eq!(at(&flush, 1e-3), 0.0);
    assert_eq!(at(&flush, 2.5e-3), 2.0, "1.5 ms and 2.5 ms");
    buckets(&exp, "tickshard_latency_seconds", "forward");
    assert_eq!(exp.types["tickshard_latency_seconds"], "histogram");
    assert_eq!(exp.types["tickshard_ticks_in_total"], "counter");
    assert_eq!(exp.types["tickshard_partitions_owned"], "gauge");
    assert!(!text.contains("latency_us") && !text.contains("max_us"));
    assert_eq!(exp.families(), metric_names().into_iter().collect());
    // An empty registry renders valid text too.
    parse(&render(Metrics::new(), 0, TextFormat::Prometheus)).unwrap();
}

#[test]
fn openmetrics_text_has_the_same_samples() {
    let om = render(busy_metrics(), 22, TextFormat::OpenMetrics);
    let classic = render(busy_metrics(), 22, TextFormat::Prometheus);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE tickshard_latency_seconds histogram\n"));
    assert!(om.contains("# UNIT tickshard_latency_seconds seconds\n"));
    assert!(om.contains("# TYPE tickshard_ticks_in counter\ntickshard_ticks_in_total 1000\n"));
    let samples = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(samples(&om), samples(&classic));
}

/// Every `tickshard_*` identifier in the expressions of `grafana.json`.
fn grafana_metrics(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "expr" || k == "query" || k == "definition" {
                    if let Some(expr) = v.as_str() {
                        let bytes = expr.as_bytes();
                        let mut i = 0;
                        while let Some(pos) = expr[i..].find("tickshard_") {
                            let start = i + pos;
                            let mut end = start;
                            while end < bytes.len()
                                && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                            {
                                end += 1;
                            }
                            out.insert(expr[start..end].to_string());
                            i = end;
                        }
                    }
                }
                grafana_metrics(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| grafana_metrics(v, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_is_valid_and_queries_existing_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/grafana.json");
    let raw = std::fs::read_to_string(path).expect("dashboards/grafana.json");
    let dash: serde_json::Value = serde_json::from_str(&raw).expect("grafana.json is JSON");
    assert!(dash["title"].is_string());
    assert!(dash["schemaVersion"].is_u64());
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8);
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        assert!(p["gridPos"]["w"].is_u64() && p["gridPos"]["h"].is_u64());
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
    // A Prometheus data source variable, used by every panel.
    let vars = dash["templating"]["list"].as_array().expect("templating");
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "no Prometheus data source variable"
    );
    for p in panels {
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {}",
            p["title"]
        );
    }
    // Cluster-wide quantiles from the histogram buckets, for every kind.
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    for kind in ["e2e", "forward", "flush"] {
        for q in ["0.5", "0.99", "0.999"] {
            let want = format!(
                "histogram_quantile({q}, sum by (le) (rate(tickshard_latency_seconds_bucket{{kind=\"{kind}\""
            );
            assert!(
                exprs.iter().any(|e| e.starts_with(&want)),
                "no {kind} p{q} query like {want}"
            );
        }
    }
    let mut used = BTreeSet::new();
    grafana_metrics(&dash, &mut used);
    assert!(used.len() >= 15, "{used:?}");
    // Every name is a family the processor registers (the live test below
    // checks those against a real processor's /metrics) ...
    let registered: BTreeSet<String> = metric_names().into_iter().collect();
    for name in &used {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| registered.contains(*base))
            })
            .unwrap_or(name);
        assert!(
            registered.contains(family),
            "grafana.json queries {name}, which /metrics does not expose"
        );
    }
    // ... and a series of the rendered exposition.
    let exp = parse(&render(busy_metrics(), 1, TextFormat::Prometheus)).unwrap();
    let exposed: BTreeSet<&str> = exp.samples.iter().map(|s| s.name.as_str()).collect();
    for name in &used {
        assert!(
            exposed.contains(name.as_str()),
            "grafana.json queries {name}, which /metrics does not expose"
        );
    }
}

/// `promtool`, or a failure that says how to install it.
fn promtool() -> std::path::PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("promtool is not on PATH: run scripts/setup prometheus (Debian's prometheus package ships it)")
    })
}

/// `promtool check metrics` of `text`: its exit status and everything it
/// printed.
fn promtool_check(promtool: &std::path::Path, text: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// `/metrics` of `addr` in both formats, each checked for its content
/// type; returns (Prometheus text, OpenMetrics text).
async fn scrape_both(addr: &str) -> (String, String) {
    let (status, head, classic) = http_get_with(addr, "/metrics", "").await.unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-type: {PROMETHEUS_TEXT}")),
        "{head}"
    );
    let accept =
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n";
    let (status, head, om) = http_get_with(addr, "/metrics", accept).await.unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-type: {OPENMETRICS}")),
        "{head}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    (classic, om)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_pass_promtool_and_are_the_registered_families() {
    let promtool = promtool();
    let redis = support::redis();
    let (feed, feed_url) = spawn_feed(&[
        "--symbols",
        "50",
        "--rate",
        "2000",
        "--seed",
        "5",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let p1 = spawn_processor(&redis.url(), Some(&feed_url), "p1", "prom", 1000);
    let addr = p1.http_addr(Duration::from_secs(10)).await;
    let feed_addr = feed.http_addr(Duration::from_secs(10)).await;

    // Ticks flowed: applied, their latency measured and flushed, and the
    // feed counted what it sent to p1.
    support::wait_until(
        Duration::from_secs(30),
        "ticks applied and measured",
        || {
            let addr = addr.clone();
            let feed_addr = feed_addr.clone();
            async move {
                let Some((_, _, p)) = http_get_with(&addr, "/metrics", "").await else {
                    return false;
                };
                let Some((_, _, f)) = http_get_with(&feed_addr, "/metrics", "").await else {
                    return false;
                };
                counter(&p, "tickshard_applied_total", &[]) > 0
                    && p.contains("tickshard_latency_seconds_count{kind=\"e2e\"} ")
                    && !p.contains("tickshard_latency_seconds_count{kind=\"e2e\"} 0\n")
                    && !p.contains("tickshard_latency_seconds_count{kind=\"flush\"} 0\n")
                    && counter(&f, "feed_sim_ticks_sent_total", &[]) > 0
            }
        },
    )
    .await;

    let (processor, processor_om) = scrape_both(&addr).await;
    let (feed_text, _) = scrape_both(&feed_addr).await;
    for (who, text) in [("processor", &processor), ("feed-sim", &feed_text)] {
        let (ok, printed) = promtool_check(&promtool, text);
        assert!(
            ok && printed.trim().is_empty(),
            "promtool check metrics on the {who}'s /metrics: ok={ok}\n{printed}\n---\n{text}"
        );
        parse(text).unwrap_or_else(|e| panic!("{who}: {e}\n{text}"));
    }

    // Exactly the families the code registers.
    let exp = parse(&processor).unwrap();
    assert_eq!(exp.families(), metric_names().into_iter().collect());
    assert!(counter(&processor, "tickshard_partitions_owned", &[]) > 0);
    // Latency as histograms in seconds, 10 µs .. 10 s.
    assert!(processor_om.contains("# TYPE tickshard_latency_seconds histogram\n"));
    assert!(processor_om.contains("# UNIT tickshard_latency_seconds seconds\n"));
    assert!(
        processor.contains("tickshard_latency_seconds_bucket{le=\"0.00001\",kind=\"e2e\"} "),
        "{processor}"
    );
    for kind in ["e2e", "forward", "flush"] {
        let b = buckets(&exp, "tickshard_latency_seconds", kind);
        assert_eq!(b.first().unwrap().0, 1e-5);
        assert_eq!(b[b.len() - 2].0, 10.0);
    }
    assert!(!processor.contains("tickshard_latency_us"));

    // The feed: ticks per client, replays, connected clients.
    let fexp = parse(&feed_text).unwrap();
    assert!(value(&fexp, "feed_sim_ticks_sent_total", &[("client", "p1")]) > 0.0);
    assert_eq!(value(&fexp, "feed_sim_clients_connected", &[]), 1.0);
    value(&fexp, "feed_sim_replays_total", &[]);
    value(&fexp, "feed_sim_replay_ticks_total", &[]);
    assert_eq!(fexp.types["feed_sim_ticks_sent_total"], "counter");
    assert_eq!(fexp.types["feed_sim_clients_connected"], "gauge");
}
