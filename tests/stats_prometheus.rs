//! `/metrics` text: parsed by a strict line parser of the Prometheus text
//! exposition format (0.0.4), and every metric the Grafana dashboard in
//! `dashboards/grafana.json` queries exists in it.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use tickshard::stats::{render_prometheus, Metrics, BAD_INPUT_KINDS};

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn is_name(s: &str, allow_colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (allow_colon && c == ':');
    matches!(chars.next(), Some(c) if ok_first(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// Parses `{a="x",b="y"}` (the part after the name); returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_name(name, false) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label {name}"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_sum", "_count", "_bucket"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("summary" | "histogram")
            ) {
                return Some(base);
            }
        }
    }
    None
}

fn parse(text: &str) -> Result<Exposition, String> {
    let mut exp = Exposition::default();
    let mut helps = BTreeSet::new();
    let mut seen_samples = BTreeSet::new();
    let mut families_with_samples = BTreeSet::new();
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts
                        .next()
                        .ok_or_else(|| err("HELP without name".into()))?;
                    if !is_name(name, true) || !helps.insert(name.to_string()) {
                        return Err(err("bad or repeated HELP".into()));
                    }
                }
                Some("TYPE") => {
                    let name = parts
                        .next()
                        .ok_or_else(|| err("TYPE without name".into()))?;
                    let kind = parts
                        .next()
                        .ok_or_else(|| err("TYPE without type".into()))?;
                    if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                        return Err(err(format!("unknown type {kind}")));
                    }
                    if families_with_samples.contains(name) {
                        return Err(err("TYPE after samples of the family".into()));
                    }
                    if exp
                        .types
                        .insert(name.to_string(), kind.to_string())
                        .is_some()
                    {
                        return Err(err("repeated TYPE".into()));
                    }
                }
                _ => {} // other comments are allowed
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(err(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("expected a space before the value".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|e| err(format!("bad timestamp: {e}")))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing fields".into()));
        }
        let family = family_of(name, &exp.types)
            .ok_or_else(|| err(format!("sample of {name} without a TYPE")))?;
        let kind = exp.types[family].clone();
        if kind == "counter" && value < 0.0 {
            return Err(err("negative counter".into()));
        }
        if kind == "summary" && name == family && !labels.contains_key("quantile") {
            return Err(err("summary sample without quantile".into()));
        }
        families_with_samples.insert(family.to_string());
        if !seen_samples.insert((name.to_string(), format!("{labels:?}"))) {
            return Err(err("duplicate sample".into()));
        }
        exp.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(exp)
}

fn busy_metrics() -> Metrics {
    let m = Metrics::new();
    m.counters.ticks_in.add(1000);
    m.counters.applied.add(600);
    m.counters.forwarded_out.add(400);
    m.counters.leases_acquired.add(22);
    m.bad_input("malformed_json");
    m.bad_input("some \"odd\" kind");
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
    let m = busy_metrics();
    let text = render_prometheus(&m, 22);
    let exp = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        exp.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
            .value
    };
    assert_eq!(value("tickshard_ticks_in_total", &[]), 1000.0);
    assert_eq!(value("tickshard_applied_total", &[]), 600.0);
    assert_eq!(value("tickshard_leases_lost_total", &[]), 0.0);
    assert_eq!(value("tickshard_partitions_owned", &[]), 22.0);
    assert_eq!(
        value("tickshard_bad_input_total", &[("kind", "malformed_json")]),
        1.0
    );
    assert_eq!(
        value("tickshard_bad_input_total", &[("kind", "other")]),
        1.0
    );
    for kind in BAD_INPUT_KINDS {
        value("tickshard_bad_input_total", &[("kind", kind)]);
    }
    assert_eq!(
        value("tickshard_latency_us_count", &[("kind", "e2e")]),
        1000.0
    );
    let p50 = value(
        "tickshard_latency_us",
        &[("kind", "e2e"), ("quantile", "0.5")],
    );
    assert!((499.0..=501.0).contains(&p50), "{p50}");
    let sum = value("tickshard_latency_us_sum", &[("kind", "e2e")]);
    assert!((sum - 500_500.0).abs() < 500_500.0 * 0.001, "{sum}");
    // Closed and running intervals both count.
    assert_eq!(
        value("tickshard_latency_us_count", &[("kind", "flush")]),
        2.0
    );
    assert!(value("tickshard_latency_max_us", &[("kind", "flush")]) >= 2500.0);
    assert_eq!(exp.types["tickshard_latency_us"], "summary");
    assert_eq!(exp.types["tickshard_ticks_in_total"], "counter");
    assert_eq!(exp.types["tickshard_partitions_owned"], "gauge");
    // An empty registry renders valid text too.
    parse(&render_prometheus(&Metrics::new(), 0)).unwrap();
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
    let mut used = BTreeSet::new();
    grafana_metrics(&dash, &mut used);
    assert!(used.len() >= 15, "{used:?}");
    let exp = parse(&render_prometheus(&busy_metrics(), 1)).unwrap();
    let exposed: BTreeSet<&str> = exp.samples.iter().map(|s| s.name.as_str()).collect();
    for name in &used {
        assert!(
            exposed.contains(name.as_str()),
            "grafana.json queries {name}, which /metrics does not expose"
        );
    }
}
