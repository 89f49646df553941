//! `tickshard processor` at the command line: `--help` documents every
//! option, and start-up failures exit non-zero with one clear line.
// Helpers outside #[test] fns panic on failure too: this is test code.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use support::procs::Proc;
use support::{connect, redis, wait_until};
use tickshard::cluster::config::SCHEMA;
use tickshard::keys::{Keys, DEFAULT_NAMESPACE};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tickshard")
}

/// Runs the processor to completion; returns (exit code, stderr).
fn run_processor(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .arg("processor")
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tickshard");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exactly one line names the failure, and nothing looks like a dump.
fn assert_one_clear_line(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tickshard processor:"))
        .collect();
    assert_eq!(lines.len(), 1, "want one error line, got:\n{stderr}");
    assert!(
        lines[0].contains(needle),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
    assert!(
        !stderr.contains("panicked")
            && !stderr.contains("Caused by")
            && !stderr.contains("Backtrace"),
        "{stderr}"
    );
}

#[test]
fn help_documents_every_option_and_its_environment_variable() {
    let out = Command::new(bin())
        .args(["processor", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, env) in [
        ("--redis", "TICKSHARD_REDIS"),
        ("--cluster", "TICKSHARD_CLUSTER"),
        ("--feed", "TICKSHARD_FEED"),
        ("--id", "TICKSHARD_ID"),
        ("--http", "TICKSHARD_HTTP"),
        ("--partitions", "TICKSHARD_PARTITIONS"),
        ("--lease-ms", "TICKSHARD_LEASE_MS"),
        ("--flush-ms", "TICKSHARD_FLUSH_MS"),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
        assert!(help.contains(env), "--help lacks {env}:\n{help}");
    }
    // Every documented flag has a description line next to it.
    for line in help.lines().filter(|l| l.trim_start().starts_with("--")) {
        assert!(line.trim().len() > 2, "{line}");
    }
}

#[test]
fn a_bad_redis_url_is_one_clear_line() {
    let (code, err) = run_processor(&["--redis", "definitely not a url"]);
    assert_eq!(code, Some(1), "{err}");
    assert_one_clear_line(&err, "invalid Redis URL");
}

#[test]
fn unreachable_redis_is_one_clear_line() {
    let port = tickshard::redis_server::free_port().unwrap();
    let url = format!("redis://127.0.0.1:{port}/");
    let started = std::time::Instant::now();
    let (code, err) = run_processor(&["--redis", &url]);
    assert_eq!(code, Some(1), "{err}");
    assert_one_clear_line(&err, "cannot reach Redis");
    assert!(started.elapsed() < Duration::from_secs(10), "fail fast");
}

#[test]
fn credentials_are_not_printed() {
    let port = tickshard::redis_server::free_port().unwrap();
    let url = format!("redis://user:s3cret@127.0.0.1:{port}/");
    let (code, err) = run_processor(&["--redis", &url]);
    assert_eq!(code, Some(1));
    assert!(!err.contains("s3cret"), "{err}");
}

#[tokio::test]
async fn mismatched_partitions_name_both_values() {
    let server = redis();
    let mut con = connect(&server).await;
    let _: () = redis::cmd("HSET")
        .arg(Keys::new(DEFAULT_NAMESPACE).config())
        .arg(&["partitions", "64", "lease_ms", "2000", "schema", SCHEMA])
        .query_async(&mut con)
        .await
        .unwrap();
    let (code, err) = run_processor(&["--redis", &server.url(), "--partitions", "32"]);
    assert_eq!(code, Some(1), "{err}");
    assert_one_clear_line(&err, "configured with 64 partitions");
    assert!(err.contains("started with 32"), "{err}");
}

#[tokio::test]
async fn a_namespace_of_an_older_key_schema_is_refused() {
    let server = redis();
    let mut con = connect(&server).await;
    // What the version before the `{cluster}` tag left: its config at
    // `{ns}:config`, schema 2.
    let keys = Keys::new(DEFAULT_NAMESPACE);
    let _: () = redis::cmd("HSET")
        .arg(keys.legacy_config())
        .arg(&["partitions", "64", "lease_ms", "2000", "schema", "2"])
        .query_async(&mut con)
        .await
        .unwrap();
    let (code, err) = run_processor(&["--redis", &server.url()]);
    assert_eq!(code, Some(1), "{err}");
    assert_one_clear_line(&err, "created with key schema 2 (tickshard:config)");
    assert!(
        err.contains("new namespace (--cluster)"),
        "says what to do: {err}"
    );
    let created: bool = redis::cmd("EXISTS")
        .arg(keys.config())
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(!created, "nothing is written to a refused namespace");
    // A namespace of this version marks the old config key with its
    // schema, which an older version reads first and refuses.
    let fresh = Keys::new("fresh");
    let p = Proc::spawn(
        "p1",
        bin(),
        &[
            "processor",
            "--redis",
            &server.url(),
            "--cluster",
            "fresh",
            "--feed",
            "ws://127.0.0.1:9",
            "--id",
            "p1",
            "--http",
            "127.0.0.1:0",
        ]
        .map(str::to_owned),
        &[],
    );
    wait_until(
        Duration::from_secs(15),
        "the mark on the old config key",
        || {
            let mut con = con.clone();
            let key = fresh.legacy_config();
            async move {
                let mark: Option<String> = redis::cmd("HGET")
                    .arg(key)
                    .arg("schema")
                    .query_async(&mut con)
                    .await
                    .unwrap_or(None);
                mark.as_deref() == Some(SCHEMA)
            }
        },
    )
    .await;
    p.kill9();
    // A config of this layout with another schema number is refused too.
    let _: () = redis::cmd("DEL")
        .arg(keys.legacy_config())
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(keys.config())
        .arg(&["partitions", "64", "lease_ms", "2000", "schema", "1"])
        .query_async(&mut con)
        .await
        .unwrap();
    let (code, err) = run_processor(&["--redis", &server.url()]);
    assert_eq!(code, Some(1), "{err}");
    assert_one_clear_line(&err, "created with key schema 1");
}

#[tokio::test]
async fn a_redis_that_may_evict_is_refused_unless_allowed() {
    let server = redis();
    let mut con = connect(&server).await;
    // A cache's settings: a memory limit and LRU eviction of any key.
    for (name, value) in [("maxmemory", "100mb"), ("maxmemory-policy", "allkeys-lru")] {
        let _: () = redis::cmd("CONFIG")
            .arg(&["SET", name, value])
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let url = server.url();
    let (code, err) = run_processor(&["--redis", &url]);
    assert_eq!(code, Some(1), "{err}");
    assert_one_clear_line(&err, "maxmemory-policy allkeys-lru");
    assert!(
        err.contains("noeviction") && err.contains("--allow-eviction"),
        "names the fix: {err}"
    );
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(Keys::new(DEFAULT_NAMESPACE).members())
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(members.is_empty(), "nothing joined: {members:?}");

    // Accepting the risk: it starts and owns partitions (with a warning).
    let args = support::fleet::ProcessorArgs::new(&url, "brave").raw(["--allow-eviction"]);
    let p = support::fleet::spawn_tickshard("brave", args, &[]);
    p.wait_log("lease acquired", Duration::from_secs(15)).await;
    assert!(
        p.log().contains("Redis may evict keys, allowed by choice"),
        "{}",
        p.log()
    );

    // noeviction with the same limit is fine without the flag.
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "noeviction"])
        .query_async(&mut con)
        .await
        .unwrap();
    let args = support::fleet::ProcessorArgs::new(&url, "careful");
    let q = support::fleet::spawn_tickshard("careful", args, &[]);
    q.wait_log("http listening", Duration::from_secs(15)).await;
}

#[tokio::test]
async fn a_live_duplicate_id_refuses_to_start() {
    let server = redis();
    let url = server.url();
    let twin = ["--redis", &url, "--id", "twin", "--lease-ms", "600"];
    let args: Vec<String> = std::iter::once("processor")
        .chain(twin)
        .map(str::to_string)
        .collect();
    let first = Proc::spawn("twin", bin(), &args, &[("RUST_LOG", "info")]);
    wait_until(Duration::from_secs(5), "the first twin joins", || async {
        first.log().contains("joined the cluster")
    })
    .await;
    let (code, err) = run_processor(&twin);
    assert_eq!(code, Some(1), "{err}");
    assert_one_clear_line(&err, "already in use");
    // The first one is unaffected.
    assert!(!first.log().contains("lease lost"), "{}", first.log());
}

#[tokio::test]
async fn refused_credentials_are_one_clear_line() {
    let server = redis();
    let mut con = connect(&server).await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "right"])
        .query_async(&mut con)
        .await
        .unwrap();
    let url = format!("redis://:wrong@127.0.0.1:{}/", server.port());
    let (code, err) = run_processor(&["--redis", &url]);
    assert_eq!(code, Some(1), "{err}");
    assert_one_clear_line(&err, "refused the credentials");
    assert!(!err.contains("wrong"), "the password leaked: {err}");
}
