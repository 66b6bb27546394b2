//! Every route of dlock's own API refuses a bad request with the same answer on both doors:
//! each check of the error table (docs/contract.md §2) for acquire, renew, inspect, list and force
//! release, and bodies that are not JSON or not the route's message.

use serde_json::json;

use super::{with_admin, ADMIN};
use crate::support::api::Api;
use crate::support::dlockd::Dlockd;
use crate::support::expected::{check_both, check_unreadable_body, Expected};
use crate::support::locks::{
    acquire_grpc, force_release_grpc, inspect_grpc, list_grpc, renew_grpc,
};
use crate::support::locks_http::{acquire_body, force_release_http, list_http};

#[tokio::test]
async fn bad_requests_get_the_same_error_on_both_doors() {
    let sidecar = Dlockd::start(with_admin());
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;
    let expiry_not_positive = || Expected::expiry_not_positive("nope");
    let no_resource = || Expected::no_resource("nope");
    let no_owner = || Expected::no_owner("nope");
    let not_found = || Expected::store_not_found("nope", &["store"]);

    // (case, store, resource, owner, expiry, wait in ms, the answer)
    let acquires = [
        ("expiry", "nope", "", "", 0, 0, expiry_not_positive()),
        ("expiry", "nope", "", "", -5, 0, expiry_not_positive()),
        ("resource", "nope", "", "", 5, 0, no_resource()),
        ("owner", "nope", "r", "", 5, 0, no_owner()),
        ("store", "nope", "a||b", "o", 5, 0, not_found()),
        (
            "key",
            "store",
            "a||b",
            "o",
            5,
            0,
            Expected::key_with_pipes("ERR_ACQUIRE", "failed to acquire lock", "a||b"),
        ),
        (
            "negative wait",
            "store",
            "r",
            "o",
            5,
            -1,
            Expected::malformed("WaitTimeoutMs is negative"),
        ),
    ];
    for (case, store, resource, owner, expiry, wait, want) in acquires {
        let body = acquire_body(resource, owner, expiry, wait).to_string();
        let http = api.post(&format!("/dlock/v1/acquire/{store}"), body).await;
        let grpc = acquire_grpc(&locks, store, resource, owner, expiry, wait).await;
        check_both(&format!("acquire: {case}"), http, grpc, &want);
    }

    // (case, store, resource, owner, expiry, the answer)
    let renewals = [
        ("expiry", "nope", "", "", 0, expiry_not_positive()),
        ("expiry", "nope", "", "", -5, expiry_not_positive()),
        ("resource", "nope", "", "", 5, no_resource()),
        ("owner", "nope", "r", "", 5, no_owner()),
        ("store", "nope", "a||b", "o", 5, not_found()),
        (
            "key",
            "store",
            "x||",
            "o",
            5,
            Expected::key_with_pipes("ERR_RENEW", "failed to renew lock", "x||"),
        ),
    ];
    for (case, store, resource, owner, expiry, want) in renewals {
        let body = json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": expiry});
        let http = api
            .post(&format!("/dlock/v1/renew/{store}"), body.to_string())
            .await;
        let grpc = renew_grpc(&locks, store, resource, owner, expiry).await;
        check_both(&format!("renew: {case}"), http, grpc, &want);
    }

    // (case, store, resource, the answer)
    let inspections = [
        ("resource", "nope", "", no_resource()),
        ("store", "nope", "a||b", not_found()),
        (
            "key",
            "store",
            "a||b",
            Expected::key_with_pipes("ERR_INSPECT", "failed to inspect lock", "a||b"),
        ),
    ];
    for (case, store, resource, want) in inspections {
        let body = json!({"resourceId": resource}).to_string();
        let http = api.post(&format!("/dlock/v1/inspect/{store}"), body).await;
        let grpc = inspect_grpc(&locks, store, resource).await;
        check_both(&format!("inspect: {case}"), http, grpc, &want);
    }

    let http = api
        .post("/dlock/v1/list/nope", json!({"prefix": ""}).to_string())
        .await;
    let grpc = list_grpc(&locks, "nope", "").await;
    check_both("list: store", http, grpc, &not_found());

    // Force release, with the right admin token so the checks behind it are reached.
    let force_releases = [
        ("resource", "nope", "", no_resource()),
        ("store", "nope", "a||b", not_found()),
        (
            "key",
            "store",
            "a||b",
            Expected::key_with_pipes("ERR_FORCE_RELEASE", "failed to force-release lock", "a||b"),
        ),
    ];
    for (case, store, resource, want) in force_releases {
        let http = force_release_http(&api, store, resource, Some(ADMIN)).await;
        let grpc = force_release_grpc(&locks, store, resource, Some(ADMIN)).await;
        check_both(&format!("force release: {case}"), http, grpc, &want);
    }

    // HTTP bodies that are not JSON, or not this message, on every route.
    for route in ["acquire", "renew", "inspect", "list", "force-release"] {
        let path = format!("/dlock/v1/{route}/store");
        let wrong_type = if route == "list" {
            r#"{"prefix": 5}"#
        } else {
            r#"{"resourceId": 5}"#
        };
        for body in ["{", "[1]", "not json", wrong_type] {
            // The admin header lets force release reach its body; the others ignore it.
            let admin = [("dlock-admin-token", ADMIN)];
            let got = api.post_with(&path, body.to_string(), &admin).await;
            check_unreadable_body(&format!("{path} {body}"), got);
        }
    }
    // Numbers in strings as strictly as Go's protobuf JSON reader takes them: no padding, no
    // sign, no leading zero (each of these was once granted).
    for route in ["acquire", "renew"] {
        let path = format!("/dlock/v1/{route}/store");
        for expiry in [r#"" 30""#, r#""30 ""#, r#""+30""#, r#""030""#] {
            let body =
                format!(r#"{{"resourceId":"r","lockOwner":"o","expiryInSeconds":{expiry}}}"#);
            check_unreadable_body(&body, api.post(&path, body.clone()).await);
        }
    }

    // Nothing above was granted by mistake.
    assert_eq!(list_http(&api, "").await, Ok(json!({"locks": []})));
    assert_eq!(list_grpc(&locks, "store", "").await, Ok(vec![]));
}
