//! What the feed says about its own run: the one-line JSON summary
//! `feed-sim` prints on stdout when it stops (ticks sent, the rate it
//! achieved against the one asked, how long it sent, replays it served).
//! Every field is optional, so a build that prints less still parses.

use serde::{Deserialize, Serialize};

/// The feed's figures of one run, as reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct FeedFigures {
    /// Ticks/s asked (`--rate`); `None` = unthrottled.
    pub(crate) asked_rate: Option<u64>,
    /// Ticks generated / seconds of sending, as the feed measured it.
    pub(crate) achieved_rate: Option<f64>,
    /// Seconds from the first tick sent to the last.
    pub(crate) send_s: Option<f64>,
    /// Paced runs: the feed achieved at least [`KEPT_UP_SHARE`] of the
    /// asked rate (backpressure from the processors slows it down).
    pub(crate) kept_up: Option<bool>,
    /// Replay requests the feed answered, and the ticks it replayed.
    pub(crate) replay_requests: Option<u64>,
    pub(crate) replay_ticks: Option<u64>,
}

/// The share of the asked rate a paced feed must reach to have kept up.
pub(crate) const KEPT_UP_SHARE: f64 = 0.98;

#[derive(Debug, Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: Option<String>,
    achieved_rate: Option<f64>,
    send_duration_s: Option<f64>,
    replays: Option<Replays>,
}

#[derive(Debug, Deserialize)]
struct Replays {
    requests: Option<u64>,
    ticks: Option<u64>,
}

impl FeedFigures {
    /// The figures of the last summary line in `stdout` (none found: only
    /// the asked rate).
    pub(crate) fn parse(stdout: &str, asked_rate: Option<u64>) -> Self {
        let line = stdout
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Line>(l.trim()).ok())
            .find(|l| l.kind.as_deref() == Some("summary"));
        let Some(line) = line else {
            return Self {
                asked_rate,
                ..Self::default()
            };
        };
        let achieved = line.achieved_rate.filter(|r| *r > 0.0);
        Self {
            asked_rate,
            achieved_rate: achieved,
            send_s: line.send_duration_s.filter(|s| *s > 0.0),
            kept_up: asked_rate
                .zip(achieved)
                .map(|(asked, got)| got >= KEPT_UP_SHARE * asked as f64),
            replay_requests: line.replays.as_ref().and_then(|r| r.requests),
            replay_ticks: line.replays.as_ref().and_then(|r| r.ticks),
        }
    }
}

/// Self-check on a real summary line's shape.
pub(crate) fn self_check() -> Result<(), String> {
    let out = "noise\n{\"type\":\"summary\",\"mode\":\"round-robin\",\"ticks_generated\":300,\"achieved_rate\":97.5,\"send_duration_s\":3.0,\"replays\":{\"requests\":2,\"ticks\":9,\"kept\":1,\"evicted\":0},\"extra\":1}\n";
    let f = FeedFigures::parse(out, Some(100));
    let want = FeedFigures {
        asked_rate: Some(100),
        achieved_rate: Some(97.5),
        send_s: Some(3.0),
        kept_up: Some(false),
        replay_requests: Some(2),
        replay_ticks: Some(9),
    };
    if f != want {
        return Err(format!("feed summary {f:?}, expected {want:?}"));
    }
    if FeedFigures::parse("", None) != FeedFigures::default() {
        return Err("an empty stdout gave figures".to_string());
    }
    Ok(())
}
