//! Multi-locks (`resourceIds`, `../shared/KINDS.md` rule 6): several keys taken all or none,
//! under one deadline, renewed together and released as a whole; losing any key loses the
//! whole lock.
//!
//! The core hands a store the keys sorted and without repeats, so two multi-locks over
//! overlapping keys always meet on their first common key, whatever order their callers named
//! them in, and never hold one key each while waiting for the other's. A store that can take
//! every key in one operation does (`Capabilities::multi_atomic`); the others get this
//! module's way: one key after another in sorted order, and on the first key refused, every
//! key already taken given back, so a failed try leaves nothing held once it has answered.
//! A waiter never holds keys while it waits: each attempt is all or none.

use std::time::Duration;

use super::{Conflict, Grant, Kind, LockStore, OwnerChecked, Released, StoreError, TryLockOutcome};

/// The answer to a multi-lock's try: a grant per key, in the keys' order, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManyOutcome {
    Granted(Vec<Grant>),
    /// Some key is held (possibly by the same owner); nothing was taken.
    Held,
    /// Some key's holders refuse the request whatever the wait (`Conflict`); nothing taken.
    Refused(Conflict),
}

impl ManyOutcome {
    /// A refusal of one key as the refusal of the whole; a grant as one key's grant.
    pub(crate) fn of_one(outcome: TryLockOutcome) -> ManyOutcome {
        match outcome {
            TryLockOutcome::Granted(grant) => ManyOutcome::Granted(vec![grant]),
            TryLockOutcome::Held => ManyOutcome::Held,
            TryLockOutcome::Refused(conflict) => ManyOutcome::Refused(conflict),
        }
    }
}

/// Whether a key's answer lets a multi-lock's try go on to the next key: for a store that
/// tries the keys in turn inside one transaction and rolls it back on the first refusal.
pub(crate) fn granted(outcome: &TryLockOutcome) -> bool {
    matches!(outcome, TryLockOutcome::Granted(_))
}

/// A multi-lock's answer from its keys' answers in turn, up to the first refusal (`granted`).
pub(crate) fn outcome(answers: Vec<TryLockOutcome>) -> ManyOutcome {
    let mut grants = Vec::with_capacity(answers.len());
    for answer in answers {
        match answer {
            TryLockOutcome::Granted(grant) => grants.push(grant),
            refused => return ManyOutcome::of_one(refused),
        }
    }
    ManyOutcome::Granted(grants)
}

/// `LockStore::acquire_many` for a store without one operation for it: each key in turn,
/// and on a key refused (or a failure) what was taken is given back before answering.
pub(crate) async fn in_sorted_order<S: LockStore + ?Sized>(
    store: &S,
    keys: &[String],
    owner: &str,
    ttl: Duration,
    kind: Kind,
) -> Result<ManyOutcome, StoreError> {
    debug_assert!(keys.windows(2).all(|two| two[0] < two[1]), "{keys:?}");
    let mut taken = Vec::with_capacity(keys.len());
    for key in keys {
        let outcome = match store.acquire(key, owner, ttl, kind).await {
            Ok(TryLockOutcome::Granted(grant)) => {
                taken.push(grant);
                continue;
            }
            Ok(refused) => Ok(ManyOutcome::of_one(refused)),
            Err(error) => Err(error),
        };
        give_back(store, &keys[..taken.len()], owner, &taken).await;
        return outcome;
    }
    Ok(ManyOutcome::Granted(taken))
}

/// Takes back the grants `grants` of `keys` (in the same order): a multi-lock's keys taken
/// before one was refused, or a whole multi-lock whose caller had gone. Never touches a
/// newer grant (`LockStore::take_back`). A key that can't be taken back frees at its expiry.
pub(crate) async fn give_back<S: LockStore + ?Sized>(
    store: &S,
    keys: &[String],
    owner: &str,
    grants: &[Grant],
) {
    for (key, grant) in keys.iter().zip(grants) {
        if let Err(error) = store.take_back(key, owner, *grant).await {
            tracing::warn!(key = %key, owner = %owner,
                "a key of a multi-lock not granted whole could not be given back; it frees \
                 at its expiry: {error}");
        }
    }
}

/// `LockStore::release_many` key by key: every key is tried even when one fails, so a
/// failure leaves as little held as it can; then the first failure is the answer.
pub(crate) async fn release_each<S: LockStore + ?Sized>(
    store: &S,
    keys: &[String],
    owner: &str,
    all_holds: bool,
) -> Result<Released, StoreError> {
    let mut each = Vec::with_capacity(keys.len());
    let mut failure = None;
    for key in keys {
        match store.release(key, owner, all_holds).await {
            Ok(released) => each.push(released),
            Err(error) => failure = failure.or(Some(error)),
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(released_whole(&each)),
    }
}

/// The release of a multi-lock as one answer from its keys' answers: released when the owner
/// held any key (a key already lost to an expiry or a forced release is no reason to say
/// otherwise), else held by others when another owner holds any; the holds left are the most
/// any key has left.
pub(crate) fn released_whole(each: &[Released]) -> Released {
    let any = |outcome| each.iter().any(|released| released.outcome == outcome);
    let outcome = if any(OwnerChecked::Applied) {
        OwnerChecked::Applied
    } else if any(OwnerChecked::HeldByOther) {
        OwnerChecked::HeldByOther
    } else {
        OwnerChecked::NotHeld
    };
    let holds_left = each.iter().map(|r| r.holds_left).max().unwrap_or(0);
    Released {
        outcome,
        holds_left,
    }
}

/// The renewal of a multi-lock from its keys' answers: applied only when every key was, since
/// losing any key loses the whole lock; else the first key's loss.
pub(crate) fn renewed_whole(each: &[OwnerChecked]) -> OwnerChecked {
    each.iter()
        .copied()
        .find(|outcome| *outcome != OwnerChecked::Applied)
        .unwrap_or(OwnerChecked::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn released(outcome: OwnerChecked, holds_left: u32) -> Released {
        Released {
            outcome,
            holds_left,
        }
    }

    #[test]
    fn a_whole_is_released_when_any_key_was_and_renewed_only_when_every_key_was() {
        use OwnerChecked::*;
        let whole = released_whole(&[released(NotHeld, 0), released(Applied, 1)]);
        assert_eq!(whole, released(Applied, 1));
        let whole = released_whole(&[released(NotHeld, 0), released(HeldByOther, 0)]);
        assert_eq!(whole, released(HeldByOther, 0));
        assert_eq!(released_whole(&[released(NotHeld, 0)]).outcome, NotHeld);
        assert_eq!(renewed_whole(&[Applied, Applied]), Applied);
        assert_eq!(renewed_whole(&[Applied, HeldByOther, NotHeld]), HeldByOther);
    }
}
