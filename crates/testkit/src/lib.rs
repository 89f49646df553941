//! Test support shared by the integration tests of tickshard and
//! feed-sim (and, where it fits, the benches), in the manner of
//! redis-rs's `redis-test`: things every test binary needs, written once.
//!
//! - [`wait_until`] / [`wait_for`]: poll a condition with a deadline
//!   instead of sleeping, and fail naming what was awaited.
//! - [`exposition`]: the one scraper of `/metrics` (a strict parser of the
//!   Prometheus text format).
//! - [`cmdline`]: the command lines of `tickshard processor` and
//!   `feed-sim`.
//! - [`process`]: the one wrapper of a real child process (signals through
//!   `nix`, waits with deadlines, logs shown on failure, killed on drop).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::time::Duration;
//! let mut n = 0;
//! let got = tickshard_testkit::wait_for(Duration::from_secs(1), "the third poll", || {
//!     n += 1;
//!     let seen = n;
//!     async move { (seen >= 3).then_some(seen) }
//! })
//! .await;
//! assert_eq!(got, 3);
//! # });
//! ```

pub mod cmdline;
pub mod exposition;
pub mod process;
mod wait;

pub use wait::{wait_for, wait_until, POLL_EVERY};
