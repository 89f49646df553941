//! The real `tickshard demo` process for end-to-end tests: start it on a
//! free port with the S&P 500 universe, read the dashboard's `/ws` with a
//! real WebSocket client, press the page's buttons over HTTP, and find the
//! processes it started by scanning `/proc`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use super::fleet::{feed_sim_bin, tickshard_bin};

/// The demo's WebSocket stream.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A running `tickshard demo`; stopped with Ctrl-C (SIGINT) on drop.
pub struct Demo {
    pub child: Child,
    pub pid: u32,
    /// The dashboard's address, from the banner.
    pub addr: SocketAddr,
    /// The demo's temporary directory, from the banner.
    pub logs: PathBuf,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Starts `tickshard demo --processors N --rate R` (the built-in S&P
    /// 500 universe) on a free port and waits for its banner.
    pub async fn start(processors: u32, rate: u64) -> Demo {
        Self::start_with(processors, rate, &[]).await
    }

    /// As [`Demo::start`], with `extra` demo options (`--redis-cluster`).
    pub async fn start_with(processors: u32, rate: u64, extra: &[&str]) -> Demo {
        // The demo runs feed-sim from beside the tickshard binary.
        feed_sim_bin();
        let port = tickshard::redis_server::free_port().expect("free port");
        let dir = tempfile::Builder::new()
            .prefix("tickshard-demo-test-")
            .tempdir()
            .expect("temp dir");
        let stderr_path = dir.path().join("demo.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(tickshard_bin())
            .args([
                "demo",
                "--processors",
                &processors.to_string(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--rate",
                &rate.to_string(),
            ])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tickshard demo");
        let pid = child.id().expect("demo pid");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let banner = async {
            let (mut addr, mut logs) = (None, None);
            while let Ok(Some(line)) = lines.next_line().await {
                let line = line.trim();
                if let Some(url) = line.strip_prefix("dashboard:") {
                    let url = url
                        .trim()
                        .trim_start_matches("http://")
                        .trim_end_matches('/');
                    addr = url.parse::<SocketAddr>().ok();
                }
                if let Some(rest) = line.strip_prefix("logs:") {
                    logs = rest.split_whitespace().next().map(PathBuf::from);
                }
                if let (Some(a), Some(l)) = (addr, &logs) {
                    return Some((a, l.clone()));
                }
            }
            None
        };
        let found = tokio::time::timeout(Duration::from_secs(30), banner).await;
        let Ok(Some((addr, logs))) = found else {
            for c in children_of(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.start_kill();
            panic!(
                "the demo printed no dashboard/logs banner\nstderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        };
        // Keep draining stdout so the demo never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Demo {
            child,
            pid,
            addr,
            logs,
            stderr_path,
            _dir: dir,
        }
    }

    /// What the demo logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// A WebSocket client on the dashboard's `/ws`.
    pub async fn ws(&self) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", self.addr))
            .await
            .unwrap_or_else(|e| panic!("ws connect: {e}\nstderr:\n{}", self.stderr()));
        ws
    }

    /// Presses a demo button: `POST /api/demo/{action}[?instance=id]`.
    pub async fn press(&self, action: &str, instance: Option<&str>) -> (u16, Value) {
        let path = match instance {
            Some(id) => format!("/api/demo/{action}?instance={id}"),
            None => format!("/api/demo/{action}"),
        };
        let (status, body) = http(self.addr, "POST", &path).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Reads frames until one satisfies `pred`; panics after `timeout`
    /// with the last frame and the demo's log.
    pub async fn frame_where(
        &self,
        ws: &mut Ws,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        frame_where(ws, timeout, what, pred, |last| {
            format!(
                "last frame: {}\ndemo log:\n{}",
                summary(last),
                self.stderr()
            )
        })
        .await
    }
}

/// Reads JSON text frames from `ws` until one satisfies `pred`; panics
/// after `timeout` naming `what`, with `explain(last frame)`.
pub async fn frame_where<S>(
    ws: &mut S,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
    explain: impl FnOnce(&Value) -> String,
) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = Value::Null;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!(
                "timed out after {timeout:?} waiting for: {what}\n{}",
                explain(&last)
            ),
            Ok(None) => panic!("stream ended waiting for: {what}"),
            Ok(Some(Err(e))) => panic!("ws error waiting for {what}: {e}"),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).expect("frames are JSON");
                if pred(&v) {
                    return v;
                }
                last = v;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// A WebSocket client on `/ws` that never reads, with a receive buffer
/// so small that the server's sends block after a frame or two.
pub async fn stuck_client(
    addr: SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(addr).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
        .await
        .expect("ws handshake");
    ws
}

/// Bytes queued in the kernel for sending on the TCP connection from
/// `local` to `remote` (IPv4 loopback), from `/proc/net/tcp`.
pub fn tcp_send_queue(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let hex = |a: SocketAddr| format!(":{:04X}", a.port());
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (l, r, queues) = (f.get(1)?, f.get(2)?, f.get(4)?);
        if !(l.ends_with(&hex(local)) && r.ends_with(&hex(remote))) {
            return None;
        }
        u64::from_str_radix(queues.split(':').next()?, 16).ok()
    })
}

impl Drop for Demo {
    /// Ctrl-C, so the demo stops its children itself; if it has not exited
    /// within 20 s, SIGKILL it and everything it started.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let children = children_of(self.pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for c in children.iter().filter(|c| still_running(c)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.start_kill();
    }
}

/// The part of a frame worth printing when a wait fails.
pub fn summary(snap: &Value) -> String {
    serde_json::json!({
        "instances": snap["instances"],
        "partitions": snap["partitions"],
        "ticks_per_s": snap["ticks_per_s"],
        "latency_us": snap["latency_us"],
    })
    .to_string()
}

/// The ids of the instances the frame shows alive.
pub fn alive_ids(snap: &Value) -> Vec<String> {
    snap["instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["alive"] == true)
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// True when all `p` partitions are owned, each by an instance in `owners`.
pub fn all_owned_by(snap: &Value, p: usize, owners: &[String]) -> bool {
    snap["partitions"].as_array().is_some_and(|parts| {
        parts.len() == p
            && parts
                .iter()
                .all(|o| o.as_str().is_some_and(|o| owners.iter().any(|x| x == o)))
    })
}

/// True when the frame shows `id` gone: absent, or not alive.
pub fn is_gone(snap: &Value, id: &str) -> bool {
    !snap["instances"]
        .as_array()
        .is_some_and(|a| a.iter().any(|i| i["id"] == id && i["alive"] == true))
}

/// A minimal HTTP/1.1 request; the status and body.
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        String::from_utf8_lossy(&buf).to_string()
    };
    let text = tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .expect("http response in time");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A process as seen in `/proc`: pid, its start time (so a reused pid is
/// not mistaken for it) and its command name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: u32,
    pub start: u64,
    pub comm: String,
}

fn stat_of(pid: u32) -> Option<(u32, u64, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ... starttime(22nd)": comm may hold spaces.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // rest[0] = state (field 3), so field n is rest[n - 3].
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((ppid, start, comm))
}

/// The live children of `parent`, found by scanning `/proc`.
pub fn children_of(parent: u32) -> Vec<ProcEntry> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (ppid, start, comm) = stat_of(pid)?;
            (ppid == parent).then_some(ProcEntry { pid, start, comm })
        })
        .collect()
}

/// True while that very process (same pid and start time) still exists
/// and is not a zombie.
pub fn still_running(p: &ProcEntry) -> bool {
    let Some((_, start, _)) = stat_of(p.pid) else {
        return false;
    };
    let zombie = std::fs::read_to_string(format!("/proc/{}/stat", p.pid))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    start == p.start && !zombie
}
