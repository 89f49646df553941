//! Test support for feed-sim: the feed in-process or as the real binary,
//! a real WebSocket client, and reading with deadlines.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tickshard::codec::{decode_batch, FeedMessage};
use tickshard::tick::{Symbol, Tick};
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

/// The feed-sim binary as a child process.
pub struct FeedProcess {
    pub child: Child,
    pub addr: SocketAddr,
    stderr_lines: std::sync::mpsc::Receiver<String>,
}

impl FeedProcess {
    /// Spawns `feed-sim --listen 127.0.0.1:0 ARGS` and waits for
    /// `listening addr=...` on stderr.
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_feed-sim"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn feed-sim");
        let stderr = child.stderr.take();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut process = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr_lines: rx,
        };
        let stderr = stderr.expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = process
                .stderr_lines
                .recv_timeout(left)
                .expect("feed-sim logs `listening addr=` in time");
            let plain = strip_ansi(&line);
            if let Some(rest) = plain.split("listening addr=").nth(1) {
                process.addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .parse()
                    .expect("addr");
                return process;
            }
        }
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .stderr_lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {needle:?} in time"));
            let plain = strip_ansi(&line);
            if plain.contains(needle) {
                return plain;
            }
        }
    }

    /// Waits for the process to exit by itself; its JSON summary line.
    pub fn wait_exit(mut self, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "feed-sim did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.child.wait_with_output_ref();
        serde_json::from_str(out.trim()).expect("summary is JSON")
    }

    /// SIGTERM, then the JSON summary line from stdout.
    pub fn stop(mut self) -> serde_json::Value {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let out = self.child.wait_with_output_ref();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one stdout line, got {out:?}");
        serde_json::from_str(lines[0]).expect("summary is JSON")
    }
}

trait WaitOutput {
    fn wait_with_output_ref(&mut self) -> String;
}

impl WaitOutput for Child {
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let mut out = String::new();
        if let Some(mut s) = self.stdout.take() {
            s.read_to_string(&mut out).expect("read stdout");
        }
        let status = self.wait().expect("wait");
        assert!(status.success(), "feed-sim exited with {status}");
        out
    }
}

impl Drop for FeedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
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
