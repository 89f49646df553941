//! A network namespace joined to the host by a veth pair: a process run in
//! it ([`Netns::command`]) is on a host of its own, reaching the test's
//! servers only over that link (the host end's address), and reachable at
//! [`Netns::ip`]. [`Netns::link_down`] cuts the link as a failed cable or
//! switch port would: connections stay open, nothing gets through.
//!
//! Needs root and `ip` (iproute2); without them the test fails with a
//! message that says so. Dropping it deletes the pair and the namespace.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Namespaces made by this test process so far (names and subnets).
static MADE: AtomicU32 = AtomicU32::new(0);

/// A namespace with one veth link to the host.
pub struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    ip: String,
}

/// Runs `ip args`, or fails the test with what it printed.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("this test needs `ip` (iproute2) and root: ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "this test needs root for network namespaces: `ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A new namespace and link; the host end gets `10.X.Y.1/30`, the
    /// namespace end `10.X.Y.2/30` (X from this process id, Y a counter).
    pub fn create() -> Netns {
        let pid = std::process::id();
        let k = MADE.fetch_add(1, Ordering::Relaxed);
        let name = format!("tsh{pid}n{k}");
        let (host_if, ns_if) = (format!("tsh{pid}h{k}"), format!("tsh{pid}p{k}"));
        let net = format!("10.{}.{}", 100 + pid % 100, 4 * (k % 64));
        let (host_ip, ns_ip) = (format!("{net}.1"), format!("{net}.2"));
        ip(&["netns", "add", &name]);
        let netns = Netns {
            name,
            host_if,
            host_ip,
            ip: ns_ip,
        };
        let n = netns.name.as_str();
        ip(&[
            "link",
            "add",
            &netns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", n]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", netns.host_ip),
            "dev",
            &netns.host_if,
        ]);
        ip(&["link", "set", &netns.host_if, "up"]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{}/30", netns.ip),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", n, "link", "set", &ns_if, "up"]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        netns
    }

    /// The host end's address: where the namespace reaches the test's
    /// servers (which must listen on it, e.g. on 0.0.0.0).
    pub fn host_ip(&self) -> &str {
        &self.host_ip
    }

    /// The namespace's own address.
    pub fn ip(&self) -> &str {
        &self.ip
    }

    /// `ip netns exec NAME program args...`: `program` run in the namespace.
    pub fn command(&self, program: &std::path::Path, args: &[String]) -> (String, Vec<String>) {
        let mut all = vec![
            "netns".to_owned(),
            "exec".to_owned(),
            self.name.clone(),
            program.display().to_string(),
        ];
        all.extend(args.iter().cloned());
        ("ip".to_owned(), all)
    }

    /// Cuts the link (the host end goes down).
    pub fn link_down(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    /// Restores the link.
    pub fn link_up(&self) {
        ip(&["link", "set", &self.host_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; processes still inside keep
        // the namespace alive until they exit.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
