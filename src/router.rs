//! The routing decision for one tick: apply here, forward to the owner, or
//! hold until the owner is known. Pure, so every case is unit-tested.

use crate::engine::PartitionStatus;
use crate::tick::{Epoch, InstanceId};

/// What the cluster's ownership view says about a partition right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerHint<'a> {
    /// This instance holds a valid lease at this epoch.
    Me(Epoch),
    /// Another instance holds it.
    Other(&'a InstanceId),
    /// Nobody, or a handover is in flight, or our own lease may have lapsed.
    Unknown,
}

/// Where a tick goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// To the local engine.
    Local,
    /// To the owner's inbox.
    Forward(&'a InstanceId),
    /// Into the bounded hold buffer until the view changes.
    Hold,
}

/// Decides where a tick of a partition goes, from the engine's status and
/// the ownership view.
///
/// The engine is the authority on what is processed here, the view on who
/// else owns what; a lease that lapsed locally (view no longer `Me` at the
/// engine's epoch) stops local processing at once, even before the engine
/// hears it was lost.
pub fn route<'a>(status: PartitionStatus, owner: OwnerHint<'a>) -> Route<'a> {
    match (status, owner) {
        (PartitionStatus::Active(e) | PartitionStatus::Loading(e), OwnerHint::Me(v)) if e == v => {
            Route::Local
        }
        (PartitionStatus::NotOwned, OwnerHint::Other(id)) => Route::Forward(id),
        // Ours by the engine but not (or no longer) by the view, ours by the
        // view but not yet installed in the engine, or nobody's: wait.
        _ => Route::Hold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cover_every_combination() {
        let other: InstanceId = "p2".parse().unwrap();
        let e = Epoch(4);
        use PartitionStatus::*;
        assert_eq!(route(Active(e), OwnerHint::Me(e)), Route::Local);
        assert_eq!(route(Loading(e), OwnerHint::Me(e)), Route::Local);
        assert_eq!(
            route(NotOwned, OwnerHint::Other(&other)),
            Route::Forward(&other)
        );
        // Lapsed locally: the view says unknown while the engine still has it.
        assert_eq!(route(Active(e), OwnerHint::Unknown), Route::Hold);
        // Epoch mismatch: re-acquired, engine not yet told.
        assert_eq!(route(Active(e), OwnerHint::Me(Epoch(5))), Route::Hold);
        // Taken by someone else while the engine still has it: never apply.
        assert_eq!(route(Active(e), OwnerHint::Other(&other)), Route::Hold);
        assert_eq!(route(NotOwned, OwnerHint::Me(e)), Route::Hold);
        assert_eq!(route(NotOwned, OwnerHint::Unknown), Route::Hold);
    }
}
