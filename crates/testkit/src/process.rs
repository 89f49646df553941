//! Real child processes for tests and benches: spawn a binary with its
//! output in log files, signal it through `nix` (SIGTERM, SIGKILL, SIGSTOP,
//! SIGCONT), wait for it or for a log line with a deadline, show its log
//! when a test fails, and kill and reap it on drop so no child outlives
//! its test.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// A running child process, killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    /// A name for messages and log files (e.g. the instance id).
    pub name: String,
    /// Behind a lock so that `&self` methods can ask whether it is still
    /// running before signalling it.
    child: Mutex<Child>,
    log: PathBuf,
    out: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

/// How to start a [`Proc`]: where its logs go and whether its stdout is
/// kept apart from its stderr. Made by [`Proc::launch`].
#[derive(Debug)]
pub struct Launch {
    name: String,
    cmd: Command,
    dir: Option<PathBuf>,
    stdout_apart: bool,
}

impl Launch {
    /// Writes the logs into `dir` (`<name>.log`, and `<name>.out` with
    /// [`Launch::stdout_apart`]) instead of a temp dir removed on drop.
    pub fn log_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Sends stdout to its own file (a program's result line, say) instead
    /// of into the log with stderr.
    pub fn stdout_apart(mut self) -> Self {
        self.stdout_apart = true;
        self
    }

    /// Spawns it, stdin closed, `NO_COLOR=1`.
    pub fn spawn(self) -> std::io::Result<Proc> {
        let Launch {
            name,
            mut cmd,
            dir,
            stdout_apart,
        } = self;
        let (dir, temp) = match dir {
            Some(d) => (d, None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("tickshard-proc-")
                    .tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let log = dir.join(format!("{name}.log"));
        let err_file = std::fs::File::create(&log)?;
        let (out, out_file) = if stdout_apart {
            let path = dir.join(format!("{name}.out"));
            let f = std::fs::File::create(&path)?;
            (Some(path), f)
        } else {
            (None, err_file.try_clone()?)
        };
        let child = cmd
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("spawn {name}: {e}")))?;
        Ok(Proc {
            name,
            child: Mutex::new(child),
            log,
            out,
            _dir: temp,
        })
    }
}

impl Proc {
    /// Starts describing how to run `cmd` as `name`.
    pub fn launch(name: &str, cmd: Command) -> Launch {
        Launch {
            name: name.to_owned(),
            cmd,
            dir: None,
            stdout_apart: false,
        }
    }

    /// Spawns `binary args...` with `envs`, stdout and stderr in one log in
    /// a temp dir; fails the test if it cannot start.
    pub fn spawn(
        name: &str,
        binary: impl AsRef<OsStr>,
        args: &[String],
        envs: &[(&str, &str)],
    ) -> Proc {
        let mut cmd = Command::new(binary.as_ref());
        cmd.args(args).envs(envs.iter().copied());
        Self::launch(name, cmd)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        // A panic while holding it cannot leave the child inconsistent.
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True until the process has exited (and been reaped).
    pub fn is_running(&self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }

    /// Everything the process logged so far (its stdout too, unless kept
    /// apart).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of [`Proc::log`].
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// What it wrote to stdout when kept apart (empty otherwise).
    pub fn stdout(&self) -> String {
        self.out
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// For a failing test: prints the last 40 log lines to stderr and keeps
    /// the whole log at `$TMPDIR/<prefix>-<name>.log`.
    pub fn show_log(&self, prefix: &str) {
        let keep = std::env::temp_dir().join(format!("{prefix}-{}.log", self.name));
        let _ = std::fs::write(&keep, self.log());
        eprintln!("full log of {} kept at {}", self.name, keep.display());
        eprintln!(
            "---- {} (last lines) ----\n{}",
            self.name,
            self.log_tail(40)
        );
    }

    /// Sends `signal`; `ESRCH` once the process has exited (its pid may
    /// belong to another process by then).
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        if !self.is_running() {
            return Err(nix::errno::Errno::ESRCH);
        }
        let pid = i32::try_from(self.pid()).map_err(|_| nix::errno::Errno::ESRCH)?;
        nix::sys::signal::kill(Pid::from_raw(pid), signal)
    }

    /// Sends `signal`, failing the test if it cannot be delivered.
    fn must_signal(&self, signal: Signal) {
        if let Err(e) = self.signal(signal) {
            panic!("{signal} to {} ({}): {e}", self.name, self.pid());
        }
    }

    /// SIGTERM.
    pub fn term(&self) {
        self.must_signal(Signal::SIGTERM)
    }

    /// SIGKILL.
    pub fn kill9(&self) {
        self.must_signal(Signal::SIGKILL)
    }

    /// SIGSTOP.
    pub fn stop(&self) {
        self.must_signal(Signal::SIGSTOP)
    }

    /// SIGCONT.
    pub fn cont(&self) {
        self.must_signal(Signal::SIGCONT)
    }

    /// Waits for the process to exit, up to `timeout`; `None` if it is
    /// still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child().try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `Some(reason, with the end of its log)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        let state = self.child().try_wait();
        match state {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                self.log_tail(20)
            )),
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", self.name)),
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn shut_down(&mut self, grace: Duration) {
        if !self.is_running() {
            return;
        }
        if self.signal(Signal::SIGTERM).is_ok() && self.wait_exit(grace).is_some() {
            return;
        }
        let mut child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits for a log line containing `needle` and returns it; fails the
    /// test after `timeout`, naming what was awaited.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        crate::wait_for(timeout, &format!("{} logs {needle:?}", self.name), || {
            let line = self
                .log()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned);
            async move { line }
        })
        .await
    }

    /// The value of `key=VALUE` on the first log line containing `needle`,
    /// e.g. `logged_value("http listening", "addr")`.
    pub async fn logged_value(&self, needle: &str, key: &str, timeout: Duration) -> String {
        let line = self.wait_log(needle, timeout).await;
        line.split(&format!("{key}="))
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or_else(|| panic!("{}: no {key}= in {line:?}", self.name))
            .to_owned()
    }

    /// The address of its HTTP server, from the `http listening addr=...`
    /// line the processor and the dashboard log.
    pub async fn http_addr(&self, timeout: Duration) -> String {
        self.logged_value("http listening", "addr", timeout).await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let mut child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }
}
