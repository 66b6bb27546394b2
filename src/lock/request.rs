//! What the front doors ask of the core, as typed requests, and every check of a request, in
//! the order of the error table (docs/contract.md §2): a request wrong in two ways gets the
//! earlier row's error. The doors only parse their protocol; a check written here is never
//! written again in a door, so HTTP and gRPC answer a bad request alike.

use std::sync::Arc;
use std::time::Duration;

use super::{ApiError, ErrorKind, Kind, LoadedStore, LockService, Mode, Operation, Registry};

/// A lock as a request names it, with the time it is asked for: Dapr's TryLock, and renew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockRequest {
    /// The lock store's component name.
    pub(crate) store: String,
    pub(crate) resource_id: String,
    pub(crate) owner: String,
    pub(crate) expiry_in_seconds: i32,
}

/// Dapr's Unlock: a resource and the owner that releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnlockRequest {
    pub(crate) store: String,
    pub(crate) resource_id: String,
    pub(crate) owner: String,
}

/// A blocking acquire, and the start of a held session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcquireRequest {
    pub(crate) lock: LockRequest,
    /// How long to wait while someone else holds the lock (see `wait_timeout`).
    pub(crate) wait: Duration,
    /// Refuses a store that can't issue fencing tokens.
    pub(crate) require_fencing: bool,
    /// Shared, limited, reentrant (`kind.rs`); Dapr's plain lock by default.
    pub(crate) kind: Kind,
    /// A multi-lock's resources (`multi.rs`), every one or none; `lock.resource_id` is then
    /// empty. Empty for a lock of one resource.
    pub(crate) resource_ids: Vec<String>,
}

/// dlock's Release: one of the owner's holds, or all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleaseRequest {
    pub(crate) unlock: UnlockRequest,
    pub(crate) all_holds: bool,
    /// The holds the owner has before this release, when the client says (see `service.rs`'s
    /// `release_holds`).
    pub(crate) expected_holds: Option<u32>,
    /// A multi-lock's resources, released as a whole; `unlock.resource_id` is then empty.
    pub(crate) resource_ids: Vec<String>,
}

/// A request that passed the checks: the store it names, the key it built, the owner and the
/// time to live. A session keeps it, so what it renews is what was checked, on the version of
/// the store it was checked against.
pub(crate) struct CheckedLock {
    pub(crate) store: Arc<LoadedStore>,
    /// The resource id the request named, for the events this lock's fate publishes.
    pub(crate) resource_id: String,
    pub(crate) key: String,
    pub(crate) owner: String,
    pub(crate) ttl: Duration,
    pub(crate) kind: Kind,
    /// A multi-lock's keys, sorted, each with its resource id; `key` and `resource_id` are
    /// the first. Empty for a lock of one key.
    pub(crate) many: Vec<Named>,
}

/// A key of a multi-lock, and the resource id it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) key: String,
    pub(crate) resource_id: String,
}

impl CheckedLock {
    /// The keys the lock takes: a multi-lock's every key, or the one.
    pub(crate) fn keys(&self) -> Vec<String> {
        if self.many.is_empty() {
            vec![self.key.clone()]
        } else {
            self.many.iter().map(|named| named.key.clone()).collect()
        }
    }

    /// The resource ids the lock takes, in the order of `keys`.
    pub(crate) fn resource_ids(&self) -> Vec<&str> {
        if self.many.is_empty() {
            vec![&self.resource_id]
        } else {
            self.many.iter().map(|n| n.resource_id.as_str()).collect()
        }
    }
}

/// The wait a blocking acquire asks for, from the wire's milliseconds. A negative wait is
/// refused before every row of the table: a door checks it while it reads the request.
pub(crate) fn wait_timeout(wait_timeout_ms: i64) -> Result<Duration, ApiError> {
    let millis = u64::try_from(wait_timeout_ms)
        .map_err(|_| ApiError::new(ErrorKind::MalformedRequest, "WaitTimeoutMs is negative"))?;
    Ok(Duration::from_millis(millis))
}

impl LockService {
    /// Rows 1 to 6 for a request that names a lock and its time to live.
    pub(crate) fn check(
        &self,
        op: Operation,
        request: LockRequest,
    ) -> Result<CheckedLock, ApiError> {
        let ttl = expiry(&request.store, request.expiry_in_seconds)?;
        let (store, key) = self.locate(
            op,
            &request.store,
            &request.resource_id,
            Some(&request.owner),
        )?;
        Ok(CheckedLock {
            store,
            resource_id: request.resource_id,
            key,
            owner: request.owner,
            ttl,
            kind: Kind::PLAIN,
            many: Vec::new(),
        })
    }

    /// Rows 1 to 6, then the acquire's own: a limit on an exclusive lock, then fencing or a
    /// kind from a store that can't give it.
    pub(crate) fn check_acquire(&self, request: AcquireRequest) -> Result<CheckedLock, ApiError> {
        let kind = request.kind;
        if kind.mode == Mode::Exclusive && kind.limit != 0 {
            return Err(ApiError::new(
                ErrorKind::MalformedRequest,
                format!(
                    "Limit is set on an EXCLUSIVE request in lock store {}: a limit needs \
                     mode SHARED",
                    request.lock.store
                ),
            ));
        }
        let multi = !request.resource_ids.is_empty();
        let mut lock = if multi {
            self.check_many(request.lock, request.resource_ids)?
        } else {
            self.check(Operation::Acquire, request.lock)?
        };
        let can = lock.store.store.capabilities();
        let missing = [
            (
                request.require_fencing && !can.fencing,
                "issue fencing tokens",
            ),
            (
                kind.mode == Mode::Shared && !can.shared,
                "grant shared locks",
            ),
            (kind.limit != 0 && !can.limit, "limit shared holders"),
            (kind.reentrant && !can.reentrant, "grant reentrant locks"),
            (multi && !can.multi, "take several resources in one lock"),
        ];
        if let Some((_, what)) = missing.iter().find(|(missing, _)| *missing) {
            return Err(ApiError::new(
                ErrorKind::Unsupported,
                format!("lock store {} can't {what}", lock.store.name),
            ));
        }
        lock.kind = kind;
        Ok(lock)
    }

    /// A multi-lock's acquire: `lock` names no resource of its own, and each of
    /// `resource_ids` passes rows 1 to 6 as a lock of one would, then none is named twice. The
    /// keys come out sorted, so every multi-lock takes them in one order.
    fn check_many(
        &self,
        lock: LockRequest,
        resource_ids: Vec<String>,
    ) -> Result<CheckedLock, ApiError> {
        both_named(&lock.store, &lock.resource_id)?;
        let mut checked = Vec::with_capacity(resource_ids.len());
        for resource_id in resource_ids {
            let one = LockRequest {
                resource_id,
                ..lock.clone()
            };
            checked.push(self.check(Operation::Acquire, one)?);
        }
        checked.sort_by(|a, b| a.key.cmp(&b.key));
        let many = named_once(
            &lock.store,
            checked.iter().map(|c| (&c.key, &c.resource_id)),
        )?;
        let mut first = checked.swap_remove(0);
        first.many = many;
        Ok(first)
    }

    /// A multi-lock's release: each of `resource_ids` located as a lock of one is, none named
    /// twice, and the request naming no resource of its own. The keys come out sorted.
    pub(crate) fn locate_many(
        &self,
        op: Operation,
        unlock: &UnlockRequest,
        resource_ids: &[String],
    ) -> Result<(Arc<LoadedStore>, Vec<Named>), ApiError> {
        both_named(&unlock.store, &unlock.resource_id)?;
        let mut located = Vec::with_capacity(resource_ids.len());
        let mut store = None;
        for resource_id in resource_ids {
            let (found, key) = self.locate(op, &unlock.store, resource_id, Some(&unlock.owner))?;
            store = Some(found);
            located.push((key, resource_id));
        }
        located.sort();
        let many = named_once(&unlock.store, located.iter().map(|(k, r)| (k, *r)))?;
        // `resource_ids` is not empty, so a store was found.
        let store = store.ok_or_else(not_configured)?;
        Ok((store, many))
    }

    /// Rows 2 to 6, and the store key. Calls without an owner (inspect, force release) skip
    /// the owner's row.
    pub(crate) fn locate(
        &self,
        op: Operation,
        store_name: &str,
        resource_id: &str,
        owner: Option<&str>,
    ) -> Result<(Arc<LoadedStore>, String), ApiError> {
        let registry = self.registry();
        if registry.is_empty() {
            return Err(not_configured());
        }
        if resource_id.is_empty() {
            return Err(ApiError::new(
                ErrorKind::MalformedRequest,
                format!("ResourceId is empty in lock store {store_name}"),
            ));
        }
        if owner.is_some_and(str::is_empty) {
            return Err(ApiError::new(
                ErrorKind::MalformedRequest,
                format!("LockOwner is empty in lock store {store_name}"),
            ));
        }
        let store = find(&registry, store_name)?;
        let key = store
            .key_prefix
            .store_key(self.app_id(), &store.name, resource_id)
            .map_err(|detail| ApiError::failed(op, detail))?;
        Ok((store, key))
    }

    /// Rows 2 and 5 for a list, which names no resource, then its own: a store that can't
    /// list.
    pub(crate) fn check_list(&self, store_name: &str) -> Result<Arc<LoadedStore>, ApiError> {
        let store = find(&self.registry(), store_name)?;
        if !store.store.capabilities().listing {
            return Err(ApiError::new(
                ErrorKind::Unsupported,
                format!("lock store {store_name} can't list its locks"),
            ));
        }
        Ok(store)
    }
}

/// Rows 2 and 5: the named store, in the version of the registry the request is checked
/// against.
fn find(registry: &Registry, store_name: &str) -> Result<Arc<LoadedStore>, ApiError> {
    if registry.is_empty() {
        return Err(not_configured());
    }
    registry
        .get(store_name)
        .cloned()
        .ok_or_else(|| not_found(store_name, &registry.names()))
}

/// A multi-lock's own row: its resources are named in `resourceIds` alone.
fn both_named(store_name: &str, resource_id: &str) -> Result<(), ApiError> {
    if resource_id.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::MalformedRequest,
        format!(
            "ResourceId and ResourceIds are both set in lock store {store_name}: a multi-lock \
             names every resource in ResourceIds, and ResourceId stays empty"
        ),
    ))
}

/// A multi-lock's keys, sorted, as `Named`, once each checked to be named once.
fn named_once<'a>(
    store_name: &str,
    sorted: impl Iterator<Item = (&'a String, &'a String)>,
) -> Result<Vec<Named>, ApiError> {
    let mut many: Vec<Named> = Vec::new();
    for (key, resource_id) in sorted {
        if many.last().is_some_and(|last| &last.key == key) {
            return Err(ApiError::new(
                ErrorKind::MalformedRequest,
                format!("ResourceIds names {resource_id} twice in lock store {store_name}"),
            ));
        }
        many.push(Named {
            key: key.clone(),
            resource_id: resource_id.clone(),
        });
    }
    Ok(many)
}

/// Row 1.
fn expiry(store_name: &str, expiry_in_seconds: i32) -> Result<Duration, ApiError> {
    if expiry_in_seconds <= 0 {
        return Err(ApiError::new(
            ErrorKind::MalformedRequest,
            format!("ExpiryInSeconds is not positive in lock store {store_name}"),
        ));
    }
    Ok(Duration::from_secs(expiry_in_seconds as u64))
}

/// Row 5's error: Dapr's message, then the stores there are, so a typo is seen at once.
fn not_found(store_name: &str, loaded: &[&str]) -> ApiError {
    ApiError::new(
        ErrorKind::StoreNotFound,
        format!(
            "lock store {store_name} not found; the lock stores loaded are: {}",
            loaded.join(", ")
        ),
    )
}

fn not_configured() -> ApiError {
    ApiError::new(
        ErrorKind::StoreNotConfigured,
        "lock store is not configured",
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_double::DoubleStore;
    use super::super::{ReleaseRequest, UnlockRequest};
    use super::*;

    /// The rows of the error table, in order.
    #[derive(Debug, Clone, Copy)]
    enum Row {
        Expiry,
        NotConfigured,
        NoResource,
        NoOwner,
        UnknownStore,
        Separator,
    }

    fn error(row: Row, op: Operation, store: &str) -> ApiError {
        let malformed = |what: &str| {
            ApiError::new(
                ErrorKind::MalformedRequest,
                format!("{what} in lock store {store}"),
            )
        };
        match row {
            Row::Expiry => malformed("ExpiryInSeconds is not positive"),
            Row::NotConfigured => not_configured(),
            Row::NoResource => malformed("ResourceId is empty"),
            Row::NoOwner => malformed("LockOwner is empty"),
            Row::UnknownStore => not_found(store, &["store"]),
            Row::Separator => ApiError::failed(op, "input key/keyPrefix 'a||b' can't contain '||'"),
        }
    }

    /// Makes `op`'s call with the request's fields; only the error matters.
    async fn call(
        service: &LockService,
        op: Operation,
        (store, resource, owner, expiry): (&str, &str, &str, i32),
    ) -> Result<(), ApiError> {
        let lock = LockRequest {
            store: store.into(),
            resource_id: resource.into(),
            owner: owner.into(),
            expiry_in_seconds: expiry,
        };
        let acquire = |lock| AcquireRequest {
            lock,
            wait: Duration::ZERO,
            require_fencing: false,
            kind: Kind::PLAIN,
            resource_ids: Vec::new(),
        };
        let unlock = UnlockRequest {
            store: store.into(),
            resource_id: resource.into(),
            owner: owner.into(),
        };
        match op {
            Operation::TryLock => service.try_lock(lock).await.map(drop),
            Operation::Acquire => service.acquire(acquire(lock)).await.map(drop),
            Operation::Renew => service.renew(lock).await.map(drop),
            Operation::Release => {
                let release = ReleaseRequest {
                    unlock,
                    all_holds: false,
                    expected_holds: None,
                    resource_ids: Vec::new(),
                };
                service.release_holds(release).await.map(drop)
            }
            Operation::Unlock => service.unlock(unlock).await.map(drop),
            Operation::Inspect => service.inspect(store, resource).await.map(drop),
            Operation::ForceRelease => service.force_release(store, resource).await.map(drop),
            Operation::List => unreachable!("a list names no resource"),
        }
    }

    #[tokio::test]
    async fn a_request_wrong_in_several_ways_gets_the_earliest_rows_error() {
        use Operation::*;
        let configured = DoubleStore::default().service();
        let empty = LockService::new("app", Registry::default());
        const TIMED: &[Operation] = &[TryLock, Acquire, Renew];
        const OWNED: &[Operation] = &[TryLock, Acquire, Renew, Unlock, Release];
        const ALL: &[Operation] = &[
            TryLock,
            Acquire,
            Renew,
            Unlock,
            Release,
            Inspect,
            ForceRelease,
        ];
        // Each request is wrong from its row on, in every way the fields allow.
        let cases = [
            (&empty, ("nope", "", "", 0), Row::Expiry, TIMED),
            (&empty, ("nope", "", "", -5), Row::Expiry, TIMED),
            (&empty, ("nope", "", "", 5), Row::NotConfigured, ALL),
            (&configured, ("nope", "", "", 5), Row::NoResource, ALL),
            (&configured, ("nope", "r", "", 5), Row::NoOwner, OWNED),
            // Inspect and force release name no owner: the owner's row is skipped.
            (
                &configured,
                ("nope", "r", "", 5),
                Row::UnknownStore,
                &[Inspect, ForceRelease],
            ),
            (
                &configured,
                ("nope", "a||b", "o", 5),
                Row::UnknownStore,
                ALL,
            ),
            (&configured, ("store", "a||b", "o", 5), Row::Separator, ALL),
        ];
        for (service, request, row, ops) in cases {
            for &op in ops {
                let expected = error(row, op, request.0);
                assert_eq!(
                    call(service, op, request).await,
                    Err(expected),
                    "{op:?} {request:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_calls_own_rows_come_after_the_table() {
        let service = DoubleStore::default().service();
        let fenced = |resource: &str| AcquireRequest {
            lock: LockRequest {
                store: "store".into(),
                resource_id: resource.into(),
                owner: "o".into(),
                expiry_in_seconds: 5,
            },
            wait: Duration::ZERO,
            require_fencing: true,
            kind: Kind::PLAIN,
            resource_ids: Vec::new(),
        };
        let answer = service.acquire(fenced("a||b")).await;
        assert_eq!(
            answer,
            Err(error(Row::Separator, Operation::Acquire, "store"))
        );
        let answer = service.acquire(fenced("r")).await;
        assert_eq!(answer.unwrap_err().kind, ErrorKind::Unsupported);

        let empty = LockService::new("app", Registry::default());
        assert_eq!(empty.list("nope", "").await, Err(not_configured()));
        let unknown = error(Row::UnknownStore, Operation::List, "nope");
        assert_eq!(service.list("nope", "").await, Err(unknown.clone()));
        assert_eq!(
            unknown.message,
            "lock store nope not found; the lock stores loaded are: store"
        );
        let answer = service.list("store", "").await;
        assert_eq!(answer.unwrap_err().kind, ErrorKind::Unsupported);
    }

    #[test]
    fn a_negative_wait_is_refused() {
        assert_eq!(wait_timeout(0), Ok(Duration::ZERO));
        assert_eq!(wait_timeout(1500), Ok(Duration::from_millis(1500)));
        let refused = ApiError::new(ErrorKind::MalformedRequest, "WaitTimeoutMs is negative");
        assert_eq!(wait_timeout(-1), Err(refused));
    }
}
