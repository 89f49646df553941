//! The feeding window of a run (first to last tick the feed sent, wall
//! clock ms) and what is measured inside it: the cluster's per-second
//! applied rates from the processors' cumulative counters, and the share
//! of the machine's CPU that was busy. Pure functions over collected
//! samples.

use std::collections::BTreeMap;

use serde::Serialize;
use tickshard::stats::StatsSnapshot;

/// From the feed's first tick to its last, ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Window {
    pub(crate) start_ms: u64,
    pub(crate) end_ms: u64,
}

impl Window {
    pub(crate) fn secs(&self) -> f64 {
        self.end_ms.saturating_sub(self.start_ms) as f64 / 1000.0
    }

    pub(crate) fn contains(&self, ts_ms: u64) -> bool {
        (self.start_ms..=self.end_ms).contains(&ts_ms)
    }
}

/// One instance's counter between two consecutive snapshots.
#[derive(Debug, Clone, Copy)]
struct Segment {
    from_ms: u64,
    to_ms: u64,
    /// Counter increase per ms.
    per_ms: f64,
}

/// Cluster-wide rates of the cumulative counter `name`, one per whole
/// second while the feed sent.
///
/// Each instance publishes its cumulative counters about once a second;
/// between two consecutive snapshots that both lie inside `window` its
/// rate is taken as constant. The seconds are laid from the latest first
/// such snapshot of any instance to the earliest last one, so every second
/// is covered by all `instances` instances and none reaches into the ramp
/// before the feed's first tick or the tail after its last.
pub(crate) fn per_second_rates(
    snaps: &[StatsSnapshot],
    name: &str,
    window: Window,
    instances: usize,
) -> Vec<f64> {
    let mut by_instance: BTreeMap<&str, Vec<&StatsSnapshot>> = BTreeMap::new();
    for s in snaps.iter().filter(|s| window.contains(s.ts_ms)) {
        by_instance.entry(s.instance.as_str()).or_default().push(s);
    }
    if instances == 0 || by_instance.len() < instances {
        return Vec::new();
    }
    let value = |s: &StatsSnapshot| s.counters.get(name).unwrap_or(0);
    let segments: Vec<Vec<Segment>> = by_instance
        .values_mut()
        .map(|list| {
            list.sort_by_key(|s| s.ts_ms);
            list.windows(2)
                .filter(|w| w[1].ts_ms > w[0].ts_ms)
                .map(|w| Segment {
                    from_ms: w[0].ts_ms,
                    to_ms: w[1].ts_ms,
                    per_ms: value(w[1]).saturating_sub(value(w[0])) as f64
                        / (w[1].ts_ms - w[0].ts_ms) as f64,
                })
                .collect()
        })
        .collect();
    let first = segments.iter().map(|s| s.first().map(|g| g.from_ms));
    let last = segments.iter().map(|s| s.last().map(|g| g.to_ms));
    let (Some(from), Some(to)) = (
        first
            .collect::<Option<Vec<u64>>>()
            .and_then(|v| v.into_iter().max()),
        last.collect::<Option<Vec<u64>>>()
            .and_then(|v| v.into_iter().min()),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut a = from;
    while a + 1000 <= to {
        let b = a + 1000;
        let mut total = 0.0;
        let mut covered_all = true;
        for segs in &segments {
            let (mut covered, mut amount) = (0u64, 0.0);
            for s in segs {
                let lo = s.from_ms.max(a);
                let hi = s.to_ms.min(b);
                if hi > lo {
                    covered += hi - lo;
                    amount += s.per_ms * (hi - lo) as f64;
                }
            }
            covered_all &= covered >= 1000;
            total += amount;
        }
        if covered_all {
            out.push(total);
        }
        a = b;
    }
    out
}

/// Min / median / max of per-second rates; `None`s when no second counted.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub(crate) struct RateStats {
    /// Whole seconds that counted.
    pub(crate) seconds: usize,
    pub(crate) min: Option<f64>,
    pub(crate) median: Option<f64>,
    pub(crate) max: Option<f64>,
}

impl RateStats {
    pub(crate) fn of(rates: &[f64]) -> Self {
        let mut v = rates.to_vec();
        v.sort_by(f64::total_cmp);
        Self {
            seconds: v.len(),
            min: v.first().copied(),
            median: v.get(v.len() / 2).copied(),
            max: v.last().copied(),
        }
    }
}

/// Share of the machine's CPU busy between the first sample at or after
/// the window's start and the last one at or before its end: CPU seconds
/// of all sampled processes / (wall seconds × cores). `samples` are
/// (ms since the epoch, cumulative CPU seconds), in time order.
pub(crate) fn busy_share(samples: &[(u64, f64)], window: Window, cores: usize) -> Option<f64> {
    let first = samples.iter().find(|(t, _)| *t >= window.start_ms)?;
    let last = samples.iter().rev().find(|(t, _)| *t <= window.end_ms)?;
    let wall_s = last.0.checked_sub(first.0)? as f64 / 1000.0;
    (wall_s >= 0.5 && cores > 0).then(|| (last.1 - first.1) / (wall_s * cores as f64))
}

/// Self-check: two instances publishing out of phase at a known constant
/// rate give that rate for every whole second inside the window, and a
/// second missing one instance does not count.
pub(crate) fn self_check() -> Result<(), String> {
    let snap = |inst: &str, ts_ms: u64, applied: u64| {
        let mut s = StatsSnapshot::parse(&format!(
            r#"{{"type":"stats","instance":"{inst}","ts_ms":{ts_ms},"interval_ms":1000,"partitions_owned":1,"counters":{{}}}}"#
        ))
        .map_err(|e| e.to_string())?;
        s.counters.applied = applied;
        Ok::<_, String>(s)
    };
    // p1 applies 1000/s, p2 3000/s; p2 stops publishing after 6.3 s.
    let mut snaps = Vec::new();
    for k in 0..12u64 {
        snaps.push(snap("p1", k * 1000 + 100, k * 1000)?);
        if k * 1000 + 700 <= 6_300 {
            snaps.push(snap("p2", k * 1000 + 700, k * 3000)?);
        }
    }
    let w = Window {
        start_ms: 0,
        end_ms: 10_000,
    };
    let rates = per_second_rates(&snaps, "applied", w, 2);
    // Both cover 0.7 s (p2's first snapshot) to 5.7 s (its last): five
    // whole seconds.
    let want = vec![4000.0; 5];
    if rates.len() != want.len() || rates.iter().any(|r| (r - 4000.0).abs() > 1e-6) {
        return Err(format!("per-second rates {rates:?}, expected {want:?}"));
    }
    let stats = RateStats::of(&[3.0, 1.0, 2.0]);
    if stats.min != Some(1.0) || stats.median != Some(2.0) || stats.max != Some(3.0) {
        return Err(format!("rate stats {stats:?}"));
    }
    let samples = [(0, 0.0), (1000, 0.5), (2000, 1.0), (3000, 2.0)];
    let busy = busy_share(
        &samples,
        Window {
            start_ms: 900,
            end_ms: 3000,
        },
        2,
    );
    if busy != Some(0.375) {
        return Err(format!("busy share {busy:?}, expected 0.375"));
    }
    Ok(())
}
