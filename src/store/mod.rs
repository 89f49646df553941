//! Fenced persistence of per-symbol state in Redis, and loading it back.
//!
//! A flush writes one partition's dirty symbols with a Lua script
//! (`flush.lua`) that writes only if `{ns}:{p<p>}:lease:{p}` still holds
//! `{instance}:{epoch}` and no symbol's stored `fence` is newer than
//! `epoch`. The symbols go in chunks of at most [`Store::with_chunk`]
//! symbols, one script each (a few in flight at once), so no script holds
//! the single-threaded Redis for long: the forwarded ticks and the lease
//! renewals it also carries never wait behind a big flush. Each symbol's
//! whole state (the fields of the totals and of every operator) is
//! written, so chunks are independent and a chunk written twice (a retry)
//! changes nothing. Operator outputs are appended to
//! `{ns}:{p<p>}:out:<operator>:<SYMBOL>` in the same script, with ids
//! `<seq>-<n>` derived from the tick, so a re-sent entry is not appended
//! twice. While `{ns}:{p<p>}:watched` exists, the script also publishes
//! what it wrote on `{ns}:{p<p>}:live` ([`crate::live`]).
//! Loading reads `{ns}:{p<p>}:psyms:{p}` and every listed symbol's
//! `{ns}:{p<p>}:sym:<SYMBOL>` hash, through the operators' `load`.

use std::collections::HashMap;

use crate::cluster::RedisConn;

use crate::clock::now_ns;
use crate::engine::{PartitionFlush, SymbolRecord, SymbolState};
use crate::keys::Keys;
use crate::operator::totals::Totals;
use crate::operator::{FieldError, Operator, OperatorSet, Output, StoredFields};
use crate::tick::{InstanceId, PartitionId, Symbol};

/// Default of [`Store::with_output_max_len`].
pub const DEFAULT_OUTPUT_MAX_LEN: u64 = 10_000;

/// How long a flush script may take before its reply counts as lost (it
/// is then retried; writing again is harmless).
pub const FLUSH_RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Symbols read per pipelined round trip when loading.
const LOAD_CHUNK: usize = 512;

/// Default of [`Store::with_chunk`]: symbols per flush script.
pub const DEFAULT_FLUSH_CHUNK: usize = 8;

/// Flush scripts of one partition in flight at once: pipelined, so a
/// flush of many symbols does not pay one round trip per chunk, while at
/// most this many chunks wait in Redis ahead of a forwarded batch.
const FLUSH_SCRIPTS_IN_FLIGHT: usize = 4;

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Written: this many symbols.
    Written(usize),
    /// Rejected: the lease is no longer ours at this epoch.
    LeaseLost,
    /// Rejected: a symbol already carries a newer fence.
    FenceNewer,
}

impl FlushOutcome {
    /// True when the write was refused by fencing.
    pub fn is_fenced(self) -> bool {
        !matches!(self, FlushOutcome::Written(_))
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis failed or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The flush script answered something unexpected.
    #[error("unexpected flush script reply {0:?}")]
    UnexpectedReply(Vec<i64>),
    /// An operator's output stream key holds a value of another type.
    #[error("{0} holds something that is not a stream; nothing was written")]
    NotAStream(String),
}

impl StoreError {
    /// True when trying again later may succeed by itself (see
    /// [`crate::retry::redis_is_transient`]); an unexpected script reply
    /// or a refused command (permissions, a foreign value under our key)
    /// needs an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Redis(e) => crate::retry::redis_is_transient(e),
            StoreError::UnexpectedReply(_) | StoreError::NotAStream(_) => false,
        }
    }
}

/// A symbol whose stored state could not be read (it restarts from seq 1,
/// which the feed's replay fills).
#[derive(Debug, Clone)]
pub struct CorruptSymbol {
    /// The symbol, or the raw member name if it is not a valid symbol.
    pub name: String,
    /// What was wrong.
    pub reason: String,
}

/// A partition's stored state.
#[derive(Debug, Default)]
pub struct LoadedPartition {
    /// Every readable symbol.
    pub symbols: Vec<(Symbol, SymbolState)>,
    /// Unreadable entries, reported by the caller.
    pub corrupt: Vec<CorruptSymbol>,
}

/// Reads and writes symbol state under one namespace for one instance.
#[derive(Clone)]
pub struct Store {
    conn: RedisConn,
    keys: Keys,
    instance: InstanceId,
    flush_script: redis::Script,
    chunk: usize,
    operators: OperatorSet,
    output_max_len: u64,
}

impl Store {
    /// A store writing as `instance` the state of `operators`.
    pub fn new(conn: RedisConn, keys: Keys, instance: InstanceId, operators: OperatorSet) -> Self {
        Self {
            conn,
            keys,
            instance,
            flush_script: redis::Script::new(include_str!("flush.lua")),
            chunk: DEFAULT_FLUSH_CHUNK,
            operators,
            output_max_len: DEFAULT_OUTPUT_MAX_LEN,
        }
    }

    /// Trims each output stream to about `entries`.
    pub fn with_output_max_len(mut self, entries: u64) -> Self {
        self.output_max_len = entries;
        self
    }

    /// Writes at most `symbols` symbols per flush script (at least 1).
    pub fn with_chunk(mut self, symbols: usize) -> Self {
        self.chunk = symbols.max(1);
        self
    }

    /// Writes one partition's records, fenced by its epoch, in scripts of
    /// at most the configured chunk of symbols. A refusal by fencing wins
    /// over a Redis error; either way the caller retries or drops the
    /// whole flush (writing a symbol's state again is harmless).
    pub async fn flush(&self, flush: &PartitionFlush) -> Result<FlushOutcome, StoreError> {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let mut chunks = pack(&flush.records, self.chunk).into_iter();
        let mut in_flight = FuturesUnordered::new();
        let mut written = 0;
        let mut error = None;
        loop {
            while in_flight.len() < FLUSH_SCRIPTS_IN_FLIGHT {
                match chunks.next() {
                    Some(records) => in_flight.push(self.flush_chunk(flush, records)),
                    None => break,
                }
            }
            match in_flight.next().await {
                None => break,
                Some(Ok(FlushOutcome::Written(n))) => written += n,
                Some(Ok(fenced)) => return Ok(fenced),
                Some(Err(e)) => error = Some(e),
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(FlushOutcome::Written(written)),
        }
    }

    /// One script: `records` of `flush`'s partition.
    async fn flush_chunk(
        &self,
        flush: &PartitionFlush,
        records: &[SymbolRecord],
    ) -> Result<FlushOutcome, StoreError> {
        let p = flush.partition;
        let mut inv = self.flush_script.prepare_invoke();
        inv.arg(format!("{}:{}", self.instance, flush.epoch))
            .arg(flush.epoch.0)
            .arg(p.0)
            .arg(records.len())
            .arg(now_ns())
            .arg(self.output_max_len)
            .arg(self.keys.live(p));
        let mut keys = vec![self.keys.lease(p), self.keys.psyms(p), self.keys.watched(p)];
        for record in records {
            keys.push(self.keys.sym(p, &record.symbol));
        }
        for record in records {
            inv.arg(record.symbol.as_str())
                .arg(record.totals.last_seq)
                .arg(record.fields.len());
            for (k, v) in &record.fields {
                inv.arg(k).arg(v);
            }
            let streams = by_operator(&record.outputs);
            inv.arg(streams.len());
            for (operator, outputs) in streams {
                let name = self.operators.name(operator).unwrap_or("unknown");
                keys.push(self.keys.out(p, name, &record.symbol));
                inv.arg(name).arg(outputs.len());
                for output in outputs {
                    inv.arg(output.id()).arg(output.fields.len());
                    for (k, v) in &output.fields {
                        inv.arg(*k).arg(v);
                    }
                }
            }
        }
        for key in &keys {
            inv.key(key);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = inv.invoke_async(&mut conn).await?;
        match reply.as_slice() {
            [n] if *n >= 0 => Ok(FlushOutcome::Written(*n as usize)),
            [-1] => Ok(FlushOutcome::LeaseLost),
            [-2, _] => Ok(FlushOutcome::FenceNewer),
            [-3, j] => {
                let key = usize::try_from(*j - 1).ok().and_then(|j| keys.get(j));
                Err(StoreError::NotAStream(key.cloned().unwrap_or_default()))
            }
            _ => Err(StoreError::UnexpectedReply(reply)),
        }
    }

    /// Loads the stored state of every symbol of partition `p`.
    pub async fn load(&self, p: PartitionId) -> Result<LoadedPartition, StoreError> {
        let mut conn = self.conn.clone();
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.psyms(p))
            .query_async(&mut conn)
            .await?;
        let mut loaded = LoadedPartition::default();
        let mut symbols = Vec::with_capacity(names.len());
        for name in names {
            match name.parse::<Symbol>() {
                Ok(s) => symbols.push(s),
                Err(e) => loaded.corrupt.push(CorruptSymbol {
                    name,
                    reason: e.to_string(),
                }),
            }
        }
        for chunk in symbols.chunks(LOAD_CHUNK) {
            let mut pipe = redis::pipe();
            for s in chunk {
                pipe.hgetall(self.keys.sym(p, s));
            }
            let maps: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            for (symbol, map) in chunk.iter().zip(maps) {
                if map.is_empty() {
                    continue;
                }
                match self.decode(&map) {
                    Ok(state) => loaded.symbols.push((*symbol, state)),
                    Err(e) => loaded.corrupt.push(CorruptSymbol {
                        name: symbol.to_string(),
                        reason: e.to_string(),
                    }),
                }
            }
        }
        Ok(loaded)
    }

    /// A stored hash back into a symbol's state.
    fn decode(&self, map: &HashMap<String, String>) -> Result<SymbolState, FieldError> {
        let stored = StoredFields::new(map);
        let totals = Totals.load(&stored)?;
        let operators = self.operators.load(&stored)?;
        Ok(SymbolState::restored(totals, operators))
    }
}

/// Most outputs one flush script carries (besides a single symbol's,
/// which [`crate::engine::MAX_SYMBOL_OUTPUTS`] bounds).
const OUTPUTS_PER_SCRIPT: usize = 2_000;

/// `records` cut into runs of at most `chunk` symbols and about
/// [`OUTPUTS_PER_SCRIPT`] outputs (at least one symbol each).
fn pack(records: &[SymbolRecord], chunk: usize) -> Vec<&[SymbolRecord]> {
    let mut runs = Vec::new();
    let (mut start, mut outputs) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let full = i - start >= chunk || outputs + r.outputs.len() > OUTPUTS_PER_SCRIPT;
        if i > start && full {
            runs.push(&records[start..i]);
            start = i;
            outputs = 0;
        }
        outputs += r.outputs.len();
    }
    if start < records.len() {
        runs.push(&records[start..]);
    }
    runs
}

/// `outputs` grouped by operator (one stream each), in the order each
/// operator first appears, each group in output order.
fn by_operator(outputs: &[Output]) -> Vec<(u16, Vec<&Output>)> {
    let mut groups: Vec<(u16, Vec<&Output>)> = Vec::new();
    for output in outputs {
        match groups.iter_mut().find(|(op, _)| *op == output.operator) {
            Some((_, group)) => group.push(output),
            None => groups.push((output.operator, vec![output])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::Output;
    use crate::totals::SymbolTotals;

    fn record(outputs: usize) -> SymbolRecord {
        let output = Output {
            operator: 0,
            seq: 1,
            index: 0,
            fields: vec![("k", "v".to_owned())],
        };
        SymbolRecord {
            symbol: "A".parse().unwrap(),
            totals: SymbolTotals::default(),
            fields: vec![],
            outputs: vec![output; outputs],
        }
    }

    #[test]
    fn scripts_are_cut_by_symbols_and_outputs() {
        let sizes = |records: &[SymbolRecord], chunk| -> Vec<usize> {
            pack(records, chunk).iter().map(|r| r.len()).collect()
        };
        let plain: Vec<SymbolRecord> = (0..10).map(|_| record(0)).collect();
        assert_eq!(sizes(&plain, 4), vec![4, 4, 2]);
        // 1,500 outputs each: one symbol per script, whatever the chunk.
        let heavy: Vec<SymbolRecord> = (0..3).map(|_| record(1_500)).collect();
        assert_eq!(sizes(&heavy, 8), vec![1, 1, 1]);
        // One symbol over the budget still goes, alone.
        let huge = vec![record(0), record(5_000), record(1)];
        assert_eq!(sizes(&huge, 8), vec![1, 1, 1]);
        assert!(pack(&[], 8).is_empty());
    }
}
