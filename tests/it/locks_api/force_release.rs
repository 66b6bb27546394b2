//! Force release is guarded by the admin token: refused on both doors when the sidecar has no
//! DLOCK_ADMIN_TOKEN, refused for a missing or wrong token, done for the right one; the token
//! never reaches the logs.

use dlock::cli::connect::Locks;
use serde_json::json;
use tonic::Code;

use super::{with_admin, ADMIN};
use crate::support::api::{Api, Failure, LOCK_DOES_NOT_EXIST, SUCCESS};
use crate::support::backend::unique;
use crate::support::dlockd::{Dlockd, Options};
use crate::support::locks::{acquire_grpc, force_release_grpc, inspect_grpc, renew_grpc};
use crate::support::locks_http::{
    acquire_http, force_release_http, granted_token, inspect_http, inspected,
};

/// Force release of `resource` through both doors with `admin`, both refused as forbidden:
/// the two messages.
async fn forbidden(api: &Api, locks: &Locks, resource: &str, admin: Option<&str>) -> [String; 2] {
    let http = match force_release_http(api, "store", resource, admin).await {
        Err(Failure::Http {
            status: 403,
            error_code,
            message,
        }) if error_code == "ERR_FORBIDDEN" => message,
        other => panic!("HTTP force release with {admin:?}: {other:?}"),
    };
    let grpc = match force_release_grpc(locks, "store", resource, admin).await {
        Err(Failure::Grpc {
            code: Code::PermissionDenied,
            message,
        }) => message,
        other => panic!("gRPC force release with {admin:?}: {other:?}"),
    };
    [http, grpc]
}

#[tokio::test]
async fn force_release_is_refused_without_dlock_admin_token() {
    // Without DLOCK_ADMIN_TOKEN in the sidecar's environment, force release is refused even
    // to a caller presenting a token.
    let closed = Dlockd::start(Options::in_memory());
    let locks = closed.locks().await;
    let api = Api::new(&closed).await;
    let resource = unique("force-closed");
    let token = acquire_grpc(&locks, "store", &resource, "a", 30, 0)
        .await
        .unwrap()
        .fencing_token;
    let mut messages = Vec::new();
    for admin in [Some(ADMIN), None] {
        messages.extend(forbidden(&api, &locks, &resource, admin).await);
    }
    assert!(!messages[0].is_empty());
    assert!(messages.iter().all(|m| m == &messages[0]), "{messages:?}");
    let held = inspected(&inspect_http(&api, &resource).await.unwrap()).expect("still held");
    assert_eq!((held.lock_owner.as_str(), held.fencing_token), ("a", token));
    let refused = acquire_grpc(&locks, "store", &resource, "b", 30, 0)
        .await
        .unwrap();
    assert!(!refused.acquired, "{refused:?}");
    // The token the caller presented never reaches the logs, not even most of it.
    let logs = closed.logs();
    let almost = &ADMIN[..ADMIN.len() - 1];
    assert!(!logs.contains(almost), "admin token in the logs:\n{logs}");
}

#[tokio::test]
async fn force_release_needs_the_right_admin_token() {
    // A missing or wrong token is refused, and the lock stays held.
    let open = Dlockd::start(with_admin());
    let locks = open.locks().await;
    let api = Api::new(&open).await;
    let resource = unique("force-open");
    let token = granted_token(&acquire_http(&api, &resource, "a", 30, 0).await.unwrap());
    let almost = &ADMIN[..ADMIN.len() - 1];
    let longer = format!("{ADMIN}x");
    let mut messages = Vec::new();
    for admin in [
        None,
        Some("wrong"),
        Some(almost),
        Some(longer.as_str()),
        Some(""),
    ] {
        messages.extend(forbidden(&api, &locks, &resource, admin).await);
    }
    assert!(messages.iter().all(|m| m == &messages[0]), "{messages:?}");
    let held = inspected(&inspect_http(&api, &resource).await.unwrap()).expect("still held");
    assert_eq!((held.lock_owner.as_str(), held.fencing_token), ("a", token));
    assert_eq!(
        renew_grpc(&locks, "store", &resource, "a", 30).await,
        Ok(SUCCESS)
    );

    // The right token: released, and free for another owner.
    assert_eq!(
        force_release_http(&api, "store", &resource, Some(ADMIN)).await,
        Ok(json!({"released": true}))
    );
    assert_eq!(
        inspected(&inspect_http(&api, &resource).await.unwrap()),
        None
    );
    assert_eq!(
        renew_grpc(&locks, "store", &resource, "a", 30).await,
        Ok(LOCK_DOES_NOT_EXIST)
    );
    let next = acquire_grpc(&locks, "store", &resource, "b", 30, 0)
        .await
        .unwrap();
    assert!(next.acquired, "{next:?}");
    assert!(next.fencing_token > token, "{next:?} after {token}");
    // The same over gRPC, then a second force release finds nothing on either door.
    assert_eq!(
        force_release_grpc(&locks, "store", &resource, Some(ADMIN)).await,
        Ok(true)
    );
    assert_eq!(
        force_release_http(&api, "store", &resource, Some(ADMIN)).await,
        Ok(json!({"released": false}))
    );
    assert_eq!(
        force_release_grpc(&locks, "store", &resource, Some(ADMIN)).await,
        Ok(false)
    );
    assert_eq!(inspect_grpc(&locks, "store", &resource).await, Ok(None));

    // The admin token never reaches the logs, not even from the wrong guesses.
    let logs = open.logs();
    assert!(!logs.contains(almost), "admin token in the logs:\n{logs}");
}
