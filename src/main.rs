//! The `tickshard` binary: parses the command line and runs a subcommand.

use anyhow::Result;
use clap::Parser;
use tickshard::config::{Cli, Command};

fn main() -> Result<()> {
    let cli = Cli::parse();
    tickshard::logging::init();
    // A processor's work is one worker task and a few I/O tasks: on a
    // machine it shares with its peers, Redis and the feed, one runtime
    // thread avoids the cross-thread wake-ups that cost more CPU than
    // they win (see `--worker-threads`).
    let mut runtime = match &cli.command {
        Command::Processor(args) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(args.worker_threads as usize);
            b
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let shutdown = tickshard::shutdown::on_signals();
    match cli.command {
        Command::Processor(args) => {
            if let Err(e) = tickshard::processor::run(args, shutdown).await {
                // One clear line at the edge, not a debug dump.
                eprintln!("tickshard processor: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Dashboard(args) => {
            let config = tickshard::dashboard::DashboardConfig::from_args(&args);
            if let Err(e) = tickshard::dashboard::run(config, shutdown).await {
                eprintln!("tickshard dashboard: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Demo(args) => {
            if let Err(e) = tickshard::demo::run(args, shutdown).await {
                eprintln!("tickshard demo: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
