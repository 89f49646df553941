//! Locating and running the project's binaries for the cluster bench:
//! `feed-sim` and `tickshard processor`, from the same build profile as the
//! bench executable (`target/<profile>/`) or another directory. Children
//! are killed on drop; their stderr goes to a log file in the run's
//! directory. Their command lines are built in `cmdline`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The two binaries a cluster run needs.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    /// The directory both came from.
    pub(crate) dir: PathBuf,
    pub(crate) tickshard: PathBuf,
    pub(crate) feed_sim: PathBuf,
}

/// Environment variable naming another directory holding both binaries
/// (e.g. `benches/fixtures/fake`, stand-ins that exercise the harness).
pub(crate) const BIN_DIR_ENV: &str = "TICKSHARD_BENCH_BIN_DIR";

impl Binaries {
    /// Finds both in `$TICKSHARD_BENCH_BIN_DIR` or else `profile_dir`, or
    /// says how to build them.
    pub(crate) fn find(profile_dir: &Path) -> Result<Self, String> {
        let dir = std::env::var_os(BIN_DIR_ENV).map(PathBuf::from);
        Self::in_dir(dir.as_deref().unwrap_or(profile_dir))
    }

    /// Finds both in `dir`, or says how to build them.
    pub(crate) fn in_dir(dir: &Path) -> Result<Self, String> {
        let tickshard = dir.join("tickshard");
        let feed_sim = dir.join("feed-sim");
        let missing: Vec<String> = [&tickshard, &feed_sim]
            .iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if missing.is_empty() {
            Ok(Self {
                dir: dir.to_path_buf(),
                tickshard,
                feed_sim,
            })
        } else {
            Err(format!(
                "missing {}; build them first with `cargo build --release --workspace --bins` \
                 (the bench profile's binaries live in target/release)",
                missing.join(" and ")
            ))
        }
    }
}

/// A child process with a name, killed (SIGKILL) on drop.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) name: String,
    child: Child,
    log: PathBuf,
    out: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout piped to `<dir>/<name>.out` and stderr to
    /// `<dir>/<name>.log`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Result<Self, String> {
        let log = dir.join(format!("{name}.log"));
        let out = dir.join(format!("{name}.out"));
        let err_file = std::fs::File::create(&log).map_err(|e| format!("{name} log: {e}"))?;
        let out_file = std::fs::File::create(&out).map_err(|e| format!("{name} out: {e}"))?;
        // Errors, not backtraces, in the logs we quote.
        let child = cmd
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_file))
            .stderr(Stdio::from(err_file))
            .spawn()
            .map_err(|e| format!("spawn {name}: {e}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
            out,
        })
    }

    /// Where its stdout goes.
    pub(crate) fn stdout_path(&self) -> &Path {
        &self.out
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(reason)` if the process has exited.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                self.log_tail(20)
            )),
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", self.name)),
        }
    }

    /// The last `n` lines of its stderr.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub(crate) fn stop(&mut self, grace: Duration) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback address `127.0.0.1:PORT` (below the ephemeral range:
/// see [`tickshard::redis_server::free_port`]).
pub(crate) fn free_addr() -> Result<String, String> {
    tickshard::redis_server::free_port()
        .map(|p| format!("127.0.0.1:{p}"))
        .map_err(|e| format!("free port: {e}"))
}
