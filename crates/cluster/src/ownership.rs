//! The local ownership view: partition → owner and epoch, plus the live
//! members. Immutable snapshots behind an `Arc`, swapped by the runtime and
//! read cheaply by the data path (one clone per batch); a `watch` channel
//! carries the version so readers can wait for changes.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::sync::watch;

use super::membership::MemberInfo;
use crate::ids::{Epoch, InstanceId, PartitionId};

/// Who owns one partition, as this instance knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionOwner {
    /// This instance, at `epoch`, until its local validity ends.
    Me {
        /// Fencing token.
        epoch: Epoch,
        /// End of local validity (monotonic clock).
        valid_until: Instant,
    },
    /// Another instance.
    Other {
        /// Owner.
        instance: InstanceId,
        /// Its epoch.
        epoch: Epoch,
    },
    /// Nobody, or a handover is in flight: hold work for it.
    Unknown,
}

/// One immutable snapshot of the ownership view.
#[derive(Debug, Clone)]
pub struct OwnershipView {
    version: u64,
    owners: Vec<PartitionOwner>,
    members: Vec<MemberInfo>,
}

static UNKNOWN: PartitionOwner = PartitionOwner::Unknown;

impl OwnershipView {
    pub(crate) fn new(partitions: usize) -> Self {
        Self {
            version: 0,
            owners: vec![PartitionOwner::Unknown; partitions],
            members: Vec::new(),
        }
    }

    /// Version; bumps on every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The owner of `p` (`Unknown` for out-of-range partitions).
    pub fn owner(&self, p: PartitionId) -> &PartitionOwner {
        self.owners.get(p.0 as usize).unwrap_or(&UNKNOWN)
    }

    /// `Some(epoch)` only if this instance holds `p` and its local lease
    /// validity has not passed `now`.
    pub fn owned_epoch(&self, p: PartitionId, now: Instant) -> Option<Epoch> {
        match self.owner(p) {
            PartitionOwner::Me { epoch, valid_until } if now < *valid_until => Some(*epoch),
            _ => None,
        }
    }

    /// All owners, indexed by partition.
    pub fn owners(&self) -> &[PartitionOwner] {
        &self.owners
    }

    /// Live members with their HTTP addresses.
    pub fn members(&self) -> &[MemberInfo] {
        &self.members
    }

    /// Partitions this instance holds validly at `now`.
    pub fn owned_count(&self, now: Instant) -> usize {
        (0..self.owners.len())
            .filter(|&p| self.owned_epoch(PartitionId(p as u32), now).is_some())
            .count()
    }
}

/// The shared cell the runtime publishes views into.
#[derive(Debug)]
pub(crate) struct ViewCell {
    current: RwLock<Arc<OwnershipView>>,
    version: watch::Sender<u64>,
}

impl ViewCell {
    pub(crate) fn new(partitions: usize) -> Self {
        Self {
            current: RwLock::new(Arc::new(OwnershipView::new(partitions))),
            version: watch::Sender::new(0),
        }
    }

    pub(crate) fn get(&self) -> Arc<OwnershipView> {
        match self.current.read() {
            Ok(v) => Arc::clone(&v),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Applies `edit` to a copy of the current view and publishes it if it changed.
    pub(crate) fn update(&self, edit: impl FnOnce(&mut Vec<PartitionOwner>, &mut Vec<MemberInfo>)) {
        let mut next = (*self.get()).clone();
        edit(&mut next.owners, &mut next.members);
        let cur = self.get();
        if next.owners == cur.owners && next.members == cur.members {
            return;
        }
        next.version = cur.version + 1;
        let version = next.version;
        match self.current.write() {
            Ok(mut slot) => *slot = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        self.version.send_replace(version);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn owned_epoch_respects_local_validity() {
        let cell = ViewCell::new(4);
        let now = Instant::now();
        cell.update(|o, _| {
            o[1] = PartitionOwner::Me {
                epoch: Epoch(3),
                valid_until: now + Duration::from_secs(1),
            };
            o[2] = PartitionOwner::Other {
                instance: "b".parse().unwrap(),
                epoch: Epoch(9),
            };
        });
        let v = cell.get();
        assert_eq!(v.version(), 1);
        assert_eq!(v.owned_epoch(PartitionId(1), now), Some(Epoch(3)));
        assert_eq!(
            v.owned_epoch(PartitionId(1), now + Duration::from_secs(2)),
            None
        );
        assert_eq!(v.owned_epoch(PartitionId(2), now), None);
        assert_eq!(v.owner(PartitionId(99)), &PartitionOwner::Unknown);
        // No change, no new version.
        cell.update(|_, _| {});
        assert_eq!(cell.get().version(), 1);
        assert_eq!(*cell.subscribe().borrow(), 1);
    }
}
