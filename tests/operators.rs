//! Operators and live results end to end, with real processes: a user's
//! operator binary (`examples/custom_operator`) and the built-in bars stay
//! exact across a SIGKILL of the owner, and a WebSocket client of a
//! non-owner (and of the dashboard) receives every update of its symbols
//! in sequence order.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use support::fleet::{
    assert_exact, example_bin, read_truth, spawn_feed_with, spawn_tickshard, wait_all_owned,
    FeedArgs, ProcessorArgs,
};
use support::procs::Proc;
use tickshard::keys::Keys;
use tickshard::operator::{FieldWriter, OperatorSet};
use tickshard::partition::partition_of;
use tickshard::tick::{parse_timestamp, Symbol, Tick};

const SETTLE: Duration = Duration::from_secs(60);
const BIG_SIZE: u32 = 20;
const PARTITIONS: u32 = 64;

/// The file's ticks, numbered per symbol in file order as the feed does.
fn file_ticks(path: &str) -> Vec<Tick> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut seqs: HashMap<Symbol, u64> = HashMap::new();
    text.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            let symbol: Symbol = cols[1].parse().unwrap();
            let seq = seqs.entry(symbol).or_default();
            *seq += 1;
            Tick::new(
                symbol,
                *seq,
                cols[2].parse().unwrap(),
                cols[3].parse().unwrap(),
                parse_timestamp(cols[0]).unwrap(),
            )
            .unwrap()
        })
        .collect()
}

/// One stream's entries as (id, fields).
type Entries = Vec<(String, BTreeMap<String, String>)>;

async fn read_stream(conn: &mut tickshard::cluster::RedisConn, key: &str) -> Entries {
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(key).await.unwrap();
    reply
        .ids
        .into_iter()
        .map(|e| {
            let fields = e
                .map
                .iter()
                .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap()))
                .collect();
            (e.id, fields)
        })
        .collect()
}

/// A private Redis, namespace `ns`, a temporary ground-truth path and
/// the address the feed will listen on.
struct Fixture {
    redis: support::RedisServer,
    url: String,
    conn: tickshard::cluster::RedisConn,
    keys: Keys,
    truth_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    feed_addr: String,
    feed_url: String,
}

impl Fixture {
    async fn new(ns: &str) -> Self {
        let redis = support::redis();
        let url = redis.url();
        let conn = support::connect(&redis).await;
        let dir = tempfile::tempdir().unwrap();
        let port = tickshard::redis_server::free_port().unwrap();
        Self {
            redis,
            url,
            conn,
            keys: Keys::new(ns),
            truth_path: dir.path().join("truth.json"),
            _dir: dir,
            feed_addr: format!("127.0.0.1:{port}"),
            feed_url: format!("ws://127.0.0.1:{port}"),
        }
    }
}

fn owner_of(lease: Option<String>) -> Option<String> {
    lease.and_then(|v| v.rsplit_once(':').map(|(id, _)| id.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_operator_and_bars_are_exact_across_a_sigkill_of_the_owner() {
    let ns = "ops";
    let Fixture {
        redis: _redis,
        url,
        mut conn,
        keys,
        truth_path,
        _dir,
        feed_addr,
        feed_url,
    } = Fixture::new(ns).await;
    let bin = example_bin("custom_operator");
    let spawn = |id: &str| {
        let args = ProcessorArgs::new(&url, id)
            .cluster(ns)
            .lease_ms(1000)
            .feed(&feed_url)
            .opt("--bars", "1s,1m")
            .opt("--big-size", &BIG_SIZE.to_string())
            .opt("--output-max-len", "1000000");
        Proc::spawn(id, &bin, &args.build_standalone(), &[("RUST_LOG", "info")])
    };
    let mut procs: Vec<Proc> = ["p1", "p2", "p3"].iter().map(|id| spawn(id)).collect();
    wait_all_owned(&mut conn, ns, PARTITIONS, Duration::from_secs(15)).await;

    let es: Symbol = "ES".parse().unwrap();
    let p = partition_of(&es, NonZeroU32::new(PARTITIONS).unwrap());
    let data = support::es_trades_file();
    let feed = spawn_feed_with(
        FeedArgs::new(&feed_addr)
            .raw(["--input", data, "--mode", "round-robin", "--rate", "15000"])
            .record(&truth_path),
    );
    // Mid-stream, SIGKILL the owner of ES's partition, then restart it.
    support::wait_until(Duration::from_secs(60), "30,000 ES ticks stored", || {
        let mut conn = conn.clone();
        let key = keys.sym(p, &es);
        async move {
            let seq: Option<u64> = conn.hget(key, "last_seq").await.unwrap();
            seq.unwrap_or(0) >= 30_000
        }
    })
    .await;
    let lease: Option<String> = conn.get(keys.lease(p)).await.unwrap();
    let owner = owner_of(lease).unwrap();
    let i = procs.iter().position(|p| p.name == owner).unwrap();
    procs[i].kill9();
    procs[i].wait_exit(Duration::from_secs(5));
    procs[i] = spawn(&owner);

    let truth = read_truth(&truth_path, Duration::from_secs(120)).await;
    assert_eq!(truth.ticks, 100_000);
    let mut all: Vec<&Proc> = procs.iter().collect();
    all.push(&feed);
    assert_exact(&mut conn, ns, &truth, SETTLE, &all).await;

    // One pass over the file with the same operators.
    let ticks = file_ticks(data);
    let ops =
        OperatorSet::builtin(&["1s".parse().unwrap(), "1m".parse().unwrap()], &[], None).unwrap();
    let mut state = ops.init();
    let mut outputs = tickshard::operator::OutputBuf::default();
    let (mut big_count, mut big_volume, mut big_entries) = (0u64, 0u64, Entries::new());
    for t in &ticks {
        state.apply(&ops, t, &mut outputs);
        if t.size >= BIG_SIZE {
            big_count += 1;
            big_volume += u64::from(t.size);
            let fields = [
                ("symbol", t.symbol.to_string()),
                ("seq", t.seq.to_string()),
                ("size", t.size.to_string()),
                ("price", t.price.to_string()),
            ];
            big_entries.push((
                format!("{}-0", t.seq),
                fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            ));
        }
    }
    let stored: HashMap<String, String> = conn.hgetall(keys.sym(p, &es)).await.unwrap();
    assert_eq!(stored["big_count"], big_count.to_string());
    assert_eq!(stored["big_volume"], big_volume.to_string());
    let mut fields = FieldWriter::new();
    state.save(&ops, &mut fields);
    let outputs = outputs.take();
    for (k, v) in fields.pairs() {
        assert_eq!(stored.get(k), Some(v), "field {k}");
    }
    // Each big tick once in the operator's stream: none missing, none doubled.
    let big_key = keys.out(p, "big_print", &es);
    assert!(big_key.contains(":out:big_print:"));
    let big_stream = read_stream(&mut conn, &big_key).await;
    assert_eq!(big_stream.len(), big_entries.len());
    assert_eq!(big_stream, big_entries);
    // Each completed bar once, at both widths.
    for (index, name) in ops.names().iter().enumerate() {
        let expected: Entries = outputs
            .iter()
            .filter(|o| usize::from(o.operator) == index)
            .map(|o| {
                let fields = o.fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone()));
                (o.id(), fields.collect())
            })
            .collect();
        let stream = read_stream(&mut conn, &keys.out(p, name, &es)).await;
        assert!(!expected.is_empty());
        assert_eq!(stream.len(), expected.len(), "{name}");
        assert_eq!(stream, expected, "{name}");
    }
    eprintln!(
        "[ops] killed {owner}; {big_count} big prints, {} bars exact",
        outputs.len()
    );
}

/// Reads `ws` until both `symbols` reached their truth's last seq; checks
/// the order on the way. Returns the updates seen.
async fn follow(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    symbols: &[Symbol],
    last: &HashMap<Symbol, u64>,
) -> usize {
    let mut upto: HashMap<String, u64> = HashMap::new();
    let mut updates = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while symbols.iter().any(|s| upto.get(s.as_str()) != last.get(s)) {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("updates up to the last tick of both symbols")
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        let symbol = v["symbol"].as_str().unwrap_or_default().to_owned();
        match v["type"].as_str().unwrap() {
            "snapshot" => {
                upto.insert(symbol, v["last_seq"].as_u64().unwrap());
            }
            "update" => {
                let before = upto[&symbol];
                let (from, to) = (
                    v["from_seq"].as_u64().unwrap(),
                    v["last_seq"].as_u64().unwrap(),
                );
                assert_eq!(from, before + 1, "{symbol}: a gap or a repeat: {v}");
                assert!(to >= from);
                assert_eq!(v["state"]["last_seq"], to.to_string());
                upto.insert(symbol, to);
                updates += 1;
            }
            other => panic!("unexpected message {other}: {v}"),
        }
    }
    updates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_owner_streams_every_update_of_two_symbols_in_order() {
    let ns = "live";
    let Fixture {
        redis: _redis,
        url,
        mut conn,
        keys,
        truth_path,
        _dir,
        feed_addr,
        feed_url,
    } = Fixture::new(ns).await;
    let procs: Vec<Proc> = ["p1", "p2"]
        .iter()
        .map(|id| {
            let args = ProcessorArgs::new(&url, id)
                .cluster(ns)
                .feed(&feed_url)
                .opt("--bars", "1s");
            spawn_tickshard(id, args, &[])
        })
        .collect();
    wait_all_owned(&mut conn, ns, PARTITIONS, Duration::from_secs(15)).await;

    // Two symbols of the feed's universe owned by p1; watch them on p2.
    let partitions = NonZeroU32::new(PARTITIONS).unwrap();
    let mut watched = Vec::new();
    for i in 0..20 {
        let s: Symbol = format!("S{i:06}").parse().unwrap();
        let lease: Option<String> = conn
            .get(keys.lease(partition_of(&s, partitions)))
            .await
            .unwrap();
        if owner_of(lease).as_deref() == Some("p1") && watched.len() < 2 {
            watched.push(s);
        }
    }
    assert_eq!(watched.len(), 2, "p1 owns two of the first 20 symbols");
    let list = format!("{},{}", watched[0], watched[1]);
    let p2 = procs[1].http_addr(Duration::from_secs(10)).await;
    let (mut on_p2, _) = tokio_tungstenite::connect_async(format!(
        "ws://{p2}/ws/symbols?subscribe={list}&history=bars_1s"
    ))
    .await
    .unwrap();
    let first = on_p2.next().await.unwrap().unwrap();
    assert!(
        first.to_text().unwrap().contains("\"subscribed\""),
        "{first}"
    );

    // The dashboard serves the same stream.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = tickshard::dashboard::DashboardConfig::new(
        tickshard::redis_conn::RedisConfig::new(&url),
        ns,
        "127.0.0.1:0".parse().unwrap(),
    );
    let dash = tickshard::dashboard::start(config, shutdown.clone())
        .await
        .unwrap();
    let (mut on_dash, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/ws/symbols?subscribe={list}",
        dash.local_addr()
    ))
    .await
    .unwrap();
    let first = on_dash.next().await.unwrap().unwrap();
    assert!(
        first.to_text().unwrap().contains("\"subscribed\""),
        "{first}"
    );

    // A bad request gets 400 and a reason.
    let (status, body) =
        support::fleet::http_get(&p2, "/ws/symbols?subscribe=AAPL,not%20a%20symbol")
            .await
            .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("error"), "{body}");

    let feed = spawn_feed_with(
        FeedArgs::new(&feed_addr)
            .raw([
                "--symbols",
                "20",
                "--ticks",
                "40000",
                "--rate",
                "10000",
                "--seed",
                "5",
            ])
            .record(&truth_path),
    );
    let truth = read_truth(&truth_path, Duration::from_secs(120)).await;
    let last: HashMap<Symbol, u64> = watched
        .iter()
        .map(|s| (*s, truth.symbols[s.as_str()].last_seq))
        .collect();
    let updates = follow(&mut on_p2, &watched, &last).await;
    let dash_updates = follow(&mut on_dash, &watched, &last).await;
    eprintln!("[live] {list}: {updates} updates on p2, {dash_updates} on the dashboard");
    assert!(updates > 1 && dash_updates > 1);
    let mut all: Vec<&Proc> = procs.iter().collect();
    all.push(&feed);
    assert_exact(&mut conn, ns, &truth, SETTLE, &all).await;
    shutdown.cancel();
}
