//! The text format a scrape gets, and a registry rendered in it.
//!
//! prometheus-client writes OpenMetrics 1.0, which Prometheus asks for
//! first (`Accept: application/openmetrics-text; version=1.0.0, ...`).
//! A client that does not ask for it (curl, and the linter `promtool check
//! metrics`, which reads only the older Prometheus text format 0.0.4 and
//! takes an OpenMetrics counter's `_total` series for an untyped metric
//! without help) gets format 0.0.4, as the Go client does by default.
//!
//! The two formats carry the same samples; for what prometheus-client
//! writes they differ only in three places, so the 0.0.4 text is derived
//! from the OpenMetrics text line by line: a counter's `# HELP` and
//! `# TYPE` name its `_total` series, and there are no `# UNIT` and
//! `# EOF` lines.

use std::collections::HashSet;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Prometheus,
}

impl TextFormat {
    /// OpenMetrics when the `Accept` header lists
    /// `application/openmetrics-text` (with a weight above 0), otherwise
    /// the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut params = range.split(';').map(str::trim);
                let media = params.next().unwrap_or("");
                let refused = params.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics {
            TextFormat::OpenMetrics
        } else {
            TextFormat::Prometheus
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            TextFormat::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            TextFormat::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// `registry` in this format. Fails only if a collector fails.
    pub fn render(self, registry: &Registry) -> Result<String, std::fmt::Error> {
        let mut openmetrics = String::with_capacity(8192);
        encode(&mut openmetrics, registry)?;
        Ok(match self {
            TextFormat::OpenMetrics => openmetrics,
            TextFormat::Prometheus => openmetrics_to_prometheus(&openmetrics),
        })
    }
}

/// The Prometheus 0.0.4 text of an OpenMetrics text written by
/// prometheus-client (see the module doc for the differences).
pub fn openmetrics_to_prometheus(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|tag| Some((tag, line.strip_prefix(tag)?.split_once(' ')?)));
        match descriptor {
            Some((tag, (name, rest))) if counters.contains(name) => {
                out.push_str(tag);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(rest);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_accept_header() {
        let prometheus_2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(
            TextFormat::negotiate(Some(prometheus_2)),
            TextFormat::OpenMetrics
        );
        assert_eq!(
            TextFormat::negotiate(Some("Application/OpenMetrics-Text")),
            TextFormat::OpenMetrics
        );
        for other in [
            None,
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain, application/openmetrics-text;q=0"),
        ] {
            assert_eq!(
                TextFormat::negotiate(other),
                TextFormat::Prometheus,
                "{other:?}"
            );
        }
    }

    #[test]
    fn counters_units_and_eof_are_rewritten() {
        let om = "# HELP a_ticks Ticks.\n# TYPE a_ticks counter\na_ticks_total 3\n\
                  # HELP a_owned Owned.\n# TYPE a_owned gauge\na_owned 2\n\
                  # HELP a_latency_seconds Latency.\n# TYPE a_latency_seconds histogram\n\
                  # UNIT a_latency_seconds seconds\na_latency_seconds_sum 0.5\n\
                  a_latency_seconds_count 1\na_latency_seconds_bucket{le=\"+Inf\"} 1\n# EOF\n";
        let want = "# HELP a_ticks_total Ticks.\n# TYPE a_ticks_total counter\na_ticks_total 3\n\
                    # HELP a_owned Owned.\n# TYPE a_owned gauge\na_owned 2\n\
                    # HELP a_latency_seconds Latency.\n# TYPE a_latency_seconds histogram\n\
                    a_latency_seconds_sum 0.5\n\
                    a_latency_seconds_count 1\na_latency_seconds_bucket{le=\"+Inf\"} 1\n";
        assert_eq!(openmetrics_to_prometheus(om), want);
    }
}
