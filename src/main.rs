//! The `tickshard` binary: parses the command line and runs a subcommand.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use tickshard::config::{Cli, Command};

const PROCESSOR: &str = "tickshard processor";

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    if let Command::Processor(args) = cli.command {
        return Ok(match args.operators() {
            Ok(operators) => tickshard::processor::run_process(PROCESSOR, args, operators),
            Err(e) => {
                eprintln!("{PROCESSOR}: {e}");
                ExitCode::FAILURE
            }
        });
    }
    tickshard::logging::init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))?;
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli) -> Result<()> {
    let shutdown = tickshard::shutdown::on_signals();
    match cli.command {
        // Run by `main` on a runtime of its own (`--worker-threads`).
        Command::Processor(_) => Ok(()),
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
