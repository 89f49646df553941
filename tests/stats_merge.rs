//! Cluster-wide percentiles: histograms recorded by several instances,
//! sent through the `{ns}:stats` encoding and merged by the dashboard,
//! give exactly the percentiles of one histogram of all samples. (Averaging
//! the instances' percentiles would not.)

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use tickshard::dashboard::window::{merge, summarize, LatencyWindow};
use tickshard::stats::{
    decode_histogram, encode_histogram, new_histogram, LatencyKind, LatencyRecorder,
};

const QUANTILES: [f64; 8] = [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0];

fn samples() -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        prop::collection::vec(1u64..1_000, 0..300),
        prop::collection::vec(1u64..60_000_000, 0..300),
        // A fast bulk with a slow tail.
        (
            prop::collection::vec(50u64..500, 1..300),
            prop::collection::vec(10_000u64..5_000_000, 0..5)
        )
            .prop_map(|(mut a, b)| {
                a.extend(b);
                a
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merged_percentiles_equal_those_of_all_samples(instances in prop::collection::vec(samples(), 1..6)) {
        let mut all = new_histogram();
        let mut window = LatencyWindow::new(5);
        let mut decoded = Vec::new();
        for (i, values) in instances.iter().enumerate() {
            // Each instance records into its own recorder and publishes the
            // interval in the wire encoding.
            let rec = LatencyRecorder::new();
            for v in values {
                rec.record_us(*v);
                all.record(*v).unwrap();
            }
            let wire = encode_histogram(&rec.take_interval());
            let h = decode_histogram(&wire).unwrap();
            // Spread over two seconds of the window.
            window.add(100 + (i as u64 % 2), LatencyKind::E2e, &h);
            decoded.push(h);
        }
        let merged = merge(decoded.iter());
        let windowed = window.merged(LatencyKind::E2e, 100, 101);
        prop_assert_eq!(merged.len(), all.len());
        prop_assert_eq!(windowed.len(), all.len());
        for q in QUANTILES {
            let want = all.value_at_quantile(q);
            prop_assert_eq!(merged.value_at_quantile(q), want, "q={}", q);
            prop_assert_eq!(windowed.value_at_quantile(q), want, "q={}", q);
        }
        prop_assert_eq!(summarize(&merged), summarize(&all));
        prop_assert_eq!(merged.max(), all.max());
    }
}

#[test]
fn averaging_percentiles_would_be_wrong() {
    // 990 fast samples on one instance, 10 slow on another.
    let (mut fast, mut slow, mut all) = (new_histogram(), new_histogram(), new_histogram());
    for _ in 0..990 {
        fast.record(100).unwrap();
        all.record(100).unwrap();
    }
    for _ in 0..10 {
        slow.record(50_000).unwrap();
        all.record(50_000).unwrap();
    }
    let merged = summarize(&merge([&fast, &slow]));
    assert_eq!(merged, summarize(&all));
    assert_eq!(merged.p50, 100);
    let averaged_p50 = (fast.value_at_quantile(0.5) + slow.value_at_quantile(0.5)) / 2;
    assert!(
        averaged_p50 > 20_000,
        "the average of medians is far off: {averaged_p50}"
    );
}
