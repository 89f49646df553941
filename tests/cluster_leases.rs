//! The lease scripts against a real Redis: racing contenders never both
//! win, epochs strictly increase, renew and release only touch our own
//! lease.
// Helpers outside #[test] fns panic on failure too: this is test code.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{connect, redis};
use tickshard::cluster::lease::{lease_value, AcquireOutcome, LeaseScripts};
use tickshard::keys::Keys;
use tickshard::tick::{Epoch, InstanceId, PartitionId};

const TTL: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_contenders_never_both_win() {
    let server = redis();
    let keys = Keys::new("race");
    let a: InstanceId = "a".parse().unwrap();
    let b: InstanceId = "b".parse().unwrap();
    // Separate connections, so the two scripts really race at the server.
    let (mut ca, mut cb) = (connect(&server).await, connect(&server).await);
    let scripts = LeaseScripts::new();
    let parts: Vec<PartitionId> = (0..16).map(PartitionId).collect();
    let mut last_epoch = vec![0u64; parts.len()];
    let (mut wins_a, mut wins_b) = (0, 0);
    for round in 0..300 {
        // Alternate the order the partitions are asked for, so both win some.
        let mut pa = parts.clone();
        let mut pb = parts.clone();
        if round % 2 == 0 {
            pa.reverse();
        } else {
            pb.reverse();
        }
        let (ra, rb) = tokio::join!(
            scripts.acquire(&mut ca, &keys, &a, &pa, TTL),
            scripts.acquire(&mut cb, &keys, &b, &pb, TTL)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let mut winners: Vec<Vec<(&str, Epoch)>> = vec![Vec::new(); parts.len()];
        for (who, results) in [("a", &ra), ("b", &rb)] {
            for (p, o) in results.iter() {
                if let AcquireOutcome::Won(e) = o {
                    winners[p.0 as usize].push((who, *e));
                }
            }
        }
        let mut to_release_a = Vec::new();
        let mut to_release_b = Vec::new();
        for (p, w) in winners.iter().enumerate() {
            assert_eq!(w.len(), 1, "round {round} partition {p}: winners {w:?}");
            let (who, e) = w[0];
            assert!(
                e.0 > last_epoch[p],
                "round {round} partition {p}: epoch {e} after {}",
                last_epoch[p]
            );
            last_epoch[p] = e.0;
            // The loser saw the winner's exact value.
            let loser = if who == "a" { &rb } else { &ra };
            let seen = loser
                .iter()
                .find(|(q, _)| q.0 as usize == p)
                .map(|(_, o)| o.clone())
                .unwrap();
            let winner_id: InstanceId = who.parse().unwrap();
            assert_eq!(seen, AcquireOutcome::Held(lease_value(&winner_id, e)));
            if who == "a" {
                wins_a += 1;
                to_release_a.push((PartitionId(p as u32), e));
            } else {
                wins_b += 1;
                to_release_b.push((PartitionId(p as u32), e));
            }
        }
        // Releasing someone else's lease does nothing; our own, everything.
        let wrong = scripts
            .release(&mut ca, &keys, &a, &to_release_b)
            .await
            .unwrap();
        assert!(wrong.iter().all(|ok| !ok));
        assert!(scripts
            .release(&mut ca, &keys, &a, &to_release_a)
            .await
            .unwrap()
            .iter()
            .all(|ok| *ok));
        assert!(scripts
            .release(&mut cb, &keys, &b, &to_release_b)
            .await
            .unwrap()
            .iter()
            .all(|ok| *ok));
    }
    eprintln!("300 rounds x 16 partitions: a won {wins_a}, b won {wins_b}");
    assert!(
        wins_a > 0 && wins_b > 0,
        "both contenders should win sometimes"
    );
}

#[tokio::test]
async fn renew_only_extends_our_own_lease_at_our_epoch() {
    let server = redis();
    let keys = Keys::new("renew");
    let a: InstanceId = "a".parse().unwrap();
    let b: InstanceId = "b".parse().unwrap();
    let mut con = connect(&server).await;
    let s = LeaseScripts::new();
    let p = PartitionId(3);
    let won = s
        .acquire(&mut con, &keys, &a, &[p], Duration::from_millis(300))
        .await
        .unwrap();
    let AcquireOutcome::Won(e) = won[0].1 else {
        panic!("{won:?}")
    };
    assert_eq!(
        s.renew(&mut con, &keys, &a, &[(p, e)], TTL).await.unwrap(),
        vec![Some(true)]
    );
    assert_eq!(
        s.renew(&mut con, &keys, &a, &[(p, Epoch(e.0 + 1))], TTL)
            .await
            .unwrap(),
        vec![Some(false)]
    );
    assert_eq!(
        s.renew(&mut con, &keys, &b, &[(p, e)], TTL).await.unwrap(),
        vec![Some(false)]
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(keys.lease(p))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(pttl > 1000, "renew set the new TTL: {pttl}");
    // After a release the next acquisition takes a larger epoch.
    assert_eq!(
        s.release(&mut con, &keys, &a, &[(p, e)]).await.unwrap(),
        vec![true]
    );
    let again = s.acquire(&mut con, &keys, &b, &[p], TTL).await.unwrap();
    assert!(matches!(again[0].1, AcquireOutcome::Won(e2) if e2 > e));
    // A renew after the lease moved on is refused.
    assert_eq!(
        s.renew(&mut con, &keys, &a, &[(p, e)], TTL).await.unwrap(),
        vec![Some(false)]
    );
}

#[tokio::test]
async fn scripts_survive_a_script_flush() {
    let server = redis();
    let keys = Keys::new("flush");
    let a: InstanceId = "a".parse().unwrap();
    let mut con = connect(&server).await;
    let s = LeaseScripts::new();
    s.acquire(&mut con, &keys, &a, &[PartitionId(0)], TTL)
        .await
        .unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    // NOSCRIPT is handled by loading the script again.
    let r = s
        .acquire(&mut con, &keys, &a, &[PartitionId(1)], TTL)
        .await
        .unwrap();
    assert!(matches!(r[0].1, AcquireOutcome::Won(_)));
}

#[tokio::test]
async fn foreign_data_under_lease_keys_is_left_alone() {
    let server = redis();
    let keys = Keys::new("junk");
    let a: InstanceId = "a".parse().unwrap();
    let mut con = connect(&server).await;
    let s = LeaseScripts::new();
    let _: () = redis::cmd("SET")
        .arg(keys.lease(PartitionId(0)))
        .arg("garbage")
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(keys.lease(PartitionId(1)))
        .arg("x")
        .arg("y")
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(keys.lease(PartitionId(2)))
        .arg(&[0xffu8, 0xfe][..])
        .query_async(&mut con)
        .await
        .unwrap();
    let parts: Vec<PartitionId> = (0..4).map(PartitionId).collect();
    let r = s.acquire(&mut con, &keys, &a, &parts, TTL).await.unwrap();
    assert!(matches!(&r[0].1, AcquireOutcome::Held(v) if v == "garbage"));
    assert!(matches!(&r[1].1, AcquireOutcome::Held(v) if v == "?"));
    assert!(matches!(&r[2].1, AcquireOutcome::Held(_)));
    let AcquireOutcome::Won(e) = r[3].1 else {
        panic!("{r:?}")
    };
    // Renew and release skip the foreign keys and still do their job.
    let held = [(PartitionId(1), Epoch(1)), (PartitionId(3), e)];
    assert_eq!(
        s.renew(&mut con, &keys, &a, &held, TTL).await.unwrap(),
        vec![Some(false), Some(true)]
    );
    assert_eq!(
        s.release(&mut con, &keys, &a, &held).await.unwrap(),
        vec![false, true]
    );
    let kind: String = redis::cmd("TYPE")
        .arg(keys.lease(PartitionId(1)))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(kind, "hash", "foreign data untouched");
}
