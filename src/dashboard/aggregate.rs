//! [`ClusterView`]: everything the dashboard knows about the cluster, fed
//! by stats messages, events, and the lease/member poll, and turned into a
//! [`DashboardSnapshot`]. Plain data and pure methods (time is an
//! argument), owned by one task; no I/O here. Latency lives in
//! [`ClusterLatency`] (per-second merged histograms) and the chart in
//! [`History`], whose points read the same buckets as the cards.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;

use crate::cluster::observer::{Holder, OwnershipMap};
use crate::cluster::ClusterEvent;
use crate::dashboard::history::{History, Rates};
use crate::dashboard::latency::ClusterLatency;
use crate::dashboard::model::{
    DashboardHealth, DashboardSnapshot, EventRecord, InstanceView, LatencyWindowSpan, SnapshotType,
    Totals,
};
use crate::dashboard::window::counter_rate;
use crate::stats::{CounterValues, HotSymbol, LatencyKind, StatsSnapshot};
use crate::tick::{InstanceId, PartitionId};

pub use crate::dashboard::history::HISTORY_POINTS;
pub use crate::dashboard::latency::LATENCY_WINDOW_S;

/// Rates are computed over the stats of the last this many ms.
pub const RATE_WINDOW_MS: u64 = 5_000;
/// Events kept and sent.
pub const EVENTS_KEPT: usize = 100;
/// Hot symbols sent.
pub const HOT_SYMBOLS: usize = 12;
/// An instance without a heartbeat is alive while its stats are this fresh.
pub const STATS_ALIVE_MS: u64 = 3_000;
/// A dead instance stays listed this long.
pub const FORGET_AFTER_MS: u64 = 30_000;

/// One round of the lease/member poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollResult {
    /// Redis `TIME`, ms.
    pub redis_now_ms: u64,
    /// P from `{ns}:{cluster}:config` (`None` when the cluster has no config yet).
    pub partitions: Option<u32>,
    /// Raw `{ns}:{p<p>}:lease:{p}` values, index = partition.
    pub leases: Vec<Option<String>>,
    /// `{ns}:{cluster}:members`: instance id → heartbeat expiry (ms).
    pub members: Vec<(String, u64)>,
    /// `http` field of each member's hash.
    pub member_http: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct InstanceTrack {
    /// `(instance ts_ms, counters)`, oldest first, last [`RATE_WINDOW_MS`].
    samples: VecDeque<(u64, CounterValues)>,
    /// Local time the last stats arrived.
    last_stats_local_ms: Option<u64>,
    hot: Vec<HotSymbol>,
}

#[derive(Debug, Clone)]
struct Member {
    expiry_ms: u64,
    http: Option<String>,
}

/// The dashboard's picture of the cluster.
#[derive(Debug)]
pub struct ClusterView {
    instances: BTreeMap<String, InstanceTrack>,
    members: BTreeMap<String, Member>,
    /// Local-clock offset: redis_now - local_now at the last poll.
    redis_skew_ms: i64,
    /// Who holds which partition: the last poll, patched by events.
    ownership: OwnershipMap,
    events: VecDeque<EventRecord>,
    latency: ClusterLatency,
    history: History,
    health: DashboardHealth,
    pubsub_up: bool,
    poll_up: bool,
}

impl Default for ClusterView {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterView {
    /// Knows nothing yet; latency cards over the last
    /// [`LATENCY_WINDOW_S`] complete seconds.
    pub fn new() -> Self {
        Self::with_latency_window(LATENCY_WINDOW_S)
    }

    /// Knows nothing yet; latency cards over the last `seconds` complete
    /// seconds (1 ..= [`crate::dashboard::latency::LATE_S`]).
    pub fn with_latency_window(seconds: u64) -> Self {
        Self {
            instances: BTreeMap::new(),
            members: BTreeMap::new(),
            redis_skew_ms: 0,
            ownership: OwnershipMap::default(),
            events: VecDeque::new(),
            latency: ClusterLatency::new(seconds),
            history: History::new(),
            health: DashboardHealth::default(),
            pubsub_up: false,
            poll_up: false,
        }
    }

    /// Messages ignored so far (garbage or foreign, both channels).
    pub fn bad_messages(&self) -> u64 {
        self.health.bad_messages
    }

    /// Counts a message that was neither a stats message nor an event.
    pub fn count_bad(&mut self) {
        self.health.bad_messages += 1;
    }

    /// A payload from `{ns}:stats`: parsed, or counted and ignored.
    pub fn on_stats_payload(&mut self, now_ms: u64, payload: &str) -> bool {
        match StatsSnapshot::parse(payload) {
            Ok(s) => self.on_stats(now_ms, s),
            Err(_) => {
                self.health.bad_messages += 1;
                false
            }
        }
    }

    /// A parsed stats message. Returns false (and counts it) if its
    /// instance id is not a valid id or a histogram does not decode.
    pub fn on_stats(&mut self, now_ms: u64, s: StatsSnapshot) -> bool {
        if s.instance.parse::<InstanceId>().is_err() {
            self.health.bad_messages += 1;
            return false;
        }
        let mut hists = Vec::with_capacity(3);
        for kind in LatencyKind::ALL {
            match s.histograms.decode(kind) {
                Ok(h) => hists.push((kind, h)),
                Err(_) => {
                    self.health.bad_messages += 1;
                    return false;
                }
            }
        }
        self.health.stats_messages += 1;
        let filed = self.latency.add(now_ms, s.ts_ms, &hists);
        if !filed.on_time {
            self.health.misdated_stats += 1;
        }
        // A message for a second that already has its chart point.
        self.history.revise(filed.sec, &self.latency);
        let track = self.instances.entry(s.instance.clone()).or_default();
        // A restarted instance may send an older-looking ts; keep order.
        if track.samples.back().is_some_and(|(ts, _)| *ts > s.ts_ms) {
            track.samples.clear();
        }
        track.samples.push_back((s.ts_ms, s.counters));
        while track
            .samples
            .front()
            .is_some_and(|(ts, _)| s.ts_ms.saturating_sub(*ts) > RATE_WINDOW_MS)
            && track.samples.len() > 2
        {
            track.samples.pop_front();
        }
        track.last_stats_local_ms = Some(now_ms);
        track.hot = s.hot_symbols;
        true
    }

    /// A payload from `{ns}:events`: applied and logged, or counted.
    pub fn on_event_payload(&mut self, payload: &str) -> bool {
        match ClusterEvent::parse(payload.as_bytes()) {
            Ok(e) => {
                self.on_event(&e);
                true
            }
            Err(e) if !e.is_garbage() => false,
            Err(_) => {
                self.health.bad_messages += 1;
                false
            }
        }
    }

    /// A cluster event: updates the partition map at once (the next poll
    /// confirms it) and goes to the log.
    pub fn on_event(&mut self, e: &ClusterEvent) {
        self.health.event_messages += 1;
        self.ownership.apply(e);
        if let ClusterEvent::MemberLeft { instance, .. } = e {
            self.members.remove(instance.as_str());
        }
        self.push_event(EventRecord::from(e));
    }

    fn push_event(&mut self, e: EventRecord) {
        self.events.push_back(e);
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
    }

    /// The pub/sub connection came up or went down.
    pub fn on_pubsub(&mut self, now_ms: u64, up: bool, why: &str) {
        if up != self.pubsub_up {
            let kind = if up {
                "redis_connected"
            } else {
                "redis_disconnected"
            };
            self.push_event(EventRecord::local(now_ms, kind, why));
        }
        self.pubsub_up = up;
    }

    /// The poll failed (Redis unreachable).
    pub fn on_poll_failed(&mut self) {
        self.poll_up = false;
    }

    /// A lease/member poll result.
    pub fn on_poll(&mut self, now_ms: u64, poll: PollResult) {
        self.poll_up = true;
        self.redis_skew_ms = poll.redis_now_ms as i64 - now_ms as i64;
        if let Some(p) = poll.partitions.and_then(NonZeroU32::new) {
            let mut ownership = OwnershipMap::new(Some(p));
            for i in 0..p.get() {
                let holder = poll
                    .leases
                    .get(i as usize)
                    .and_then(|v| v.as_deref())
                    .and_then(Holder::parse);
                ownership.set(PartitionId(i), holder);
            }
            self.ownership = ownership;
        }
        self.members = poll
            .members
            .into_iter()
            .map(|(id, expiry_ms)| {
                let http = poll.member_http.get(&id).cloned();
                (id, Member { expiry_ms, http })
            })
            .collect();
    }

    /// Every partition of the cluster (none while P is unknown).
    fn partition_ids(&self) -> impl Iterator<Item = PartitionId> {
        let p = self.ownership.partitions.map_or(0, NonZeroU32::get);
        (0..p).map(PartitionId)
    }

    fn redis_now(&self, now_ms: u64) -> u64 {
        (now_ms as i64 + self.redis_skew_ms).max(0) as u64
    }

    fn instance_rates(track: &InstanceTrack, now_ms: u64) -> [f64; 4] {
        let fresh = track
            .last_stats_local_ms
            .is_some_and(|t| now_ms.saturating_sub(t) <= STATS_ALIVE_MS);
        if !fresh {
            return [0.0; 4];
        }
        let series = |f: fn(&CounterValues) -> u64| -> f64 {
            let v: Vec<(u64, u64)> = track.samples.iter().map(|(ts, c)| (*ts, f(c))).collect();
            counter_rate(&v)
        };
        [
            series(|c| c.ticks_in),
            series(|c| c.forwarded_out),
            series(|c| c.applied),
            series(|c| c.forwarded_in),
        ]
    }

    fn rows(&self, now_ms: u64) -> Vec<InstanceView> {
        let redis_now = self.redis_now(now_ms);
        let mut owned: BTreeMap<&str, u32> = BTreeMap::new();
        for (_, h) in self.ownership.holders() {
            *owned.entry(h.instance.as_str()).or_default() += 1;
        }
        let mut ids: Vec<&str> = self.instances.keys().map(String::as_str).collect();
        ids.extend(self.members.keys().map(String::as_str));
        ids.extend(owned.keys().copied());
        ids.sort_unstable();
        ids.dedup();
        let mut rows = Vec::new();
        for id in ids {
            let track = self.instances.get(id);
            let member = self.members.get(id);
            let stats_age = track
                .and_then(|t| t.last_stats_local_ms)
                .map(|t| now_ms.saturating_sub(t));
            let heartbeat = member.is_some_and(|m| m.expiry_ms > redis_now);
            let alive = heartbeat || stats_age.is_some_and(|a| a <= STATS_ALIVE_MS);
            let partitions = owned.get(id).copied().unwrap_or(0);
            let recent = stats_age.is_some_and(|a| a <= FORGET_AFTER_MS)
                || member.is_some_and(|m| m.expiry_ms + FORGET_AFTER_MS > redis_now);
            if !alive && partitions == 0 && !recent {
                continue;
            }
            let [ticks, fwd, applied, fwd_in] = track
                .map(|t| Self::instance_rates(t, now_ms))
                .unwrap_or([0.0; 4]);
            rows.push(InstanceView {
                id: id.to_string(),
                alive,
                partitions,
                ticks_per_s: ticks,
                forwarded_per_s: fwd,
                applied_per_s: applied,
                forwarded_in_per_s: fwd_in,
                http: member.and_then(|m| m.http.clone()),
                stats_age_ms: stats_age,
            });
        }
        rows
    }

    fn totals(&self, now_ms: u64) -> Totals {
        let mut t = Totals::default();
        for track in self.instances.values() {
            let recent = track
                .last_stats_local_ms
                .is_some_and(|l| now_ms.saturating_sub(l) <= FORGET_AFTER_MS);
            let Some((_, c)) = track.samples.back().filter(|_| recent) else {
                continue;
            };
            t.ticks_in += c.ticks_in;
            t.applied += c.applied;
            t.forwarded_out += c.forwarded_out;
            t.reforwarded += c.reforwarded;
            t.held += c.held + c.unrouted;
            t.duplicates += c.duplicates;
            t.gaps += c.gaps;
            t.gaps_skipped += c.gaps_skipped;
            t.replays_requested += c.replays_requested;
            t.replay_ticks += c.replay_ticks;
            t.fenced_rejected += c.fenced_rejected;
            t.leases_lost += c.leases_lost;
            t.bad_input += c.bad_input_total();
        }
        t
    }

    fn hot_symbols(&self, now_ms: u64) -> Vec<HotSymbol> {
        let mut best: BTreeMap<&str, &HotSymbol> = BTreeMap::new();
        for track in self.instances.values() {
            let fresh = track
                .last_stats_local_ms
                .is_some_and(|l| now_ms.saturating_sub(l) <= STATS_ALIVE_MS * 2);
            if !fresh {
                continue;
            }
            for h in &track.hot {
                let e = best.entry(h.symbol.as_str()).or_insert(h);
                if h.count > e.count {
                    *e = h;
                }
            }
        }
        let mut v: Vec<HotSymbol> = best.into_values().cloned().collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.symbol.cmp(&b.symbol)));
        v.truncate(HOT_SYMBOLS);
        v
    }

    /// Call a few times a second: adds the chart point of every second
    /// that has ended and forgets old data.
    pub fn tick(&mut self, now_ms: u64) {
        self.latency.expire(now_ms);
        if !self.history.due(now_ms) {
            // Only starts the history's clock on the first call.
            self.history.close(now_ms, Rates::default(), &self.latency);
            return;
        }
        let rows = self.rows(now_ms);
        let sum = |f: fn(&InstanceView) -> f64| rows.iter().map(f).sum::<f64>();
        let rates = Rates {
            ticks_per_s: sum(|r| r.ticks_per_s),
            applied_per_s: sum(|r| r.applied_per_s),
            forwarded_per_s: sum(|r| r.forwarded_per_s),
        };
        self.history.close(now_ms, rates, &self.latency);
        let forget = |t: &InstanceTrack| {
            t.last_stats_local_ms
                .is_some_and(|l| now_ms.saturating_sub(l) <= FORGET_AFTER_MS)
        };
        self.instances.retain(|_, t| forget(t));
    }

    /// The frame for the browsers. After [`ClusterView::tick`] at the same
    /// `now_ms`, every second of the cards' window has its chart point,
    /// and both read the same per-second histograms.
    pub fn snapshot(&self, now_ms: u64, demo: bool, clients: u64) -> DashboardSnapshot {
        let instances = self.rows(now_ms);
        let sum = |f: fn(&InstanceView) -> f64| instances.iter().map(f).sum::<f64>();
        let ticks_per_s = sum(|r| r.ticks_per_s);
        let forwarded_per_s = sum(|r| r.forwarded_per_s);
        let applied_per_s = sum(|r| r.applied_per_s);
        let window = self.latency.card_window(now_ms);
        let lat = |k| self.latency.summary(k, window);
        let mut health = self.health.clone();
        health.redis_connected = self.pubsub_up && self.poll_up;
        health.connected_clients = clients;
        DashboardSnapshot {
            kind: SnapshotType::Snapshot,
            ts_ms: now_ms,
            partitions: self
                .partition_ids()
                .map(|p| self.ownership.holder(p).map(|h| h.instance.to_string()))
                .collect(),
            epochs: self
                .partition_ids()
                .map(|p| self.ownership.holder(p).map(|h| h.epoch.0))
                .collect(),
            ticks_per_s,
            latency_us: lat(LatencyKind::E2e),
            events: self.events.iter().cloned().collect(),
            applied_per_s,
            forwarded_per_s,
            forward_ratio: if ticks_per_s > 0.0 {
                forwarded_per_s / ticks_per_s
            } else {
                0.0
            },
            forward_latency_us: lat(LatencyKind::Forward),
            flush_latency_us: lat(LatencyKind::Flush),
            window_s: window.seconds(),
            latency_window: LatencyWindowSpan {
                seconds: window.seconds(),
                from_ms: window.from_ms(),
                to_ms: window.to_ms(),
            },
            totals: self.totals(now_ms),
            hot_symbols: self.hot_symbols(now_ms),
            history: self.history.points().copied().collect(),
            demo,
            cluster: String::new(),
            dashboard: health,
            instances,
        }
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
