//! `feed-sim`: plays an exchange feed over WebSocket.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("feed-sim is not built yet")
}
