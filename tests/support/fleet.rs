//! Real processes for end-to-end tests: a `feed-sim`, `tickshard
//! processor`s, and the check that Redis holds exactly the feed's ground
//! truth.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Deserialize;

use super::wait_for;

/// A child process whose output goes to a log file; killed on drop.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        Self {
            name: name.to_owned(),
            log,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("running")
    }

    pub fn signal(&self, signal: Signal) {
        if let Some(c) = &self.child {
            let _ = kill(Pid::from_raw(c.id() as i32), signal);
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit by itself; returns its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let name = self.name.clone();
        let child = self.child.as_mut().expect("running");
        let status = wait_for(timeout, &format!("{name} to exit"), || {
            let s = child.try_wait().ok().flatten();
            async move { s }
        })
        .await;
        self.child = None;
        status.code()
    }

    /// SIGTERM and wait for a clean exit.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        self.signal(Signal::SIGTERM);
        self.wait_exit(timeout).await
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `feed-sim` binary built beside the test's `tickshard`.
pub fn feed_sim_bin() -> PathBuf {
    let tickshard = PathBuf::from(env!("CARGO_BIN_EXE_tickshard"));
    let bin = tickshard.with_file_name("feed-sim");
    assert!(
        bin.is_file(),
        "{} not built: run `cargo build --workspace` (scripts/test does)",
        bin.display()
    );
    bin
}

pub fn tickshard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tickshard"))
}

/// Arguments of one processor.
pub fn processor_args(redis: &str, feed: Option<&str>, id: &str, ns: &str, lease_ms: u64) -> Vec<String> {
    let mut args: Vec<String> = [
        "processor", "--redis", redis, "--id", id, "--cluster", ns, "--lease-ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(lease_ms.to_string());
    args.extend(["--http".to_owned(), "127.0.0.1:0".to_owned()]);
    if let Some(feed) = feed {
        args.extend(["--feed".to_owned(), feed.to_owned()]);
    }
    args
}

/// One symbol of the feed's ground truth.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TruthSymbol {
    pub count: u64,
    pub volume: u64,
    pub last_seq: u64,
    pub last_px: String,
    pub vwap_px: String,
}

#[derive(Debug, Deserialize)]
pub struct GroundTruth {
    pub ticks: u64,
    pub symbols: BTreeMap<String, TruthSymbol>,
}

/// Waits for `--record` to be written, then reads it.
pub async fn read_truth(path: &Path, timeout: Duration) -> GroundTruth {
    let text = wait_for(timeout, "the feed's ground truth file", || {
        let t = std::fs::read_to_string(path).ok();
        async move { t }
    })
    .await;
    serde_json::from_str(&text).expect("ground truth parses")
}

/// What Redis holds for every symbol of `truth`, in the same shape.
pub async fn stored(
    conn: &mut redis::aio::MultiplexedConnection,
    ns: &str,
    truth: &GroundTruth,
) -> BTreeMap<String, Option<TruthSymbol>> {
    let mut pipe = redis::pipe();
    for sym in truth.symbols.keys() {
        pipe.hgetall(format!("{ns}:sym:{sym}"));
    }
    let maps: Vec<HashMap<String, String>> = pipe.query_async(conn).await.unwrap_or_default();
    truth
        .symbols
        .keys()
        .zip(maps)
        .map(|(sym, m)| {
            let parse = |k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok());
            let s = (|| {
                Some(TruthSymbol {
                    count: parse("count")?,
                    volume: parse("volume")?,
                    last_seq: parse("last_seq")?,
                    last_px: m.get("last_px")?.clone(),
                    vwap_px: m.get("vwap_px")?.clone(),
                })
            })();
            (sym.clone(), s)
        })
        .collect()
}

/// The symbols whose stored state differs from the truth (at most 5 shown).
pub fn mismatches(truth: &GroundTruth, stored: &BTreeMap<String, Option<TruthSymbol>>) -> Vec<String> {
    truth
        .symbols
        .iter()
        .filter(|(sym, want)| stored.get(*sym).and_then(|s| s.as_ref()) != Some(want))
        .map(|(sym, want)| format!("{sym}: want {want:?}, stored {:?}", stored.get(sym)))
        .collect()
}

/// Waits until every symbol's stored state equals the ground truth.
pub async fn assert_exact(
    conn: &mut redis::aio::MultiplexedConnection,
    ns: &str,
    truth: &GroundTruth,
    timeout: Duration,
    procs: &[&Proc],
) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let now = stored(conn, ns, truth).await;
        let bad = mismatches(truth, &now);
        if bad.is_empty() {
            return;
        }
        if std::time::Instant::now() >= deadline {
            for p in procs {
                let log = p.log_text();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- {} (last lines) ----", p.name);
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
            panic!(
                "{} of {} symbols differ from the ground truth after {timeout:?}; first: {:#?}",
                bad.len(),
                truth.symbols.len(),
                &bad[..bad.len().min(5)]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
