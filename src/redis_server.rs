//! A private `redis-server` child process on a free loopback port.
//!
//! Used by `tickshard demo`, by the integration tests and by the benchmarks,
//! so all three run against a real server they own. The binary is
//! `redis-server` from `PATH`, or the path in `TICKSHARD_REDIS_SERVER`.
//! The server writes its log (and its AOF, when asked) into a private
//! temporary directory; dropping the handle kills the process and removes
//! the directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the `redis-server` binary to run.
pub const REDIS_SERVER_ENV: &str = "TICKSHARD_REDIS_SERVER";

/// Why a private Redis server could not be started or controlled.
#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    /// No `redis-server` binary could be found.
    #[error(
        "redis-server not found (looked for {binary:?}); install it with \
         `sudo apt-get install redis-server` (or run scripts/setup), or point \
         {REDIS_SERVER_ENV} at the binary"
    )]
    NotFound {
        /// The binary that was looked for.
        binary: String,
    },
    /// The process could not be spawned or signalled.
    #[error("redis-server process error: {0}")]
    Io(#[from] std::io::Error),
    /// The server did not answer PING in time.
    #[error("redis-server on port {port} did not become ready within {waited:?}; its log:\n{log}")]
    NotReady {
        /// Port it was started on.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// The server's log file.
        log: String,
    },
}

/// How to start the server.
#[derive(Debug, Clone, Default)]
pub struct RedisServerOptions {
    /// Enable the append-only file with `appendfsync always`, so a restart
    /// keeps every acknowledged write.
    pub aof: bool,
    /// Extra `--flag value` arguments passed through.
    pub extra_args: Vec<String>,
    /// Have the kernel stop the server (SIGTERM) when the thread that
    /// started it exits, so it cannot outlive a crashed parent (Linux).
    /// Only for a parent that starts it from a long-lived thread, such as
    /// the demo's main thread.
    pub die_with_parent: bool,
}

/// A running private `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    options: RedisServerOptions,
    binary: PathBuf,
}

impl RedisServer {
    /// Starts a server with default options (no persistence).
    pub fn start() -> Result<Self, RedisServerError> {
        Self::start_with(RedisServerOptions::default())
    }

    /// Starts a server with `options` on a free port.
    pub fn start_with(options: RedisServerOptions) -> Result<Self, RedisServerError> {
        let binary = find_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("tickshard-redis-")
            .tempdir()?;
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            options,
            binary,
        };
        // A free port can be taken by someone else between probe and bind;
        // try a few.
        let mut attempts = 0;
        loop {
            server.port = free_port()?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) if attempts >= 4 => return Err(e),
                Err(_) => {
                    server.kill();
                    attempts += 1;
                }
            }
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory holding the log and any persistence files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Kills the server (SIGKILL) and waits for it. Data not persisted is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts the server again on the same port and directory; with
    /// AOF enabled the data survives.
    pub fn restart(&mut self) -> Result<(), RedisServerError> {
        self.kill();
        self.spawn_and_wait()
    }

    /// Pauses the server with SIGSTOP: connections stay open but nothing is
    /// answered.
    pub fn pause(&self) -> Result<(), RedisServerError> {
        self.signal("STOP")
    }

    /// Resumes a paused server with SIGCONT.
    pub fn resume(&self) -> Result<(), RedisServerError> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> Result<(), RedisServerError> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(RedisServerError::Io(std::io::Error::other(format!(
                "kill -{name} {pid} failed"
            ))))
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), RedisServerError> {
        let dir = self.dir.path();
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"));
        if self.options.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        if self.options.die_with_parent {
            die_with_parent(&mut cmd);
        }
        cmd.args(&self.options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn()?);
        let waited = Duration::from_secs(10);
        let deadline = Instant::now() + waited;
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(RedisServerError::NotReady {
            port: self.port,
            waited,
            log: self.log(),
        })
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        matches!(s.read_exact(&mut buf), Ok(()) if &buf == b"+PONG\r\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.pid().is_some() {
            // A paused server ignores SIGKILL's wait until continued.
            let _ = self.resume();
        }
        self.kill();
    }
}

fn find_binary() -> Result<PathBuf, RedisServerError> {
    find_program(REDIS_SERVER_ENV, "redis-server")
        .map_err(|binary| RedisServerError::NotFound { binary })
}

/// The program named by environment variable `env`, else `default` on
/// `PATH`; the name looked for when there is none.
pub fn find_program(env: &str, default: &str) -> Result<PathBuf, String> {
    let name = std::env::var(env).unwrap_or_else(|_| default.to_owned());
    let candidate = PathBuf::from(&name);
    if candidate.components().count() > 1 {
        return if candidate.is_file() {
            Ok(candidate)
        } else {
            Err(name)
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(&name))
        .find(|p| p.is_file())
        .ok_or(name)
}

/// A loopback port that was free a moment ago, below the kernel's
/// ephemeral range: a server is often started after other processes have
/// begun opening connections, and their outgoing sockets take ephemeral
/// ports, so a port handed out from that range could be taken in the
/// meantime. Falls back to a port the kernel picks.
pub fn free_port() -> std::io::Result<u16> {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    const LOWEST: u16 = 10_000;
    if first_ephemeral > LOWEST + 1_000 {
        for _ in 0..200 {
            let port = rand::random_range(LOWEST..first_ephemeral);
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Asks the kernel to send the child SIGTERM when the spawning thread
/// exits (Linux `PR_SET_PDEATHSIG`); a no-op elsewhere.
pub fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and only
        // makes the prctl system call, which is async-signal-safe; it
        // touches no memory shared with the parent.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}
