//! The real `tickshard dashboard` process: it logs the bound address (so
//! `--listen 127.0.0.1:0` works), serves the page and the stream, stops
//! cleanly on SIGTERM, and refuses to start when Redis is unreachable.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_on_port_zero_and_stops_on_sigterm() {
    let redis = support::redis();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickshard"))
        .args([
            "dashboard",
            "--redis",
            &redis.url(),
            "--listen",
            "127.0.0.1:0",
            "--cluster",
            "cli",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let line = strip_ansi(&line);
            if line.contains("dashboard listening") {
                let addr = line
                    .split("addr=")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap();
                return addr.to_string();
            }
        }
        panic!("the dashboard exited without logging its address");
    })
    .await
    .expect("address logged in time");
    // Keep draining the log so the child never blocks on a full pipe.
    let drain = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(strip_ansi(&line));
        }
        all
    });

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "snapshot" {
                    return v;
                }
            }
        }
    })
    .await
    .expect("a snapshot in time");
    assert_eq!(frame["cluster"], "cli");

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits in time")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let log = drain.await.unwrap();
    assert!(
        log.iter().any(|l| l.contains("dashboard stopped")),
        "{log:?}"
    );
}

#[tokio::test]
async fn refuses_to_start_without_redis() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_tickshard"))
        .args([
            "dashboard",
            "--redis",
            &format!("redis://127.0.0.1:{port}/"),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_BACKTRACE", "0")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), out)
        .await
        .expect("fails fast")
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redis unreachable at start-up"), "{err}");
}
