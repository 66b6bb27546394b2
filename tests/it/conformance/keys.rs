//! Item 4: the keyPrefix strategies share or separate keys as docs/contract.md §3 says, and
//! sidecars with the same app id contend for the same keys.

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};

/// Whether a lock taken through store `a` blocks the same resource through store `b`.
async fn shared(api_a: &Api, a: &str, api_b: &Api, b: &str) -> bool {
    let resource = unique("c4");
    assert_eq!(
        api_a.lock(Protocol::Grpc, a, &resource, "first", 30).await,
        Ok(true)
    );
    let blocked = api_b.lock(Protocol::Grpc, b, &resource, "second", 30).await == Ok(false);
    if !blocked {
        assert_eq!(
            api_b.unlock(Protocol::Grpc, b, &resource, "second").await,
            Ok(SUCCESS)
        );
    }
    assert_eq!(
        api_a.unlock(Protocol::Grpc, a, &resource, "first").await,
        Ok(SUCCESS)
    );
    blocked
}

/// Stores on one backend, seen from one sidecar with app id `app1`.
pub async fn key_prefixes(backend: Backend) {
    let sidecar = backend.sidecar(
        "app1",
        &[
            ("by-appid", None),
            ("by-appid-2", Some("AppId")),
            ("by-name", Some("name")),
            ("by-name-2", Some("name")),
            ("by-none", Some("none")),
            ("custom", Some("Shared")),
            ("custom-2", Some("shared")),
            ("custom-app1", Some("app1")),
        ],
    );
    let api = Api::new(&sidecar).await;
    let same = |a: &'static str, b: &'static str| {
        let api = api.clone();
        async move { shared(&api, a, &api, b).await }
    };
    // lock||app1||r for both.
    assert!(same("by-appid", "by-appid-2").await);
    // lock||by-name||r and lock||by-name-2||r.
    assert!(!same("by-name", "by-name-2").await);
    // lock||r against lock||app1||r.
    assert!(!same("by-none", "by-appid").await);
    // Custom prefixes are lowercased: lock||shared||r for both.
    assert!(same("custom", "custom-2").await);
    // A custom prefix equal to the app id builds the app id's key.
    assert!(same("custom-app1", "by-appid").await);

    // With an empty app id, the appid strategy builds lock||r, as `none` does.
    let no_app = backend.sidecar("", &[("by-appid", None), ("by-none", Some("none"))]);
    let api = Api::new(&no_app).await;
    assert!(shared(&api, "by-appid", &api, "by-none").await);
}

/// Two sidecars on a store they share: same app id contends, different app ids don't, `none`
/// does.
pub async fn sidecars_share_keys_by_app_id(backend: Backend) {
    let stores = [("s", None), ("open", Some("none"))];
    let one = backend.sidecar("bpm", &stores);
    let two = backend.sidecar("bpm", &stores);
    let other = backend.sidecar("other-app", &stores);
    let (a, b, c) = (
        Api::new(&one).await,
        Api::new(&two).await,
        Api::new(&other).await,
    );
    assert!(shared(&a, "s", &b, "s").await);
    assert!(!shared(&a, "s", &c, "s").await);
    assert!(shared(&a, "open", &c, "open").await);
}

/// Two sidecars on a store embedded in each: each process has its own keyspace, so they never
/// share, whatever the prefix.
pub async fn sidecars_never_share_keys(backend: Backend) {
    let one = backend.sidecar("app", &[("s", Some("none"))]);
    let two = backend.sidecar("app", &[("s", Some("none"))]);
    let (a, b) = (Api::new(&one).await, Api::new(&two).await);
    assert!(!shared(&a, "s", &b, "s").await);
}
