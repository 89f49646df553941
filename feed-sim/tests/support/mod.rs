//! Test support for feed-sim: the feed in-process or as the real binary,
//! a real WebSocket client, and reading with deadlines.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tickshard::codec::{decode_batch, FeedMessage};
use tickshard::tick::{Symbol, Tick};
use tickshard_testkit::process::Proc;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// A feed running in this process.
pub struct InProcessFeed {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<feed_sim::Summary, feed_sim::FeedError>>,
}

impl InProcessFeed {
    /// Starts a feed with `feed-sim` command-line arguments (after the
    /// program name; `--listen 127.0.0.1:0` is added).
    pub async fn start(args: &[&str]) -> Self {
        let mut all = vec!["feed-sim", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let config = feed_sim::Args::try_parse_from(all)
            .expect("valid args")
            .into_config()
            .expect("valid config");
        let feed = feed_sim::Feed::bind(config).await.expect("feed binds");
        let addr = feed.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(feed.run(shutdown.clone()));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    /// Stops the feed and returns its summary.
    pub async fn stop(self) -> feed_sim::Summary {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("feed stops in time")
            .expect("feed task")
            .expect("feed ran")
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a client received.
#[derive(Debug)]
pub enum Received {
    Ticks(Vec<Tick>),
    Seqs(BTreeMap<Symbol, u64>),
    Error(String),
    Closed(Option<(u16, String)>),
}

/// A real WebSocket client of the feed.
pub struct Client {
    pub ws: Ws,
}

impl Client {
    /// Connects and says hello.
    pub async fn connect(addr: SocketAddr, id: &str, format: &str) -> Self {
        let mut c = Self::connect_raw(addr).await;
        c.send_text(&format!(
            r#"{{"type":"hello","id":"{id}","format":"{format}"}}"#
        ))
        .await;
        c
    }

    /// Connects without hello.
    pub async fn connect_raw(addr: SocketAddr) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .expect("websocket connect");
        Self { ws }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send text");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send binary");
    }

    /// The next meaningful message, or panics after `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Received {
        loop {
            let msg = tokio::time::timeout(timeout, self.ws.next())
                .await
                .expect("a message in time");
            match msg {
                None => return Received::Closed(None),
                Some(Err(e)) => panic!("websocket error: {e}"),
                Some(Ok(Message::Binary(b))) => {
                    let mut ticks = Vec::new();
                    decode_batch(&b, &mut ticks).expect("valid binary batch");
                    return Received::Ticks(ticks);
                }
                Some(Ok(Message::Text(t))) => {
                    return match FeedMessage::parse(t.as_str()).expect("valid JSON message") {
                        FeedMessage::Batch { ticks } => Received::Ticks(ticks),
                        FeedMessage::Tick(t) => Received::Ticks(vec![t]),
                        FeedMessage::Seqs { seqs } => Received::Seqs(seqs),
                        FeedMessage::Error { message } => Received::Error(message),
                        other => panic!("unexpected message {other:?}"),
                    };
                }
                Some(Ok(Message::Close(f))) => {
                    return Received::Closed(f.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Next error message, skipping ticks and seqs (returned too).
    pub async fn next_error(&mut self, skipped: &mut Vec<Tick>) -> String {
        loop {
            match self.recv(Duration::from_secs(5)).await {
                Received::Error(e) => return e,
                Received::Ticks(t) => skipped.extend(t),
                Received::Seqs(_) => {}
                Received::Closed(c) => panic!("closed while waiting for an error: {c:?}"),
            }
        }
    }
}

/// Collects what several clients receive, until `done` says stop or the
/// deadline passes.
pub struct Collector {
    pub ticks: Vec<Tick>,
    pub seqs: Vec<BTreeMap<Symbol, u64>>,
}

impl Collector {
    pub fn new() -> Self {
        Self {
            ticks: Vec::new(),
            seqs: Vec::new(),
        }
    }

    /// Reads from `client` until `count` ticks have arrived in total.
    pub async fn read_until(&mut self, client: &mut Client, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.ticks.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out with {} of {count} ticks",
                self.ticks.len()
            );
            match client.recv(left).await {
                Received::Ticks(t) => self.ticks.extend(t),
                Received::Seqs(s) => self.seqs.push(s),
                Received::Error(e) => panic!("unexpected error message: {e}"),
                Received::Closed(c) => panic!("closed early: {c:?}"),
            }
        }
    }
}

/// Per symbol, the sorted seqs of `ticks`; panics on a duplicate.
pub fn seqs_by_symbol(ticks: &[Tick]) -> BTreeMap<Symbol, BTreeSet<u64>> {
    let mut out: BTreeMap<Symbol, BTreeSet<u64>> = BTreeMap::new();
    for t in ticks {
        assert!(
            out.entry(t.symbol).or_default().insert(t.seq),
            "duplicate tick {} #{}",
            t.symbol,
            t.seq
        );
    }
    out
}

/// Asserts every symbol's seqs are exactly 1..=n.
pub fn assert_contiguous(by_symbol: &BTreeMap<Symbol, BTreeSet<u64>>) {
    for (sym, seqs) in by_symbol {
        let n = seqs.len() as u64;
        assert_eq!(seqs.first(), Some(&1), "{sym} does not start at 1");
        assert_eq!(seqs.last(), Some(&n), "{sym} has holes");
    }
}

/// The feed-sim binary as a child process (the test kit's [`Proc`], its
/// stdout, the summary line, kept apart).
pub struct FeedProcess {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl FeedProcess {
    /// Spawns `feed-sim --listen 127.0.0.1:0 ARGS` and waits for
    /// `listening addr=...` in its log.
    pub async fn spawn(args: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_feed-sim"));
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info");
        let proc = Proc::launch("feed-sim", cmd)
            .stdout_apart()
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = proc
            .logged_value("listening addr=", "addr", Duration::from_secs(10))
            .await;
        let addr = addr
            .parse()
            .unwrap_or_else(|e| panic!("addr {addr:?}: {e}"));
        Self { proc, addr }
    }

    /// Waits for a log line containing `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        self.proc.wait_log(needle, timeout).await
    }

    /// Waits for the process to exit by itself; its JSON summary line.
    pub fn wait_exit(mut self, timeout: Duration) -> serde_json::Value {
        self.summary(timeout)
    }

    /// SIGTERM, then the JSON summary line from stdout.
    pub fn stop(mut self) -> serde_json::Value {
        self.proc.term();
        self.summary(Duration::from_secs(30))
    }

    /// Waits for a successful exit; the one line it printed, parsed.
    fn summary(&mut self, timeout: Duration) -> serde_json::Value {
        let status = self.proc.wait_exit(timeout).unwrap_or_else(|| {
            self.proc.show_log("feed-sim-test");
            panic!("feed-sim did not exit within {timeout:?}")
        });
        assert!(status.success(), "feed-sim exited with {status}");
        let out = self.proc.stdout();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one stdout line, got {out:?}");
        serde_json::from_str(lines[0]).expect("summary is JSON")
    }
}

/// The shared real-data directory: `TICKSHARD_DATA_DIR`, else
/// `../shared/data` beside the repository.
pub fn data_file(name: &str) -> PathBuf {
    let dir = std::env::var_os("TICKSHARD_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "real data file {} not found; set TICKSHARD_DATA_DIR to the directory holding it",
        path.display()
    );
    path
}
