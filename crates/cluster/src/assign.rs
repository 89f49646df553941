//! The assignment decision: which live member should hold which partition,
//! and what this instance should do about it. Pure functions over plain
//! data, deterministic on every instance.
//!
//! # Algorithm: quota-capped sticky rendezvous
//!
//! With P partitions and N live members, `base = P / N` and the `P mod N`
//! members that currently hold the most partitions (ties: smaller id) get
//! `base + 1`; the quotas sum to P, so max-min is at most 1 once settled.
//! Every member keeps its current partitions up to its quota (those with
//! the highest rendezvous score first). The remaining partitions (free,
//! held by non-members, or over quota) go, in ascending order, to the member
//! with the highest rendezvous score that still has room. A settled cluster
//! is a fixed point (every member at quota keeps everything), and a join or
//! leave moves only about P/N partitions: the newcomer's quota comes out of
//! the others' surplus, a leaver's partitions fill the others' room.
//!
//! The rendezvous score is a fixed 64-bit hash (FNV-1a then a SplitMix64
//! finaliser) of the partition and member id, so every instance (and every
//! build) computes the same ranking.

use crate::ids::{InstanceId, PartitionId};

/// Rendezvous score of `member` for partition `p` (higher wins).
pub fn score(p: PartitionId, member: &InstanceId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in p.0.to_le_bytes().iter().chain(member.as_str().as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // SplitMix64 finaliser: FNV alone mixes the last bytes poorly.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The target owner of every partition, given the live `members` and the
/// `current` owner of each partition (`current.len()` = P). Owners that are
/// not live members count as no owner. Empty `members`: all `None`.
pub fn assign(members: &[InstanceId], current: &[Option<InstanceId>]) -> Vec<Option<InstanceId>> {
    let p_count = current.len();
    let mut members: Vec<&InstanceId> = members.iter().collect();
    members.sort();
    members.dedup();
    let n = members.len();
    if n == 0 {
        return vec![None; p_count];
    }
    let index_of = |id: &InstanceId| members.binary_search(&id).ok();
    let mut counts = vec![0usize; n];
    for owner in current.iter().flatten() {
        if let Some(i) = index_of(owner) {
            counts[i] += 1;
        }
    }
    // Quotas: the (P mod N) members with the most partitions get one more.
    let base = p_count / n;
    let extra = p_count % n;
    let mut by_load: Vec<usize> = (0..n).collect();
    by_load.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(members[a].cmp(members[b])));
    let mut quota = vec![base; n];
    for &i in by_load.iter().take(extra) {
        quota[i] += 1;
    }
    // Keep current partitions up to the quota, best score first.
    let mut target: Vec<Option<usize>> = vec![None; p_count];
    let mut held: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (p, owner) in current.iter().enumerate() {
        if let Some(i) = owner.as_ref().and_then(index_of) {
            held[i].push(p);
        }
    }
    let mut load = vec![0usize; n];
    for (i, parts) in held.iter_mut().enumerate() {
        let id = members[i];
        parts.sort_by_key(|&p| std::cmp::Reverse((score(pid(p), id), std::cmp::Reverse(p))));
        for &p in parts.iter().take(quota[i]) {
            target[p] = Some(i);
            load[i] += 1;
        }
    }
    // Everything else by rendezvous rank to the best member with room.
    let mut ranked: Vec<usize> = (0..n).collect();
    for (p, slot) in target.iter_mut().enumerate() {
        if slot.is_some() {
            continue;
        }
        ranked
            .sort_by_key(|&i| std::cmp::Reverse((score(pid(p), members[i]), std::cmp::Reverse(i))));
        if let Some(&i) = ranked.iter().find(|&&i| load[i] < quota[i]) {
            *slot = Some(i);
            load[i] += 1;
        }
    }
    target
        .into_iter()
        .map(|t| t.map(|i| members[i].clone()))
        .collect()
}

fn pid(p: usize) -> PartitionId {
    PartitionId(u32::try_from(p).unwrap_or(u32::MAX))
}

/// What this instance knows about one partition when it plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// No lease. `orphaned`: free for longer than the grace period.
    Free {
        /// Free for longer than the grace period.
        orphaned: bool,
    },
    /// Held by this instance and in use.
    Mine,
    /// Held by this instance, handover in progress.
    Releasing,
    /// Held by another instance (live member or not).
    Other(InstanceId),
    /// Held under a lease value that names no valid instance.
    Unreadable,
}

/// One step this instance should take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Try to acquire the free partition.
    Acquire(PartitionId),
    /// Hand the partition over to `to` (a live member): flush, release, announce.
    HandOver {
        /// Partition.
        partition: PartitionId,
        /// Its target owner.
        to: InstanceId,
    },
}

/// Decides this instance's actions from the live `members` (which should
/// include `me`) and the state of every partition.
///
/// - free and targeted to me: acquire at once;
/// - free for longer than the grace (orphaned): acquire, even if targeted
///   elsewhere (the target may be slow or gone; a later step hands it on);
/// - mine and targeted to another live member: hand over;
/// - anything else: nothing.
pub fn plan(me: &InstanceId, members: &[InstanceId], slots: &[Slot]) -> Vec<Action> {
    let current: Vec<Option<InstanceId>> = slots
        .iter()
        .map(|s| match s {
            Slot::Mine => Some(me.clone()),
            Slot::Other(id) => Some(id.clone()),
            Slot::Free { .. } | Slot::Releasing | Slot::Unreadable => None,
        })
        .collect();
    let target = assign(members, &current);
    let mut actions = Vec::new();
    for (p, (slot, target)) in slots.iter().zip(target).enumerate() {
        let partition = pid(p);
        match (slot, target) {
            (Slot::Free { .. }, Some(t)) if &t == me => actions.push(Action::Acquire(partition)),
            (Slot::Free { orphaned: true }, _) => actions.push(Action::Acquire(partition)),
            (Slot::Mine, Some(t)) if &t != me => {
                actions.push(Action::HandOver { partition, to: t })
            }
            _ => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<InstanceId> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn counts(members: &[InstanceId], target: &[Option<InstanceId>]) -> Vec<usize> {
        members
            .iter()
            .map(|m| target.iter().filter(|t| t.as_ref() == Some(m)).count())
            .collect()
    }

    fn settle(members: &[InstanceId], start: Vec<Option<InstanceId>>) -> Vec<Option<InstanceId>> {
        let mut cur = start;
        for _ in 0..5 {
            let next = assign(members, &cur);
            if next == cur {
                return cur;
            }
            cur = next;
        }
        panic!("assignment did not settle");
    }

    #[test]
    fn balanced_from_scratch_for_many_sizes() {
        for n in 1..=12 {
            for p in [1usize, 7, 64, 100, 256] {
                let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
                let members: Vec<InstanceId> = names.iter().map(|s| s.parse().unwrap()).collect();
                let t = assign(&members, &vec![None; p]);
                assert!(
                    t.iter().all(Option::is_some),
                    "everything assigned (n={n}, p={p})"
                );
                let c = counts(&members, &t);
                let (max, min) = (c.iter().max().unwrap(), c.iter().min().unwrap());
                assert!(max - min <= 1, "n={n} p={p} counts={c:?}");
            }
        }
    }

    #[test]
    fn settled_assignment_is_a_fixed_point() {
        let m = ids(&["a", "b", "c"]);
        let t = assign(&m, &vec![None; 64]);
        assert_eq!(assign(&m, &t), t);
    }

    #[test]
    fn deterministic_regardless_of_member_order() {
        let a = ids(&["x", "y", "z", "w"]);
        let b = ids(&["w", "z", "y", "x"]);
        let cur: Vec<Option<InstanceId>> = (0..64)
            .map(|i| {
                if i % 3 == 0 {
                    Some(a[i % 4].clone())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(assign(&a, &cur), assign(&b, &cur));
    }

    #[test]
    fn join_moves_about_p_over_n() {
        let three = ids(&["p1", "p2", "p3"]);
        let before = settle(&three, vec![None; 64]);
        let four = ids(&["p1", "p2", "p3", "p4"]);
        let after = settle(&four, before.clone());
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert!(moved <= 17, "moved {moved}");
        let c = counts(&four, &after);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
    }

    #[test]
    fn leave_moves_only_the_leavers_partitions() {
        let four = ids(&["p1", "p2", "p3", "p4"]);
        let before = settle(&four, vec![None; 64]);
        let three = ids(&["p1", "p2", "p4"]);
        let after = settle(&three, before.clone());
        for (b, a) in before.iter().zip(&after) {
            if b.as_ref().map(|x| x.as_str()) != Some("p3") {
                assert_eq!(b, a, "a survivor's partition moved");
            }
        }
        let c = counts(&three, &after);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
    }

    #[test]
    fn non_members_count_as_no_owner() {
        let m = ids(&["a", "b"]);
        let ghost: InstanceId = "ghost".parse().unwrap();
        let t = assign(&m, &vec![Some(ghost); 10]);
        assert_eq!(counts(&m, &t), vec![5, 5]);
    }

    #[test]
    fn no_members_no_targets() {
        assert_eq!(assign(&[], &vec![None; 4]), vec![None; 4]);
    }

    #[test]
    fn plan_acquires_targeted_and_orphaned_and_hands_over_surplus() {
        let m = ids(&["a", "b"]);
        let me = &m[0];
        // Four free partitions, not orphaned: acquire exactly those targeted to me.
        let slots = vec![Slot::Free { orphaned: false }; 4];
        let target = assign(&m, &[None, None, None, None]);
        let acts = plan(me, &m, &slots);
        let want: Vec<Action> = target
            .iter()
            .enumerate()
            .filter(|(_, t)| t.as_ref() == Some(me))
            .map(|(p, _)| Action::Acquire(PartitionId(p as u32)))
            .collect();
        assert_eq!(acts, want);
        // Orphaned: acquire even if targeted to b.
        let slots = vec![Slot::Free { orphaned: true }; 4];
        assert_eq!(plan(me, &m, &slots).len(), 4);
        // Holding all four with b alive: hand two over to b.
        let slots = vec![Slot::Mine; 4];
        let acts = plan(me, &m, &slots);
        assert_eq!(acts.len(), 2);
        assert!(acts
            .iter()
            .all(|a| matches!(a, Action::HandOver { to, .. } if to.as_str() == "b")));
        // Alone: keep everything.
        assert!(plan(me, &m[..1], &slots).is_empty());
        // Releasing and Other: nothing to do.
        let slots = vec![Slot::Releasing, Slot::Other(m[1].clone())];
        let acts = plan(me, &m, &slots);
        assert!(
            acts.iter().all(|a| matches!(a, Action::Acquire(_))),
            "{acts:?}"
        );
    }

    mod prop {
        use proptest::prelude::*;

        use super::super::*;

        fn members(n: usize) -> Vec<InstanceId> {
            (0..n).map(|i| format!("m{i}").parse().unwrap()).collect()
        }

        proptest! {
            #[test]
            fn balanced_sticky_and_deterministic(
                n in 1usize..9,
                owners in proptest::collection::vec(proptest::option::of(0usize..12), 1..200),
                rotate in 0usize..9,
            ) {
                let m = members(n);
                // Owner indices >= n name instances that are not members.
                let ghosts: Vec<InstanceId> = (0..12).map(|i| format!("ghost{i}").parse().unwrap()).collect();
                let current: Vec<Option<InstanceId>> = owners
                    .iter()
                    .map(|o| o.map(|i| if i < n { m[i].clone() } else { ghosts[i].clone() }))
                    .collect();
                let t = assign(&m, &current);
                // Everything assigned, to members, balanced.
                prop_assert!(t.iter().all(|x| x.as_ref().is_some_and(|id| m.contains(id))));
                let counts: Vec<usize> = m.iter().map(|id| t.iter().filter(|x| x.as_ref() == Some(id)).count()).collect();
                prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
                // Sticky: every member keeps as many of its partitions as its quota allows.
                let base = current.len() / n;
                for (i, id) in m.iter().enumerate() {
                    let had = current.iter().filter(|x| x.as_ref() == Some(id)).count();
                    let kept = current.iter().zip(&t).filter(|(c, x)| c.as_ref() == Some(id) && x.as_ref() == Some(id)).count();
                    prop_assert!(kept >= had.min(base), "member {i} had {had}, kept {kept}, base {base}");
                    prop_assert_eq!(kept, had.min(counts[i]));
                }
                // Deterministic whatever the member order, and a fixed point.
                let mut shuffled = m.clone();
                shuffled.rotate_left(rotate % n);
                prop_assert_eq!(&assign(&shuffled, &current), &t);
                prop_assert_eq!(&assign(&m, &t), &t);
            }
        }
    }
}
