//! A TCP proxy for fault injection: listens on a free loopback port and
//! forwards bytes both ways to an upstream address. It can be switched to
//! a blackhole (bytes stop moving, connections stay open, as in a network
//! partition where packets are dropped and TCP keeps retrying), switched
//! back, and told to cut every open connection (both sides closed, new ones
//! still accepted).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A running proxy; dropping it stops it and closes every connection.
pub struct Proxy {
    addr: SocketAddr,
    forwarding: watch::Sender<bool>,
    /// Cancelled to close the connections open now; replaced on each cut.
    connections: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`host:port`), forwarding.
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (forwarding, rx) = watch::channel(true);
        let connections = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let upstream = upstream.to_owned();
        let conns = Arc::clone(&connections);
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    biased;
                    _ = token.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else { continue };
                // Dropping the proxy cancels the current token too.
                let cut = conns.lock().expect("proxy lock").child_token();
                let upstream = upstream.clone();
                let rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = pump(cr, sw, rx.clone(), cut.clone());
                    let down = pump(sr, cw, rx, cut.clone());
                    // Either side ending (or a cut) closes both.
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = cut.cancelled() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            forwarding,
            connections,
            stop,
        }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops moving bytes (connections stay open).
    pub fn blackhole(&self) {
        self.forwarding.send_replace(false);
    }

    /// Moves bytes again.
    pub fn resume(&self) {
        self.forwarding.send_replace(true);
    }

    /// Closes every connection open now; later connections are served.
    pub fn cut(&self) {
        let mut guard = self.connections.lock().expect("proxy lock");
        guard.cancel();
        *guard = CancellationToken::new();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.connections.lock().expect("proxy lock").cancel();
    }
}

/// Copies `from` to `to` while forwarding is on; holds the bytes (stops
/// reading) while it is off.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut forwarding: watch::Receiver<bool>,
    cut: CancellationToken,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Blackholed: wait, holding the connection open.
        if forwarding.wait_for(|on| *on).await.is_err() {
            return;
        }
        let n = tokio::select! {
            biased;
            _ = cut.cancelled() => return,
            _ = forwarding.wait_for(|on| !*on) => continue,
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        // Bytes read just before a blackhole are held until it lifts.
        if forwarding.wait_for(|on| *on).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
