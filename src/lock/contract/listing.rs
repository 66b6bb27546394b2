//! Listing (`Capabilities::listing`): the keys held under a prefix, and only those.

use std::time::Instant;

use super::subject::{Subject, LONG, POLL};
use crate::lock::{Grant, LockInfo, OwnerChecked};

/// `list` answers the held keys starting with the prefix, each with its owner, time left and
/// fencing token; not a key that merely shares the prefix's first letters, not an expired
/// lock, not a released one.
pub async fn list(s: &Subject) {
    let prefix = s.namespace();
    let beside = format!("{}-beside||", prefix.trim_end_matches("||"));
    assert_eq!(s.store.list(&prefix).await, Ok(Vec::new()));

    let short = format!("{prefix}short");
    let taken = Instant::now();
    s.grant(&short, "d", s.short_ttl).await;
    let one = s.grant(&format!("{prefix}one"), "a", LONG).await;
    let two = s.grant(&format!("{prefix}two"), "b", LONG).await;
    s.grant(&format!("{beside}one"), "c", LONG).await;
    // Listed the moment it is no longer held, before any clean-up could remove it.
    let freed_by = s.freed_by(taken, s.short_ttl);
    while s.store.inspect(&short).await.unwrap().is_some() {
        assert!(
            Instant::now() < freed_by,
            "a {:?} lock outlived its expiry",
            s.short_ttl
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        held(s, &prefix).await,
        [
            (format!("{prefix}one"), "a".into(), one),
            (format!("{prefix}two"), "b".into(), two),
        ]
    );

    assert_eq!(
        s.store.unlock(&format!("{prefix}one"), "a").await,
        Ok(OwnerChecked::Applied)
    );
    assert_eq!(
        held(s, &prefix).await,
        [(format!("{prefix}two"), "b".into(), two)]
    );
}

/// The listed locks by key, checking each one's time left is within its TTL.
async fn held(s: &Subject, prefix: &str) -> Vec<(String, String, Grant)> {
    let mut listed: Vec<LockInfo> = s.store.list(prefix).await.unwrap();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    listed
        .into_iter()
        .map(|info| {
            assert!(info.expires_in <= LONG, "{info:?}");
            let grant = Grant::first(info.fencing_token);
            (info.key, info.owner, grant)
        })
        .collect()
}
