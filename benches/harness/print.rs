//! The human-readable lines the cluster bench prints for each run (the
//! results file holds the same figures as JSON).

use super::result::{ScenarioResult, Status};

fn rate(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.0}"))
}

/// A few lines for one run.
pub(crate) fn cluster(r: &ScenarioResult) {
    let status = format!("{:?}", r.status).to_lowercase();
    let head = format!("cluster  [{}] {:<56}", r.build.name(), r.label);
    if r.status != Status::Exact {
        println!("{head} {status}: {}", r.reason.as_deref().unwrap_or(""));
        return;
    }
    let claim = if r.sustained {
        format!("sustained: {:.0} ticks/s to exact", r.ticks_per_s)
    } else {
        format!(
            "short run ({} ticks), throughput not claimed ({:.0} ticks/s to exact)",
            r.ticks, r.ticks_per_s
        )
    };
    let feed = match (r.feed.asked_rate, r.feed.achieved_rate) {
        (Some(asked), Some(got)) => format!(
            "feed {got:.0}/s of {asked}/s{}",
            if r.feed.kept_up == Some(true) {
                " (kept up)"
            } else {
                " (fell behind)"
            }
        ),
        (None, Some(got)) => format!("feed {got:.0}/s unthrottled"),
        _ => "feed rate unknown".to_string(),
    };
    println!(
        "{head} {status}, {claim}; {feed}; {} symbols traded",
        r.symbols_with_ticks
    );
    let a = &r.applied_per_s;
    println!(
        "         applied/s over {} s of feeding: min {} median {} max {}; CPU busy {:.0}% of {} cores ({} while feeding), {:.0} ns CPU/tick; processor peak RSS {:.0} MiB",
        a.seconds,
        rate(a.min),
        rate(a.median),
        rate(a.max),
        100.0 * r.cpu_busy,
        r.cores,
        r.cpu_busy_feeding
            .map_or("–".to_string(), |b| format!("{:.0}%", 100.0 * b)),
        r.cpu_ns_per_tick,
        r.processor_rss_peak_mib
    );
    let f = &r.flow;
    let l = &r.leases;
    println!(
        "         e2e p50/p99/p99.9 {}/{}/{} µs, fwd p99 {} µs; dropped {}, duplicates {}, replays {} ({} ticks); leases while feeding +{} -{} lost {}, balanced after {}, then +{} lost {}",
        r.e2e_us.p50,
        r.e2e_us.p99,
        r.e2e_us.p999,
        r.forward_us.p99,
        f.dropped,
        f.duplicates,
        f.replays_requested,
        f.replay_ticks,
        l.while_feeding.acquired,
        l.while_feeding.released,
        l.while_feeding.lost,
        l.balanced_after_s
            .map_or("never".to_string(), |s| format!("{s:.2} s")),
        l.after_balanced.acquired,
        l.after_balanced.lost
    );
    if let Some(lag) = &r.lag {
        let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
        println!(
            "         stored-state lag p50/p95/max {}/{}/{} ms over {} samples ({} timeouts, {} failed queries; query p50 {} ms)",
            ms(lag.p50_ms),
            ms(lag.p95_ms),
            ms(lag.max_ms),
            lag.samples,
            lag.timeouts,
            lag.query_failures,
            ms(lag.query_p50_ms)
        );
    }
    let wait: f64 = r.runq_wait_s.values().sum();
    let cpu: f64 = r.cpu_s.values().sum();
    let slow = r
        .slowlog
        .as_ref()
        .map_or("not read".to_string(), |s| match &s.slowest {
            None => format!("none over {} µs", s.threshold_us),
            Some((cmd, us)) => format!(
                "{}{} over {} µs, slowest {cmd} {us} µs",
                s.total,
                if s.capped { "+" } else { "" },
                s.threshold_us
            ),
        });
    println!(
        "         waited for a core {wait:.1} s over {cpu:.1} s of CPU (all processes); Redis slow log: {slow}"
    );
    if !r.options_dropped.is_empty() {
        println!(
            "         options left out (not known to every build): {}",
            r.options_dropped.join(" ")
        );
    }
}
