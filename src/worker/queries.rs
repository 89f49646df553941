//! Answers about owned symbols: local and remote symbol queries, and the
//! hottest symbols for the stats publisher.

use super::Worker;
use crate::cluster::IncomingRequest;
use crate::engine::PartitionStatus;
use crate::partition::partition_of;
use crate::query::{QueryReply, SymbolQuery, SymbolView};
use crate::stats::{BadInput, HotSymbol};
use crate::tick::Symbol;

impl Worker {
    pub(super) fn publish_hot(&self) {
        let hot = self
            .engine
            .hottest(10)
            .into_iter()
            .map(|(symbol, s)| hot_symbol(symbol, s, self.engine.operators()))
            .collect();
        let _ = self.out.hot.send(hot);
    }

    pub(super) fn answer(&self, symbol: &Symbol) -> QueryReply {
        let p = partition_of(symbol, self.partitions);
        let epoch = match self.engine.status(p) {
            PartitionStatus::Active(e) | PartitionStatus::Loading(e) => e,
            PartitionStatus::NotOwned => return QueryReply::NotOwner,
        };
        match self.engine.get(symbol) {
            Some((p, state)) => QueryReply::Found {
                state: SymbolView::of(
                    *symbol,
                    p,
                    self.cluster.instance().clone(),
                    epoch,
                    state.fields(self.engine.operators()).into_pairs(),
                    state,
                ),
            },
            None => QueryReply::NotFound,
        }
    }

    pub(super) fn on_request(&self, req: IncomingRequest) {
        let reply = match serde_json::from_slice::<SymbolQuery>(&req.payload) {
            Ok(q) => self.answer(&q.symbol),
            Err(e) => {
                self.metrics.bad_input(
                    BadInput::InvalidRequest,
                    &format_args!("undecodable query from {}: {e}", req.from),
                );
                return;
            }
        };
        let payload = serde_json::to_vec(&reply).unwrap_or_default();
        tokio::spawn(async move {
            if let Err(e) = req.reply(payload.into()).await {
                tracing::debug!(error = %e, "query reply not sent");
            }
        });
    }
}

fn hot_symbol(
    symbol: Symbol,
    state: &crate::engine::SymbolState,
    ops: &crate::operator::OperatorSet,
) -> HotSymbol {
    let price = |p: Option<crate::tick::Price>| p.map(|p| p.to_string()).unwrap_or_default();
    let bar = crate::operator::bars::primary_bar(state.fields(ops).pairs());
    HotSymbol {
        symbol: symbol.to_string(),
        count: state.totals.count,
        last_px: state.totals.last_px.to_string(),
        vwap_px: price(state.totals.vwap()),
        open: price(bar.map(|b| b.open)),
        high: price(bar.map(|b| b.high)),
        low: price(bar.map(|b| b.low)),
        close: price(bar.map(|b| b.close)),
    }
}
