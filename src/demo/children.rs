//! Child processes of the demo: spawned with their stderr in a log file,
//! signalled by name (SIGTERM to stop gracefully, SIGKILL to crash), and
//! killed when dropped so no orphan outlives the demo.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// A running child process.
#[derive(Debug)]
pub struct ManagedChild {
    /// Display name (`redis`, `feed-sim`, `p1`, ...).
    pub name: String,
    /// Its log file (stderr and stdout).
    pub log: PathBuf,
    child: Child,
}

impl ManagedChild {
    /// Spawns `program args`, logging into `dir/{name}.log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> std::io::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = std::process::Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        // If the demo itself is killed (-9), its children follow instead
        // of running on as orphans.
        crate::redis_server::die_with_parent(&mut cmd);
        let child = Command::from(cmd).kill_on_drop(true).spawn()?;
        Ok(Self {
            name: name.to_owned(),
            log,
            child,
        })
    }

    /// The OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// True until the process has exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: Signal) -> std::io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| std::io::Error::other(format!("{} has exited", self.name)))?;
        let pid = i32::try_from(pid).map_err(std::io::Error::other)?;
        kill(Pid::from_raw(pid), signal).map_err(std::io::Error::from)
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if self.signal(Signal::SIGTERM).is_ok()
            && tokio::time::timeout(grace, self.child.wait()).await.is_ok()
        {
            return;
        }
        let _ = self.child.kill().await;
    }

    /// SIGKILL and wait.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
