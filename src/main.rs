//! The `tickshard` binary: parses the command line and runs a subcommand.

use anyhow::Result;
use clap::Parser;
use tickshard::config::{Cli, Command};

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    tickshard::logging::init();
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
