//! A fuzz driver that runs on stable Rust: the same checks as the
//! libFuzzer targets in `fuzz/`, fed with random bytes and with mutations
//! of valid encodings (bit flips, byte changes, truncation, splices,
//! length-field changes), for a bounded time.
//!
//! ```text
//! cargo run --release --example fuzz_stable -- [SECONDS] [SEED]
//! ```
//!
//! Prints one summary line per target; a broken property panics with the
//! input (hex) that broke it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../fuzz/checks.rs"]
mod checks;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickshard::cluster::messaging::{Envelope, MessageKind};
use tickshard::codec::{encode_batch, FeedMessage};
use tickshard::tick::{Price, Tick};

type Check = fn(&[u8]) -> bool;

fn seeds_binary() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in [0usize, 1, 3, 17] {
        let ticks: Vec<Tick> = (0..n)
            .map(|i| {
                let mut t = Tick::new(
                    ["A", "MSFT", "BRK.B", "ABCDEFGHIJKL"][i % 4]
                        .parse()
                        .unwrap(),
                    i as u64 + 1,
                    Price::from_units(1_872_500 + i as i64).unwrap(),
                    100 + i as u32,
                    1_732_400_000_000_000_000 + i as u64,
                )
                .unwrap();
                if i % 2 == 0 {
                    t.sent_ns = Some(7);
                }
                t.replay = i % 3 == 0;
                t
            })
            .collect();
        let mut buf = Vec::new();
        encode_batch(&ticks, &mut buf);
        out.push(buf);
    }
    out
}

fn seeds_json() -> Vec<Vec<u8>> {
    let tick = r#"{"type":"tick","symbol":"AAPL","seq":42,"price":"187.2500","size":100,"ts_ns":1732400000000000000}"#;
    let mut v: Vec<String> = vec![
        tick.into(),
        format!(r#"{{"type":"batch","ticks":[{tick},{tick}]}}"#),
        r#"{"type":"hello","id":"p1","format":"binary"}"#.into(),
        r#"{"type":"replay","symbol":"AAPL","from":5,"to":9}"#.into(),
        r#"{"type":"seqs","seqs":{"AAPL":42,"MSFT":17}}"#.into(),
        r#"{"type":"error","message":"x"}"#.into(),
        r#"{"type":"tick","symbol":"A","seq":1,"price":"0.0001","size":4294967295,"ts_ns":0,"sent_ns":1,"replay":true}"#.into(),
    ];
    v.push(FeedMessage::error("é \u{1F600} \" \\").to_json());
    v.into_iter().map(String::into_bytes).collect()
}

fn seeds_envelope() -> Vec<Vec<u8>> {
    let mut batch = Vec::new();
    encode_batch(
        &[Tick::new("A".parse().unwrap(), 1, Price::from_units(1).unwrap(), 1, 1).unwrap()],
        &mut batch,
    );
    [MessageKind::Data, MessageKind::Request, MessageKind::Reply]
        .into_iter()
        .map(|kind| {
            Envelope {
                kind,
                hops: 1,
                from: "p-1.x_y".parse().unwrap(),
                correlation: 99,
                sent_ns: 5,
                payload: bytes::Bytes::from(batch.clone()),
            }
            .encode()
            .to_vec()
        })
        .collect()
}

const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'}', b'.', b'-'];

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    if rng.random_ratio(1, 8) {
        let n = rng.random_range(0..256);
        out.extend((0..n).map(|_| rng.random::<u8>()));
        return;
    }
    out.extend_from_slice(&seeds[rng.random_range(0..seeds.len())]);
    for _ in 0..rng.random_range(1..5) {
        match rng.random_range(0..7) {
            0 if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                out[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            2 if !out.is_empty() => {
                let n = rng.random_range(0..out.len());
                out.truncate(n);
            }
            3 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let from = rng.random_range(0..=other.len());
                let i = rng.random_range(0..=out.len());
                let tail: Vec<u8> = out.split_off(i);
                out.extend_from_slice(&other[from..]);
                out.extend_from_slice(&tail);
            }
            4 if out.len() >= 8 => {
                // Length and count fields sit in the first bytes.
                let i = rng.random_range(0..8);
                out[i] = [0, 1, 0xff, 0x10, 0x40][rng.random_range(0..5)];
            }
            5 if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                let n = rng.random_range(1..=16).min(out.len() - i);
                let copy = out[i..i + n].to_vec();
                let at = rng.random_range(0..=out.len());
                out.splice(at..at, copy);
            }
            _ => {
                let i = rng.random_range(0..=out.len());
                out.insert(i, rng.random());
            }
        }
    }
}

fn run(name: &str, check: Check, seeds: &[Vec<u8>], budget: Duration, rng: &mut StdRng) {
    let start = Instant::now();
    let mut input = Vec::new();
    let mut tried: u64 = 0;
    let mut decoded: u64 = 0;
    for s in seeds {
        assert!(check(s), "{name}: a seed does not decode");
    }
    while start.elapsed() < budget {
        for _ in 0..1024 {
            mutate(rng, seeds, &mut input);
            match std::panic::catch_unwind(|| check(&input)) {
                Ok(ok) => decoded += u64::from(ok),
                Err(_) => {
                    let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
                    panic!("{name}: property broken by input (hex) {hex}");
                }
            }
            tried += 1;
        }
    }
    println!(
        "{name}: {tried} inputs ({decoded} decoded, round trip checked) in {:.1} s, no crash",
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let per = Duration::from_secs(secs) / 3;
    println!("fuzz_stable: seed {seed}, {secs} s in total");
    run(
        "binary_batch",
        checks::binary_batch,
        &seeds_binary(),
        per,
        &mut rng,
    );
    run(
        "json_message",
        checks::json_message,
        &seeds_json(),
        per,
        &mut rng,
    );
    run(
        "inbox_envelope",
        checks::inbox_envelope,
        &seeds_envelope(),
        per,
        &mut rng,
    );
}
