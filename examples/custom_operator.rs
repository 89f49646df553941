//! Your own per-symbol logic, run by tickshard with its guarantees: this
//! program is `tickshard processor` plus the operator `big_print`.
//!
//! ```text
//! cargo build --release --example custom_operator
//! target/release/examples/custom_operator --redis redis://127.0.0.1:6379/ \
//!     --feed ws://127.0.0.1:9000/ --big-size 500
//! ```
//!
//! It takes every `tickshard processor` option, plus `--big-size N`
//! (default 100). Per symbol, `big_print` counts the ticks of size ≥ N
//! (`big_count`) and their volume (`big_volume`), stored as fields of the
//! symbol's hash `{ns}:{p<p>}:sym:<SYMBOL>` next to the built-ins, and
//! writes one entry per such tick (`symbol`, `seq`, `size`, `price`) to
//! the stream `{ns}:{p<p>}:out:big_print:<SYMBOL>`, whose entry id is
//! `<seq>-0`. Across crashes, replays and handovers both stay exactly what
//! one pass over the ticks gives.

use std::process::ExitCode;

use clap::Parser;
use tickshard::config::ProcessorArgs;
use tickshard::operator::{Emit, FieldError, FieldWriter, Operator, StoredFields};
use tickshard::tick::Tick;

/// tickshard processor with the `big_print` operator.
#[derive(Debug, Parser)]
#[command(name = "custom_operator", version, about)]
struct Cli {
    #[command(flatten)]
    processor: ProcessorArgs,

    /// Smallest trade size that counts as a big print.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    big_size: u32,
}

/// Big prints: trades of at least `min_size` shares.
#[derive(Debug)]
struct BigPrint {
    min_size: u32,
}

/// One symbol's big prints so far.
#[derive(Debug, Default)]
struct BigPrints {
    count: u64,
    volume: u64,
}

impl Operator for BigPrint {
    type State = BigPrints;

    fn name(&self) -> &str {
        "big_print"
    }

    fn fields(&self) -> Vec<String> {
        vec!["big_count".into(), "big_volume".into()]
    }

    fn init(&self) -> BigPrints {
        BigPrints::default()
    }

    fn apply(&self, state: &mut BigPrints, tick: &Tick, out: &mut Emit<'_>) {
        if tick.size < self.min_size {
            return;
        }
        state.count += 1;
        state.volume += u64::from(tick.size);
        out.emit(vec![
            ("symbol", tick.symbol.to_string()),
            ("seq", tick.seq.to_string()),
            ("size", tick.size.to_string()),
            ("price", tick.price.to_string()),
        ]);
    }

    fn save(&self, state: &BigPrints, fields: &mut FieldWriter) {
        fields.put("big_count", state.count);
        fields.put("big_volume", state.volume);
    }

    fn load(&self, stored: &StoredFields<'_>) -> Result<BigPrints, FieldError> {
        Ok(BigPrints {
            count: stored.get("big_count")?,
            volume: stored.get("big_volume")?,
        })
    }
}

fn main() -> ExitCode {
    const PROGRAM: &str = "custom_operator";
    let cli = Cli::parse();
    let operators = cli.processor.operators().and_then(|mut ops| {
        ops.push(BigPrint {
            min_size: cli.big_size,
        })?;
        Ok(ops)
    });
    match operators {
        Ok(ops) => tickshard::processor::run_process(PROGRAM, cli.processor, ops),
        Err(e) => {
            eprintln!("{PROGRAM}: {e}");
            ExitCode::FAILURE
        }
    }
}
