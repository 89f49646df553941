//! Locating and running the project's binaries for the cluster bench:
//! `feed-sim` and `tickshard processor`, from the same build profile as the
//! bench executable (`target/<profile>/`) or another directory, run as
//! the test kit's processes (killed on drop) with their stderr and stdout
//! in files of the run's directory. Their command lines are built in `cmdline`.

use std::path::{Path, PathBuf};
use std::process::Command;

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

pub(crate) use tickshard_testkit::process::Proc;

/// Spawns `cmd` as `name` with stdout in `<dir>/<name>.out` and stderr in
/// `<dir>/<name>.log`; killed (SIGKILL) when dropped.
pub(crate) fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Result<Proc, String> {
    // Errors, not backtraces, in the logs we quote.
    cmd.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    Proc::launch(name, cmd)
        .log_dir(dir)
        .stdout_apart()
        .spawn()
        .map_err(|e| e.to_string())
}

/// A free loopback address `127.0.0.1:PORT` (below the ephemeral range:
/// see [`tickshard::redis_server::free_port`]).
pub(crate) fn free_addr() -> Result<String, String> {
    tickshard::redis_server::free_port()
        .map(|p| format!("127.0.0.1:{p}"))
        .map_err(|e| format!("free port: {e}"))
}
