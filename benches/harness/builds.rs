//! The builds an invocation runs: this checkout's binaries (`current`),
//! and with `TICKSHARD_BENCH_COMPARE_BINS=DIR` also the `tickshard` and
//! `feed-sim` in DIR (`previous`, e.g. another worktree's
//! `target/release`). Each build's options are read from its `--help`
//! (see `cmdline`); optional options are passed only when both know them.

use std::path::{Path, PathBuf};

use super::cmdline::{Caps, Known};
use super::procs::Binaries;
use super::result::BuildName;

/// Environment variable naming the previous build's binary directory.
pub(crate) const COMPARE_ENV: &str = "TICKSHARD_BENCH_COMPARE_BINS";

/// One build, ready to run.
#[derive(Debug, Clone)]
pub(crate) struct Build {
    pub(crate) name: BuildName,
    pub(crate) bins: Binaries,
    pub(crate) caps: Caps,
}

/// A build that could not be prepared, with the reason.
#[derive(Debug, Clone)]
pub(crate) struct Unusable {
    pub(crate) name: BuildName,
    pub(crate) dir: PathBuf,
    pub(crate) reason: String,
}

/// A build with the options of its feed and processor.
type Probed = (BuildName, Binaries, Known, Known);

/// The builds in the order their runs interleave: previous, current.
pub(crate) fn load(profile_dir: &Path) -> Vec<Result<Build, Unusable>> {
    let mut found = Vec::new();
    if let Some(dir) = std::env::var_os(COMPARE_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        let bins = Binaries::in_dir(&dir);
        found.push((BuildName::Previous, dir, bins));
    }
    let bins = Binaries::find(profile_dir);
    found.push((BuildName::Current, profile_dir.to_path_buf(), bins));
    let probed: Vec<Result<Probed, Unusable>> = found
        .into_iter()
        .map(|(name, dir, bins)| {
            let unusable = |dir: PathBuf, reason: String| Unusable { name, dir, reason };
            let bins = bins.map_err(|e| unusable(dir, e))?;
            let feed =
                Known::probe(&bins.feed_sim, None).map_err(|e| unusable(bins.dir.clone(), e))?;
            let processor = Known::probe(&bins.tickshard, Some("processor"))
                .map_err(|e| unusable(bins.dir.clone(), e))?;
            Ok((name, bins, feed, processor))
        })
        .collect();
    let mut shared: Option<(Known, Known)> = None;
    for (_, _, f, p) in probed.iter().flatten() {
        shared = Some(match shared {
            None => (f.clone(), p.clone()),
            Some((sf, sp)) => (sf.intersect(f), sp.intersect(p)),
        });
    }
    let (shared_feed, shared_processor) = shared.unwrap_or_default();
    probed
        .into_iter()
        .map(|b| {
            b.map(|(name, bins, feed, processor)| Build {
                name,
                bins,
                caps: Caps {
                    feed,
                    processor,
                    shared_feed: shared_feed.clone(),
                    shared_processor: shared_processor.clone(),
                },
            })
        })
        .collect()
}
