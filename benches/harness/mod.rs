//! Pieces of the cluster load benchmark, each testable on its own:
//!
//! - [`cpu`]: CPU time and peak RSS of processes from `/proc`;
//! - [`truth`]: the feed's `--record` ground truth and the exact comparison
//!   with the stored `{ns}:sym:*` hashes;
//! - [`stats`]: collection of the processors' `{ns}:stats` messages and
//!   merging of their interval histograms;
//! - [`procs`]: locating and running `feed-sim` and `tickshard processor`;
//! - [`scenario`]: one measured run (start, drive, wait for exact, report).
#![allow(dead_code)]

pub(crate) mod cpu;
pub(crate) mod procs;
pub(crate) mod scenario;
pub(crate) mod stats;
pub(crate) mod truth;
