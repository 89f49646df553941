//! Pieces of the cluster load benchmark, each testable on its own:
//!
//! - [`scenario`] and [`groups`]: what a run is, and the runs of each
//!   group (matrix, sweep, overload, symbols, lag);
//! - [`builds`], [`cmdline`], [`procs`]: the builds to run (this checkout,
//!   and a previous one to compare with), their command lines (only
//!   options a build knows), and the child processes;
//! - [`run`]: one measured run (start, drive, wait for exact, report) and
//!   [`result`], the line it writes;
//! - [`cpu`]: CPU time, run-queue wait and peak RSS of processes from
//!   `/proc`; [`slowlog`]: Redis commands slower than 1 ms;
//! - [`truth`]: the self-check of the exact comparison with the feed's
//!   ground truth (`tickshard::truth`);
//! - [`stats`]: collection of the processors' `{ns}:stats` messages and
//!   `{ns}:events`, merging of their interval histograms;
//! - [`window`]: the feeding window, per-second applied rates, CPU busy
//!   share; [`leases`]: lease moves while feeding; [`feed_summary`]: the
//!   feed's own figures; [`lag`] (with [`http`]): the stored-state lag;
//! - [`print`]: the lines printed per run.
#![allow(dead_code)]

pub(crate) mod builds;
pub(crate) mod cmdline;
pub(crate) mod cpu;
pub(crate) mod feed_summary;
pub(crate) mod groups;
pub(crate) mod http;
pub(crate) mod lag;
pub(crate) mod leases;
pub(crate) mod print;
pub(crate) mod procs;
pub(crate) mod result;
pub(crate) mod run;
pub(crate) mod scenario;
pub(crate) mod slowlog;
pub(crate) mod stats;
pub(crate) mod truth;
pub(crate) mod window;

/// Runs every module's self-check of its pure parts: (name, outcome).
pub(crate) fn self_checks() -> Vec<(&'static str, Result<(), String>)> {
    vec![
        ("cpu_sampling", cpu::self_check()),
        ("command_lines", cmdline::self_check()),
        ("per_second_rates", window::self_check()),
        ("lease_moves", leases::self_check()),
        ("feed_summary", feed_summary::self_check()),
        ("lag_quantiles", lag::self_check()),
        ("http_parsing", http::self_check()),
        ("slow_log", slowlog::self_check()),
    ]
}
