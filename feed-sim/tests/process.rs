//! The real `feed-sim` binary: real-data replay with `--record`, the JSON
//! summary line on SIGTERM, bad input rows, `--wait-clients`, and `--help`.

mod support;

use std::io::Write;
use std::time::Duration;

use support::{
    assert_contiguous, data_file, seqs_by_symbol, Client, Collector, FeedProcess, Received,
};

const T: Duration = Duration::from_secs(30);

/// The real feed-sim replaying `csv`, recording its ground truth to
/// `record`, with `extra` options.
async fn replay_csv(
    csv: &std::path::Path,
    record: &std::path::Path,
    extra: &[&str],
) -> FeedProcess {
    let mut args = vec![
        "--input",
        csv.to_str().expect("a UTF-8 path"),
        "--record",
        record.to_str().expect("a UTF-8 path"),
    ];
    args.extend_from_slice(extra);
    FeedProcess::spawn(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_real_es_trades_records_the_independent_totals() {
    let csv = data_file("es_trades_2013-09-01.csv");
    // Independent sum, straight from the file.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut count = 0u64;
    let mut volume = 0u64;
    for line in text.lines().skip(1) {
        let size: u64 = line.rsplit(',').next().unwrap().parse().unwrap();
        count += 1;
        volume += size;
    }
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("truth.json");
    let feed = replay_csv(&csv, &record, &["--batch", "1000"]).await;
    let mut client = Client::connect(feed.addr, "p1", "binary").await;
    let mut got = Collector::new();
    got.read_until(&mut client, count as usize, T).await;
    feed.wait_log("all ticks sent", T).await;
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(truth["ticks"], count);
    let es = &truth["symbols"]["ES"];
    assert_eq!(es["count"], count);
    assert_eq!(es["volume"], volume);
    assert_eq!(es["last_seq"], count);
    let last = text.lines().last().unwrap();
    let last_px: tickshard::tick::Price = last.split(',').nth(2).unwrap().parse().unwrap();
    assert_eq!(es["last_px"], last_px.to_string());
    // 2013-09-01T17:00:00.083-05:00
    assert_eq!(es["first_ts_ns"], 1_378_072_800_083_000_000u64);
    assert!(es["vwap_px"].as_str().unwrap().starts_with("16"));
    let received_volume: u64 = got.ticks.iter().map(|t| u64::from(t.size)).sum();
    assert_eq!(received_volume, volume);

    let summary = feed.stop();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["ticks_sent"], count);
    assert_eq!(summary["completed"], true);
    assert_eq!(summary["bad_input"]["rows"], 0);
    assert!(summary["achieved_rate"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_are_skipped_counted_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("trades.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    let ts = "2013-09-01T17:00:00.083-05:00";
    writeln!(f, "timestamp,symbol,price,size").unwrap();
    let rows = [
        format!("{ts},ES,1640.25,8"),   // 2 ok
        format!("{ts},ES,NaN,8"),       // 3 bad price
        format!("{ts},ES,1640.25,-1"),  // 4 bad size
        format!("{ts},,1640.25,1"),     // 5 empty symbol
        format!("{ts},ES,1640.25"),     // 6 column count
        format!("{ts},ES,1640.50,0"),   // 7 zero size
        format!("{ts},NQ,3000.25,2"),   // 8 ok
        "garbage".to_owned(),           // 9
        format!("{ts},ES,1640.75,100"), // 10 ok
    ];
    for r in rows {
        writeln!(f, "{r}").unwrap();
    }
    drop(f);
    let record = dir.path().join("truth.json");
    let feed = replay_csv(&csv, &record, &[]).await;
    let mut client = Client::connect(feed.addr, "p1", "json").await;
    let mut got = Collector::new();
    got.read_until(&mut client, 3, T).await;
    feed.wait_log("all ticks sent", T).await;
    let summary = feed.stop();
    assert_eq!(summary["ticks_sent"], 3);
    assert_eq!(summary["bad_input"]["rows"], 6);
    assert_eq!(
        summary["bad_input"]["first_lines"],
        serde_json::json!([3, 4, 5, 6, 7, 9])
    );
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(truth["symbols"]["ES"]["count"], 2);
    assert_eq!(truth["symbols"]["ES"]["volume"], 108);
    assert_eq!(truth["symbols"]["NQ"]["last_seq"], 1);
}

#[test]
fn help_documents_every_option_with_its_environment_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_feed-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, env) in [
        ("--listen", "TICKSHARD_FEED_LISTEN"),
        ("--symbols", "TICKSHARD_FEED_SYMBOLS"),
        ("--universe", "TICKSHARD_FEED_UNIVERSE"),
        ("--input", "TICKSHARD_FEED_INPUT"),
        ("--speed", "TICKSHARD_FEED_SPEED"),
        ("--rate", "TICKSHARD_FEED_RATE"),
        ("--ticks", "TICKSHARD_FEED_TICKS"),
        ("--duration", "TICKSHARD_FEED_DURATION"),
        ("--mode", "TICKSHARD_FEED_MODE"),
        ("--redis", "TICKSHARD_REDIS"),
        ("--cluster", "TICKSHARD_CLUSTER"),
        ("--seed", "TICKSHARD_FEED_SEED"),
        ("--record", "TICKSHARD_FEED_RECORD"),
        ("--batch", "TICKSHARD_FEED_BATCH"),
        ("--replay-limit", "TICKSHARD_FEED_REPLAY_LIMIT"),
        ("--replay-max-range", "TICKSHARD_FEED_REPLAY_MAX_RANGE"),
        ("--max-message-bytes", "TICKSHARD_FEED_MAX_MESSAGE_BYTES"),
        ("--queue", "TICKSHARD_FEED_QUEUE"),
        ("--seqs-ms", "TICKSHARD_FEED_SEQS_MS"),
        ("--owner-poll-ms", "TICKSHARD_FEED_OWNER_POLL_MS"),
        ("--exit-after", "TICKSHARD_FEED_EXIT_AFTER"),
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
        assert!(
            help.contains(&format!("env: {env}")),
            "{env} missing from --help"
        );
    }
    // A contradiction is refused with a clear message.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_feed-sim"))
        .args(["--mode", "owner-aware"])
        .env_remove("TICKSHARD_REDIS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--redis"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_universe_drives_generation() {
    let universe = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sp500_universe.csv");
    let feed = FeedProcess::spawn(&[
        "--universe",
        universe,
        "--ticks",
        "5000",
        "--exit-after",
        "0",
    ])
    .await;
    let mut client = Client::connect(feed.addr, "p1", "binary").await;
    let mut got = Collector::new();
    got.read_until(&mut client, 5000, T).await;
    let mut by_symbol = std::collections::HashMap::<String, usize>::new();
    for t in &got.ticks {
        *by_symbol.entry(t.symbol.to_string()).or_default() += 1;
    }
    // Real tickers; the busiest real names trade far more than the quiet ones.
    assert!(
        by_symbol.contains_key("BAC") || by_symbol.contains_key("C"),
        "{by_symbol:?}"
    );
    let max = by_symbol.values().max().copied().unwrap_or(0);
    assert!(max > 50, "activity is skewed: max {max}");
    // --exit-after 0: exits by itself after the last tick.
    let out = feed.wait_exit(T);
    assert_eq!(out["ticks_sent"], 5000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_clients_holds_the_first_tick_until_enough_clients_said_hello() {
    let feed = FeedProcess::spawn(&[
        "--ticks",
        "2000",
        "--symbols",
        "20",
        "--batch",
        "10",
        "--wait-clients",
        "2",
    ])
    .await;
    let mut a = Client::connect(feed.addr, "p1", "binary").await;
    // Logged from inside the wait, with one client known: nothing was sent.
    feed.wait_log(
        "waiting for clients before the first tick have=1 wanted=2",
        T,
    )
    .await;
    let mut b = Client::connect(feed.addr, "p2", "binary").await;
    let (mut ca, mut cb) = (Collector::new(), Collector::new());
    let deadline = std::time::Instant::now() + T;
    while ca.ticks.len() + cb.ticks.len() < 2000 {
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::select! {
            r = a.recv(T) => if let Received::Ticks(t) = r { ca.ticks.extend(t) },
            r = b.recv(T) => if let Received::Ticks(t) = r { cb.ticks.extend(t) },
        }
    }
    assert!(
        !ca.ticks.is_empty() && !cb.ticks.is_empty(),
        "both got a share"
    );
    let mut all = ca.ticks.clone();
    all.extend(cb.ticks.iter().copied());
    assert_eq!(all.len(), 2000);
    assert_contiguous(&seqs_by_symbol(&all));
    let summary = feed.stop();
    assert_eq!(summary["ticks_sent"], 2000);
}
