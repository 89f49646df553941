//! The feed's `/metrics` (served only with `--metrics ADDR`), through
//! prometheus-client like the processor's:
//!
//! - `feed_sim_ticks_sent_total{client}`: live ticks written to each
//!   client, by its `hello` id: a prometheus-client counter family, which
//!   a connection's writer bumps once per batch;
//! - `feed_sim_replays_total` and `feed_sim_replay_ticks_total`: replay
//!   requests answered and the ticks they carried;
//! - `feed_sim_clients_connected`: clients that said `hello` and are still
//!   connected.
//!
//! The last three are read at scrape time from what the run keeps anyway
//! (the summary counters and the hub), so nothing is counted twice.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

/// A client's `hello` id as a label value, escaped for the text format
/// (the id is whatever the client sent: 1-64 characters of any kind).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct ClientId(pub Arc<str>);

impl EncodeLabelValue for ClientId {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The labels of `feed_sim_ticks_sent_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabels {
    /// The client's `hello` id.
    pub client: ClientId,
}

/// Ticks sent, per client.
#[derive(Debug, Clone, Default)]
pub struct TicksSent(Family<ClientLabels, Counter>);

impl TicksSent {
    /// The counter of the client called `id` (the same one again when a
    /// client with that id comes back).
    pub fn of(&self, id: &Arc<str>) -> Counter {
        self.0
            .get_or_create(&ClientLabels {
                client: ClientId(id.clone()),
            })
            .clone()
    }
}

/// The feed's registry: [`TicksSent`] and the families read from `shared`.
pub fn registry(shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "feed_sim_ticks_sent",
        "Live ticks written to each client, by its hello id",
        shared.ticks_sent.0.clone(),
    );
    registry.register_collector(Box::new(RunCollector(shared)));
    registry
}

/// Replays and connected clients, read from the run's state.
#[derive(Debug)]
struct RunCollector(Arc<Shared>);

impl Collector for RunCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.0.counters;
        for (name, help, value) in [
            (
                "feed_sim_replays",
                "Replay requests answered with ticks.",
                c.replay_requests.get(),
            ),
            (
                "feed_sim_replay_ticks",
                "Ticks sent in answer to replay requests.",
                c.replay_ticks.get(),
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let clients = i64::try_from(self.0.hub.len()).unwrap_or(i64::MAX);
        let gauge = ConstGauge::new(clients);
        gauge.encode(encoder.encode_descriptor(
            "feed_sim_clients_connected",
            "Clients that said hello and are connected.",
            None,
            gauge.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, registry: Registry, shutdown: CancellationToken) {
    let app = tickshard::http::metrics::router(Arc::new(registry));
    if let Err(e) = tickshard::http::serve(listener, app, shutdown).await {
        tracing::warn!(error = %e, "metrics server failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_escaped_in_labels() {
        let sent = TicksSent::default();
        sent.of(&Arc::from("p1")).inc_by(5);
        sent.of(&Arc::from("odd \"id\"\\\n")).inc();
        sent.of(&Arc::from("p1")).inc_by(2);
        let mut registry = Registry::default();
        registry.register("t", "T", sent.0.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("t_total{client=\"p1\"} 7\n"), "{text}");
        assert!(
            text.contains("t_total{client=\"odd \\\"id\\\"\\\\\\n\"} 1\n"),
            "{text}"
        );
    }
}
