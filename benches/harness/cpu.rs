//! CPU seconds (user + system), time spent waiting for a core, and peak
//! RSS of processes, read from `/proc/PID/stat`, `/proc/PID/task/*/schedstat`
//! and `/proc/PID/status`. Sampled at the start and end of a run; the
//! difference summed over every process (Redis, feed, processors) divided
//! by the ticks gives CPU time per tick, and the wait for a core shows how
//! much the processes queued behind each other on the shared cores.

use std::collections::BTreeMap;

/// One process's accumulated CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CpuTicks {
    /// `utime` in clock ticks.
    pub(crate) utime: u64,
    /// `stime` in clock ticks.
    pub(crate) stime: u64,
    /// Nanoseconds its threads spent runnable but waiting for a core
    /// (second field of each thread's `schedstat`; 0 where the kernel
    /// does not keep it).
    pub(crate) wait_ns: u64,
}

impl CpuTicks {
    pub(crate) fn total(self) -> u64 {
        self.utime + self.stime
    }
}

/// Parses the `utime` and `stime` fields (14 and 15) of a `/proc/PID/stat`
/// line. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted after its last `)`.
pub(crate) fn parse_stat(line: &str) -> Option<CpuTicks> {
    let rest = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    Some(CpuTicks {
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
        wait_ns: 0,
    })
}

/// The run-queue wait of a `schedstat` line (`cpu_ns wait_ns slices`).
pub(crate) fn parse_schedstat_wait(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run-queue wait summed over the threads alive now. Threads that ended
/// take their share with them; the processes measured keep their threads.
fn wait_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|l| parse_schedstat_wait(&l))
        .sum()
}

/// Reads `/proc/PID/stat` and the threads' `schedstat`; `None` once the
/// process is gone.
pub(crate) fn read(pid: u32) -> Option<CpuTicks> {
    let mut t = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    t.wait_ns = wait_ns(pid);
    Some(t)
}

/// Peak resident set size (`VmHWM`) in bytes.
pub(crate) fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if unknown).
pub(crate) fn clock_ticks_per_s() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|v: &u64| *v > 0)
        .unwrap_or(100)
}

/// CPU samples of a named set of processes.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuSample {
    /// Name → accumulated ticks.
    pub(crate) by_process: BTreeMap<String, CpuTicks>,
}

impl CpuSample {
    /// Samples every `(name, pid)`; processes already gone are left out.
    pub(crate) fn take(procs: &[(String, u32)]) -> Self {
        Self {
            by_process: procs
                .iter()
                .filter_map(|(name, pid)| read(*pid).map(|t| (name.clone(), t)))
                .collect(),
        }
    }

    /// CPU seconds spent by each process between `self` and `later`.
    pub(crate) fn seconds_until(&self, later: &CpuSample, hz: u64) -> BTreeMap<String, f64> {
        later
            .by_process
            .iter()
            .map(|(name, end)| {
                let start = self.by_process.get(name).copied().unwrap_or_default();
                let ticks = end.total().saturating_sub(start.total());
                (name.clone(), ticks as f64 / hz as f64)
            })
            .collect()
    }

    /// Seconds each process spent waiting for a core between `self` and
    /// `later`.
    pub(crate) fn wait_seconds_until(&self, later: &CpuSample) -> BTreeMap<String, f64> {
        later
            .by_process
            .iter()
            .map(|(name, end)| {
                let start = self.by_process.get(name).map_or(0, |t| t.wait_ns);
                (name.clone(), end.wait_ns.saturating_sub(start) as f64 / 1e9)
            })
            .collect()
    }
}

/// Self-check: parses a tricky stat line and samples this process.
pub(crate) fn self_check() -> Result<(), String> {
    let line = "4242 (tick (shard) x) S 1 2 3 4 5 6 7 8 9 10 1234 567 0 0 20 0 4 0 99 0 0";
    let parsed = parse_stat(line).ok_or("stat line did not parse")?;
    if parsed
        != (CpuTicks {
            utime: 1234,
            stime: 567,
            wait_ns: 0,
        })
    {
        return Err(format!("stat parsed wrongly: {parsed:?}"));
    }
    if parse_schedstat_wait("1234567 89012 34\n") != Some(89012) {
        return Err("schedstat parsed wrongly".to_string());
    }
    let me = std::process::id();
    let before = read(me).ok_or("cannot read own /proc stat")?;
    // Burn a little CPU so the counters must move.
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed() < std::time::Duration::from_millis(200) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    let after = read(me).ok_or("cannot read own /proc stat")?;
    if after.total() <= before.total() {
        return Err(format!("CPU time did not advance: {before:?} → {after:?}"));
    }
    Ok(())
}
