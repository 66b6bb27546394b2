//! The kinds of lock beyond Dapr's one (`../shared/KINDS.md`, docs/contract.md): shared holders
//! with an optional limit (a read lock, a counting semaphore) and reentrant holds. Dapr's
//! TryLockAlpha1 is the plain kind: exclusive, not reentrant.
//!
//! The rules every store keeps alike: one mode per key at a time (a request of the other mode
//! sees the key held); each holder has its own deadline by the store's clock; a shared key
//! remembers the limit its holders took it with, and a request with another limit is refused
//! rather than silently changing how many may hold it; a reentrant request in the other mode
//! than its owner holds is refused at once, since an upgrade would wait on itself.

use std::time::Duration;

/// Whether other holders may hold the key at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Mode {
    /// One holder excludes every other: Dapr's lock, a write lock.
    #[default]
    Exclusive,
    /// Holders of this mode coexist (up to the key's limit): a read lock, a semaphore.
    Shared,
}

impl Mode {
    /// The name on the wire (`LockMode` in the proto, `"mode"` over HTTP).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Exclusive => "EXCLUSIVE",
            Mode::Shared => "SHARED",
        }
    }
}

/// What an acquire asks for besides its key, owner and time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kind {
    pub(crate) mode: Mode,
    /// `Mode::Shared` only: at most this many holders at once; 0 means no limit.
    pub(crate) limit: u32,
    /// The owner may take the key again while it holds it: one more hold, the same fencing
    /// token, the expiry the longer of the remaining and the requested.
    pub(crate) reentrant: bool,
}

impl Kind {
    /// Dapr's lock: exclusive, not reentrant. Every store does this kind.
    pub const PLAIN: Kind = Kind {
        mode: Mode::Exclusive,
        limit: 0,
        reentrant: false,
    };

    pub fn shared(limit: u32) -> Kind {
        Kind {
            mode: Mode::Shared,
            limit,
            reentrant: false,
        }
    }

    pub fn reentrant(self) -> Kind {
        Kind {
            reentrant: true,
            ..self
        }
    }

    pub(crate) fn is_plain(&self) -> bool {
        *self == Kind::PLAIN
    }
}

/// Why a store refused an acquire for another reason than the key being held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The key's shared holders took it with another limit (`held`).
    LimitMismatch { held: u32 },
    /// The owner already holds the key in the other mode, and asked reentrantly.
    ModeConflict { held: Mode },
}

/// One holder of a key: the only one of an exclusive lock, one of a shared lock's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) owner: String,
    /// Time left before this holder's place expires, by the store's clock.
    pub(crate) expires_in: Duration,
    pub(crate) fencing_token: Option<u64>,
    /// How many times the owner holds it (more than 1 only when taken reentrantly).
    pub(crate) holds: u32,
}

/// What a release did: Dapr's answer, and the holds the owner still has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub(crate) outcome: super::OwnerChecked,
    /// The owner's holds after this release: 0 once the owner no longer holds the key.
    pub(crate) holds_left: u32,
}
