//! The self-check of the exact comparison (`tickshard::truth`) that every
//! cluster run ends with: a hand-written fixture stored in a real Redis must
//! compare exact, and one changed field and one extra symbol must be found.

use std::num::NonZeroU32;

use tickshard::cluster::{ConnOptions, RedisConn};
use tickshard::keys::Keys;
use tickshard::tick::Symbol;
use tickshard::truth::{read_stored, TruthRecord};

/// Writes the hand-written fixture's state into a real Redis and checks
/// that the comparison finds it exact, then finds one changed field and
/// one extra symbol.
pub(crate) async fn self_check(url: &str) -> Result<(), String> {
    let text = include_str!("../fixtures/truth_small.json");
    let truth = TruthRecord::parse(text).map_err(|e| format!("ground truth: {e}"))?;
    let keys = Keys::new("selfcheck");
    let config = tickshard::redis_conn::RedisConfig::new(url);
    let mut conn = RedisConn::connect(&config, &ConnOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let hset = |sym: &str, fields: Vec<(&'static str, String)>| {
        let key = keys.sym_in(&sym.parse::<Symbol>().unwrap(), NonZeroU32::MIN);
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (f, v) in fields {
            cmd.arg(f).arg(v);
        }
        cmd
    };
    for (sym, t) in &truth.symbols {
        let fields = vec![
            ("count", t.count.to_string()),
            ("volume", t.volume.to_string()),
            ("last_seq", t.last_seq.to_string()),
            ("last_px", t.last_px.clone()),
            ("vwap_px", t.vwap_px.clone()),
            ("fence", "1".to_string()),
        ];
        let _: () = hset(sym, fields)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    let read = |mut c: RedisConn| {
        let keys = keys.clone();
        async move { read_stored(&mut c, &keys).await.map_err(|e| e.to_string()) }
    };
    let cmp = truth.compare(&read(conn.clone()).await?);
    if !cmp.is_exact() || cmp.matched != truth.symbols.len() {
        return Err(format!("identical state not exact: {}", cmp.summary()));
    }
    let _: () = hset("AAPL", vec![("count", "4".to_string())])
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _: () = hset("ZZZ", vec![("count", "1".to_string())])
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let cmp = truth.compare(&read(conn.clone()).await?);
    let one_field = cmp.mismatches.len() == 1 && cmp.mismatches[0].field == "count";
    if cmp.is_exact() || !one_field || cmp.extra != vec!["ZZZ".to_string()] {
        return Err(format!("differences not found: {}", cmp.summary()));
    }
    Ok(())
}
