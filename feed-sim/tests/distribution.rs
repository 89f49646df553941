//! Round-robin distribution, replays, bad client input and disconnects,
//! with real WebSocket clients against an in-process feed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use support::{assert_contiguous, seqs_by_symbol, Client, Collector, InProcessFeed, Received};
use tickshard::tick::{Symbol, Tick};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_binary_clients_together_get_every_tick_exactly_once() {
    let total = 20_000;
    let feed =
        InProcessFeed::start(&["--ticks", "20000", "--symbols", "50", "--batch", "64"]).await;
    let mut a = Client::connect(feed.addr, "p1", "json").await;
    let mut b = Client::connect(feed.addr, "p2", "binary").await;
    let (mut ca, mut cb) = (Collector::new(), Collector::new());
    // Read both concurrently until the sum is complete.
    let deadline = std::time::Instant::now() + T;
    while ca.ticks.len() + cb.ticks.len() < total {
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::select! {
            r = a.recv(T) => match r {
                Received::Ticks(t) => ca.ticks.extend(t),
                Received::Seqs(s) => ca.seqs.push(s),
                other => panic!("{other:?}"),
            },
            r = b.recv(T) => match r {
                Received::Ticks(t) => cb.ticks.extend(t),
                Received::Seqs(s) => cb.seqs.push(s),
                other => panic!("{other:?}"),
            },
        }
    }
    assert!(
        !ca.ticks.is_empty() && !cb.ticks.is_empty(),
        "both clients got a share"
    );
    let mut all = ca.ticks.clone();
    all.extend(cb.ticks.iter().copied());
    assert_eq!(all.len(), total);
    let by_symbol = seqs_by_symbol(&all);
    assert_contiguous(&by_symbol);
    assert!(all.iter().all(|t| t.sent_ns.is_some() && !t.replay));

    // The final, full seqs announcement names every symbol's last seq.
    let want: BTreeMap<Symbol, u64> = by_symbol
        .iter()
        .map(|(s, seqs)| (*s, *seqs.last().unwrap()))
        .collect();
    let got = loop {
        match a.recv(T).await {
            Received::Seqs(s) if s.len() == want.len() => break s,
            Received::Seqs(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(got, want);

    let summary = feed.stop().await;
    assert!(summary.completed);
    assert_eq!(summary.ticks_generated, total as u64);
    assert_eq!(summary.ticks_sent, total as u64);
    assert_eq!(summary.distribution.round_robin, total as u64);
    assert_eq!(summary.clients, 2);
}

async fn collect_all(client: &mut Client, n: usize) -> Vec<Tick> {
    let mut c = Collector::new();
    c.read_until(client, n, T).await;
    c.ticks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_returns_exactly_the_requested_ticks_in_the_clients_format() {
    let feed = InProcessFeed::start(&["--ticks", "3000", "--symbols", "5"]).await;
    let mut json = Client::connect(feed.addr, "p1", "json").await;
    let live = collect_all(&mut json, 3000).await;
    let mut bin = Client::connect(feed.addr, "p2", "binary").await;
    let sym = live[0].symbol;
    for client in [&mut json, &mut bin] {
        client
            .send_text(&format!(
                r#"{{"type":"replay","symbol":"{sym}","from":3,"to":7}}"#
            ))
            .await;
        let got = loop {
            match client.recv(T).await {
                Received::Ticks(t) => break t,
                Received::Seqs(_) => {}
                other => panic!("{other:?}"),
            }
        };
        let want: Vec<&Tick> = live
            .iter()
            .filter(|t| t.symbol == sym && (3..=7).contains(&t.seq))
            .collect();
        assert_eq!(got.len(), 5);
        for (g, w) in got.iter().zip(want) {
            assert!(g.replay, "replayed ticks are flagged");
            assert_eq!(
                (g.symbol, g.seq, g.price, g.size, g.ts_ns),
                (w.symbol, w.seq, w.price, w.size, w.ts_ns)
            );
        }
    }
    let summary = feed.stop().await;
    assert_eq!(summary.replays.requests, 2);
    assert_eq!(summary.replays.ticks, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_errors_and_the_connection_stays_usable() {
    let feed = InProcessFeed::start(&[
        "--ticks",
        "500",
        "--symbols",
        "3",
        "--replay-max-range",
        "100",
        "--max-message-bytes",
        "4096",
    ])
    .await;
    let mut c = Client::connect(feed.addr, "p1", "json").await;
    let live = collect_all(&mut c, 500).await;
    let sym = live[0].symbol;
    let last = live
        .iter()
        .filter(|t| t.symbol == sym)
        .map(|t| t.seq)
        .max()
        .unwrap();
    let bad = [
        ("not json at all".to_owned(), "malformed JSON"),
        (r#"{"type":"nonsense"}"#.to_owned(), "invalid message"),
        (
            format!(r#"{{"type":"replay","symbol":"{sym}","from":9,"to":3}}"#),
            "before from",
        ),
        (
            format!(r#"{{"type":"replay","symbol":"{sym}","from":1,"to":100000}}"#),
            "exceeds the limit",
        ),
        (
            r#"{"type":"replay","symbol":"NOPE","from":1,"to":2}"#.to_owned(),
            "unknown symbol",
        ),
        (
            format!(
                r#"{{"type":"replay","symbol":"{sym}","from":{last},"to":{}}}"#,
                last + 1
            ),
            "beyond the last seq",
        ),
        (
            format!(r#"{{"type":"replay","symbol":"{sym}","from":0,"to":1}}"#),
            "at least 1",
        ),
        (
            r#"{"type":"tick","symbol":"A","seq":1,"price":"1","size":1,"ts_ns":1}"#.to_owned(),
            "does not accept ticks",
        ),
        (
            r#"{"type":"hello","id":"p1","format":"json"}"#.to_owned(),
            "already",
        ),
    ];
    let mut skipped = Vec::new();
    for (msg, want) in &bad {
        c.send_text(msg).await;
        let err = c.next_error(&mut skipped).await;
        assert!(err.contains(want), "{msg:?} -> {err:?}, wanted {want:?}");
    }
    c.send_binary(b"garbage".to_vec()).await;
    let err = c.next_error(&mut skipped).await;
    assert!(err.contains("text frames"), "{err}");

    // Still usable: a valid replay works.
    c.send_text(&format!(
        r#"{{"type":"replay","symbol":"{sym}","from":1,"to":2}}"#
    ))
    .await;
    let got = loop {
        match c.recv(T).await {
            Received::Ticks(t) => break t,
            Received::Seqs(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(got.iter().map(|t| t.seq).collect::<Vec<_>>(), [1, 2]);

    // A message over the cap closes the connection with 1009 and a reason.
    c.send_text(&format!(
        r#"{{"type":"error","message":"{}"}}"#,
        "x".repeat(8192)
    ))
    .await;
    let closed = loop {
        match c.recv(T).await {
            Received::Closed(f) => break f,
            Received::Seqs(_) | Received::Ticks(_) => {}
            Received::Error(e) => panic!("{e}"),
        }
    };
    let (code, reason) = closed.expect("a close frame");
    assert_eq!(code, 1009);
    assert!(reason.contains("exceeds"), "{reason}");

    let summary = feed.stop().await;
    assert_eq!(
        summary.bad_client_messages.total, 11,
        "{:?}",
        summary.bad_client_messages
    );
    assert_eq!(
        summary.bad_client_messages.by_kind.get("oversized"),
        Some(&1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_run_loses_nothing_for_the_others() {
    let total = 6_000usize;
    let feed = InProcessFeed::start(&[
        "--ticks",
        "6000",
        "--symbols",
        "20",
        "--rate",
        "6000",
        "--batch",
        "50",
        "--queue",
        "4",
    ])
    .await;
    let mut a = Client::connect(feed.addr, "p1", "binary").await;
    let mut b = Client::connect(feed.addr, "p2", "json").await;
    let mut ca = Collector::new();
    let mut cb = Collector::new();
    // Both read until A has a few hundred ticks, then A vanishes.
    while ca.ticks.len() < 300 {
        tokio::select! {
            r = a.recv(T) => if let Received::Ticks(t) = r { ca.ticks.extend(t) },
            r = b.recv(T) => if let Received::Ticks(t) = r { cb.ticks.extend(t) },
        }
    }
    drop(a);
    // B alone receives the rest: wait for the final full seqs. An
    // announcement of changed symbols can also name all 20 with the final
    // seqs while the last batches are still being written; once every tick
    // was generated nothing changes any more, so a second such announcement
    // can only be the full one sent after every tick was written.
    let mut finals = 0;
    let last: BTreeMap<Symbol, u64> = loop {
        match b.recv(T).await {
            Received::Ticks(t) => cb.ticks.extend(t),
            Received::Seqs(s) if s.len() == 20 => {
                let sum: u64 = s.values().sum();
                if sum == total as u64 {
                    finals += 1;
                    if finals == 2 {
                        break s;
                    }
                }
            }
            Received::Seqs(_) => {}
            other => panic!("{other:?}"),
        }
    };
    let mut all = ca.ticks.clone();
    all.extend(cb.ticks.iter().copied());
    let by_symbol = seqs_by_symbol(&all);
    // Only ticks already written into A's socket when it vanished can be
    // missing; B fills them by replay, and then nothing is missing.
    let mut missing = 0;
    for (sym, &n) in &last {
        let have = by_symbol.get(sym).cloned().unwrap_or_default();
        let gaps: Vec<u64> = (1..=n).filter(|s| !have.contains(s)).collect();
        missing += gaps.len();
        for seq in gaps {
            b.send_text(&format!(
                r#"{{"type":"replay","symbol":"{sym}","from":{seq},"to":{seq}}}"#
            ))
            .await;
            let t = loop {
                match b.recv(T).await {
                    Received::Ticks(t) => break t,
                    Received::Seqs(_) => {}
                    other => panic!("{other:?}"),
                }
            };
            assert_eq!(t.len(), 1);
            all.push(t[0]);
        }
    }
    assert!(missing < total / 10, "{missing} ticks were lost with A");
    let by_symbol = seqs_by_symbol(&all);
    assert_contiguous(&by_symbol);
    assert_eq!(all.len(), total);
    assert!(
        cb.ticks.len() > total / 2,
        "B carried the rest: {}",
        cb.ticks.len()
    );
    let summary = feed.stop().await;
    assert!(summary.completed);
    assert_eq!(summary.ticks_sent, total as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_ticks_and_nothing_is_sent_before_a_hello() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let feed =
            InProcessFeed::start(&["--ticks", "1000", "--symbols", "30", "--seed", "42"]).await;
        // A client without hello gets nothing; replay before hello still answers.
        let mut silent = Client::connect_raw(feed.addr).await;
        let mut c = Client::connect(feed.addr, "p1", "json").await;
        let ticks = collect_all(&mut c, 1000).await;
        silent
            .send_text(r#"{"type":"replay","symbol":"NOPE","from":1,"to":1}"#)
            .await;
        match silent.recv(T).await {
            Received::Error(e) => assert!(e.contains("unknown symbol")),
            other => panic!("a client without hello got {other:?}"),
        }
        let summary = feed.stop().await;
        assert_eq!(summary.clients, 1);
        runs.push(
            ticks
                .iter()
                .map(|t| (t.symbol, t.seq, t.price, t.size))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(runs[0], runs[1]);
    let symbols: BTreeSet<_> = runs[0].iter().map(|t| t.0).collect();
    assert!(symbols.len() > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_roughly_holds_the_rate() {
    // A loose sanity check; speed is measured by the benchmark.
    let feed =
        InProcessFeed::start(&["--ticks", "2000", "--rate", "2000", "--symbols", "10"]).await;
    let mut c = Client::connect(feed.addr, "p1", "binary").await;
    let start = std::time::Instant::now();
    collect_all(&mut c, 2000).await;
    let secs = start.elapsed().as_secs_f64();
    assert!(
        (0.6..2.0).contains(&secs),
        "2000 ticks at 2000/s took {secs:.2}s"
    );
    let summary = feed.stop().await;
    assert!(
        (1600.0..2400.0).contains(&summary.achieved_rate),
        "achieved {}",
        summary.achieved_rate
    );
}
