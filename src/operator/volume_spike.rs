//! A volume-spike signal: a tick whose size is at least `factor` times the
//! symbol's average trade size (an exponential average over `window`
//! ticks, `α = 2 / (window + 1)`) emits an output entry with fields
//! `symbol`, `seq`, `size`, `avg_size`, `price`. No signal fires before
//! `window` ticks have been seen. State fields: `volume_spike_avg_size`,
//! `volume_spike_seen`, `volume_spike_count` (signals so far).

use super::{Emit, FieldError, FieldWriter, Operator, StoredFields};
use crate::tick::Tick;

const AVG: &str = "volume_spike_avg_size";
const SEEN: &str = "volume_spike_seen";
const COUNT: &str = "volume_spike_count";

/// The volume-spike operator.
#[derive(Debug, Clone)]
pub struct VolumeSpike {
    window: u64,
    factor: f64,
    alpha: f64,
}

/// One symbol's volume-spike state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpikeState {
    /// Average trade size.
    pub avg_size: f64,
    /// Ticks seen, up to the window.
    pub seen: u64,
    /// Signals emitted.
    pub count: u64,
}

impl VolumeSpike {
    /// Signals sizes ≥ `factor` × the average over `window` ticks.
    pub fn new(window: u32, factor: f64) -> Self {
        let window = window.max(1);
        Self {
            window: u64::from(window),
            factor,
            alpha: 2.0 / (f64::from(window) + 1.0),
        }
    }
}

impl Operator for VolumeSpike {
    type State = SpikeState;

    fn name(&self) -> &str {
        "volume_spike"
    }

    fn fields(&self) -> Vec<String> {
        [AVG, SEEN, COUNT].map(str::to_owned).to_vec()
    }

    fn init(&self) -> SpikeState {
        SpikeState::default()
    }

    fn apply(&self, s: &mut SpikeState, tick: &Tick, out: &mut Emit<'_>) {
        let size = f64::from(tick.size);
        if s.seen >= self.window && size >= self.factor * s.avg_size {
            s.count += 1;
            out.emit(vec![
                ("symbol", tick.symbol.to_string()),
                ("seq", tick.seq.to_string()),
                ("size", tick.size.to_string()),
                ("avg_size", format!("{:.2}", s.avg_size)),
                ("price", tick.price.to_string()),
            ]);
        }
        s.avg_size = if s.seen == 0 {
            size
        } else {
            s.avg_size + self.alpha * (size - s.avg_size)
        };
        s.seen = (s.seen + 1).min(self.window);
    }

    fn save(&self, s: &SpikeState, fields: &mut FieldWriter) {
        fields.put(AVG, s.avg_size);
        fields.put(SEEN, s.seen);
        fields.put(COUNT, s.count);
    }

    fn load(&self, stored: &StoredFields<'_>) -> Result<SpikeState, FieldError> {
        let avg_size: f64 = stored.get(AVG)?;
        if !avg_size.is_finite() {
            return Err(FieldError {
                field: AVG.to_owned(),
                value: avg_size.to_string(),
            });
        }
        Ok(SpikeState {
            avg_size,
            seen: stored.get(SEEN)?,
            count: stored.get(COUNT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_trade_after_the_window_is_signalled() {
        let op = VolumeSpike::new(3, 5.0);
        let mut s = op.init();
        let mut outputs = crate::operator::OutputBuf::default();
        for (seq, size) in [(1, 100), (2, 1000), (3, 100), (4, 100), (5, 2000), (6, 100)] {
            let t = Tick::new("A".parse().unwrap(), seq, "1".parse().unwrap(), size, seq).unwrap();
            op.apply(&mut s, &t, &mut Emit::new(&mut outputs, 0, seq));
        }
        // Seq 2 comes before the window is full; seq 5 is a spike.
        let outputs = outputs.take();
        let seqs: Vec<u64> = outputs.iter().map(|o| o.seq).collect();
        assert_eq!(seqs, vec![5]);
        assert_eq!(s.count, 1);
        assert_eq!(outputs[0].fields[2], ("size", "2000".to_owned()));
    }
}
