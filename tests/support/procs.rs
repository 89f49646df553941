//! Real child processes for crash and scaling tests: spawn a binary with
//! its stderr captured in a temp file, signal it with the `kill` command
//! (SIGTERM, SIGKILL, SIGSTOP, SIGCONT), find the HTTP address it logs, and
//! fetch JSON from it. Dropping a [`Proc`] kills it (-9) and reaps it.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running child process.
pub struct Proc {
    child: Child,
    /// A name for messages (e.g. the instance id).
    pub name: String,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Spawns `binary args...` with `envs`, stderr and stdout to a temp file.
    pub fn spawn(name: &str, binary: &str, args: &[String], envs: &[(&str, &str)]) -> Proc {
        let dir = tempfile::Builder::new()
            .prefix("tickshard-proc-")
            .tempdir()
            .expect("temp dir");
        let log_path = dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let out = log.try_clone().expect("log file clone");
        let mut cmd = Command::new(binary);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(log);
        cmd.env("NO_COLOR", "1");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
            log_path,
            _dir: dir,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends `signal` (e.g. "TERM", "KILL", "STOP", "CONT") with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// SIGTERM.
    pub fn term(&self) {
        self.signal("TERM")
    }

    /// SIGKILL.
    pub fn kill9(&self) {
        self.signal("KILL")
    }

    /// SIGSTOP.
    pub fn stop(&self) {
        self.signal("STOP")
    }

    /// SIGCONT.
    pub fn cont(&self) {
        self.signal("CONT")
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The address from the `http listening addr=...` log line.
    pub async fn http_addr(&self, timeout: Duration) -> String {
        super::wait_for(
            timeout,
            &format!("{} logs its http address", self.name),
            || async {
                self.log().lines().find_map(|l| {
                    l.contains("http listening")
                        .then(|| l.split("addr=").nth(1))
                        .flatten()
                        .map(|a| a.split_whitespace().next().unwrap_or("").to_owned())
                })
            },
        )
        .await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `path` from `addr` and parses the JSON body; `None` on any failure,
/// a status other than 200, or after `timeout` (a stopped process never
/// answers).
pub async fn get_json(addr: &str, path: &str, timeout: Duration) -> Option<serde_json::Value> {
    let (status, body) = tokio::time::timeout(timeout, super::fleet::http_get(addr, path))
        .await
        .ok()
        .flatten()?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// GETs `path` from `addr` and returns the body of a 200 answer; `None`
/// otherwise or after `timeout`.
pub async fn get_text(addr: &str, path: &str, timeout: Duration) -> Option<String> {
    match tokio::time::timeout(timeout, super::fleet::http_get(addr, path)).await {
        Ok(Some((200, body))) => Some(body),
        _ => None,
    }
}
