//! `feed-sim`: plays an exchange feed over WebSocket (see the crate docs
//! and README). Prints `listening addr=...` on stderr once bound and one
//! JSON summary line on stdout at exit.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = feed_sim::Args::parse().into_config()?;
    tickshard::logging::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = tickshard::shutdown::on_signals();
        let feed = feed_sim::Feed::bind(config).await?;
        tracing::info!(addr = %feed.local_addr(), "listening");
        if let Some(addr) = feed.metrics_addr() {
            tracing::info!(%addr, "metrics http listening");
        }
        let summary = feed.run(shutdown).await?;
        println!("{}", summary.to_json_line());
        Ok(())
    })
}
