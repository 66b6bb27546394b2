//! The two doors of dlock's own API answer alike: a grant, a refusal after the same wait,
//! inspect of a held and a free lock, renewals by the holder and by others, fencing tokens
//! that grow across holders taken through either door, and list.

use std::time::{Duration, Instant};

use dlock::proto::dlock::LockInfo;
use serde_json::json;

use crate::support::api::{Api, Protocol, LOCK_BELONGS_TO_OTHERS, LOCK_DOES_NOT_EXIST, SUCCESS};
use crate::support::backend::unique;
use crate::support::dlockd::{Dlockd, Options};
use crate::support::locks::{acquire_grpc, inspect_grpc, list_grpc, renew_grpc};
use crate::support::locks_http::{
    acquire_http, acquire_json, granted_token, inspect_http, inspected, list_http, listed,
    renew_http,
};

/// Two views of one lock, taken moments apart, agree (the expiry within a second).
fn same_lock(http: &LockInfo, grpc: &LockInfo) {
    assert_eq!(http.resource_id, grpc.resource_id);
    assert_eq!(http.lock_owner, grpc.lock_owner, "{http:?} / {grpc:?}");
    assert_eq!(
        http.fencing_token, grpc.fencing_token,
        "{http:?} / {grpc:?}"
    );
    assert!(
        (http.expires_in_ms - grpc.expires_in_ms).abs() < 1000,
        "{http:?} / {grpc:?}"
    );
}

#[tokio::test]
async fn http_and_grpc_answer_alike() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;
    let on_http = unique("agree-http");
    let on_grpc = unique("agree-grpc");

    // Granted.
    let t_http = granted_token(&acquire_http(&api, &on_http, "a", 30, 0).await.unwrap());
    let granted = acquire_grpc(&locks, "store", &on_grpc, "a", 30, 0)
        .await
        .unwrap();
    assert!(granted.acquired && granted.has_fencing && granted.fencing_token > 0);
    let t_grpc = granted.fencing_token;
    assert_eq!(
        granted_token(&acquire_json(&granted)),
        t_grpc,
        "the gRPC answer has the HTTP answer's shape"
    );

    // Refused at once with waitTimeoutMs 0: the same answer on both.
    for wait_ms in [0, 300] {
        let started = Instant::now();
        let http = acquire_http(&api, &on_http, "b", 30, wait_ms)
            .await
            .unwrap();
        let http_took = started.elapsed();
        let started = Instant::now();
        let grpc = acquire_grpc(&locks, "store", &on_grpc, "b", 30, wait_ms)
            .await
            .unwrap();
        let grpc_took = started.elapsed();
        let refused =
            json!({"acquired": false, "fencingToken": "0", "hasFencing": false, "holds": 0});
        assert_eq!(http, refused, "HTTP, wait {wait_ms} ms");
        assert_eq!(acquire_json(&grpc), refused, "gRPC, wait {wait_ms} ms");
        let waited = Duration::from_millis(wait_ms as u64);
        for (door, took) in [("HTTP", http_took), ("gRPC", grpc_took)] {
            assert!(
                took >= waited,
                "{door} answered after {took:?}, before the {waited:?} wait ran out"
            );
            assert!(
                took < waited + Duration::from_millis(1000),
                "{door} answered after {took:?} for a {waited:?} wait"
            );
        }
    }

    // Inspect a held lock: the holder, the time left, the token acquire gave.
    for (resource, token) in [(&on_http, t_http), (&on_grpc, t_grpc)] {
        let http = inspected(&inspect_http(&api, resource).await.unwrap())
            .unwrap_or_else(|| panic!("{resource} is held"));
        let grpc = inspect_grpc(&locks, "store", resource)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{resource} is held"));
        assert_eq!(http.resource_id, *resource);
        assert_eq!(http.lock_owner, "a");
        assert_eq!(http.fencing_token, token);
        assert!(
            http.expires_in_ms > 0 && http.expires_in_ms <= 30_000,
            "{http:?}"
        );
        assert!(
            grpc.expires_in_ms > 0 && grpc.expires_in_ms <= 30_000,
            "{grpc:?}"
        );
        same_lock(&http, &grpc);
    }
    // Inspect a free lock.
    let free = unique("agree-free");
    assert_eq!(inspected(&inspect_http(&api, &free).await.unwrap()), None);
    assert_eq!(inspect_grpc(&locks, "store", &free).await.unwrap(), None);

    // Renew: by the holder, by another owner, of a lock nobody holds.
    for (owner, resource, want) in [
        ("a", &on_http, SUCCESS),
        ("b", &on_http, LOCK_BELONGS_TO_OTHERS),
        ("a", &free, LOCK_DOES_NOT_EXIST),
    ] {
        assert_eq!(
            renew_http(&api, resource, owner, 60).await.unwrap(),
            json!({"status": want}),
            "HTTP renew by {owner}"
        );
    }
    for (owner, resource, want) in [
        ("a", &on_grpc, SUCCESS),
        ("b", &on_grpc, LOCK_BELONGS_TO_OTHERS),
        ("a", &free, LOCK_DOES_NOT_EXIST),
    ] {
        assert_eq!(
            renew_grpc(&locks, "store", resource, owner, 60).await,
            Ok(want),
            "gRPC renew by {owner}"
        );
    }
    // The renewals took: past the first 30 s, within the new 60 s, token and owner unchanged.
    // A refused renewal created nothing.
    for (resource, token) in [(&on_http, t_http), (&on_grpc, t_grpc)] {
        let http = inspected(&inspect_http(&api, resource).await.unwrap()).unwrap();
        assert!(
            http.expires_in_ms > 30_000 && http.expires_in_ms <= 60_000,
            "{http:?}"
        );
        assert_eq!((http.lock_owner.as_str(), http.fencing_token), ("a", token));
        let grpc = inspect_grpc(&locks, "store", resource)
            .await
            .unwrap()
            .unwrap();
        same_lock(&http, &grpc);
    }
    assert_eq!(inspected(&inspect_http(&api, &free).await.unwrap()), None);

    // Successive holders of one lock, taken through either door, get increasing tokens, and
    // inspect on both doors reports the current holder's.
    let chain = unique("agree-chain");
    let mut last = 0u64;
    for (round, door) in [
        Protocol::Http,
        Protocol::Grpc,
        Protocol::Http,
        Protocol::Grpc,
    ]
    .into_iter()
    .enumerate()
    {
        let owner = format!("holder-{round}");
        let token = match door {
            Protocol::Http => {
                granted_token(&acquire_http(&api, &chain, &owner, 30, 0).await.unwrap())
            }
            Protocol::Grpc => {
                let answer = acquire_grpc(&locks, "store", &chain, &owner, 30, 0)
                    .await
                    .unwrap();
                assert!(answer.acquired && answer.has_fencing, "{answer:?}");
                answer.fencing_token
            }
        };
        assert!(
            token > last,
            "round {round} over {door:?}: {token} after {last}"
        );
        last = token;
        let http = inspected(&inspect_http(&api, &chain).await.unwrap()).unwrap();
        let grpc = inspect_grpc(&locks, "store", &chain)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (http.lock_owner.as_str(), http.fencing_token),
            (owner.as_str(), token)
        );
        same_lock(&http, &grpc);
        assert_eq!(
            api.unlock(Protocol::Grpc, "store", &chain, &owner).await,
            Ok(SUCCESS)
        );
    }

    // List: prefix filtering, sorting by resource id, the same locks on both doors.
    let base = unique("agree-list");
    let other = unique("agree-elsewhere");
    let mut tokens = std::collections::HashMap::new();
    for (i, name) in ["c", "a", "b", "ab"].into_iter().enumerate() {
        let resource = format!("{base}/{name}");
        let owner = format!("owner-{name}");
        // Taken through alternating doors.
        let token = if i % 2 == 0 {
            granted_token(&acquire_http(&api, &resource, &owner, 30, 0).await.unwrap())
        } else {
            acquire_grpc(&locks, "store", &resource, &owner, 30, 0)
                .await
                .unwrap()
                .fencing_token
        };
        tokens.insert(resource, (owner, token));
    }
    granted_token(
        &acquire_http(&api, &format!("{other}/a"), "o", 30, 0)
            .await
            .unwrap(),
    );
    // A lock outside the prefix that shares its start but not the slash.
    granted_token(
        &acquire_http(&api, &format!("{base}x"), "o", 30, 0)
            .await
            .unwrap(),
    );

    let prefix = format!("{base}/");
    let http = listed(&list_http(&api, &prefix).await.unwrap());
    let grpc = list_grpc(&locks, "store", &prefix).await.unwrap();
    let ids: Vec<&str> = http.iter().map(|l| l.resource_id.as_str()).collect();
    let want: Vec<String> = ["a", "ab", "b", "c"]
        .iter()
        .map(|n| format!("{base}/{n}"))
        .collect();
    assert_eq!(ids, want, "HTTP list, sorted and filtered");
    assert_eq!(grpc.len(), http.len(), "{grpc:?}");
    for (h, g) in http.iter().zip(&grpc) {
        same_lock(h, g);
        let (owner, token) = &tokens[&h.resource_id];
        assert_eq!((&h.lock_owner, h.fencing_token), (owner, *token));
        assert!(h.expires_in_ms > 0 && h.expires_in_ms <= 30_000, "{h:?}");
    }
    // Each listed lock is what inspect says of it.
    for listed_lock in &http {
        let one = inspected(&inspect_http(&api, &listed_lock.resource_id).await.unwrap()).unwrap();
        same_lock(&one, listed_lock);
    }

    // An empty prefix lists every lock this sidecar holds, sorted.
    let all = listed(&list_http(&api, "").await.unwrap());
    let all_ids: Vec<&str> = all.iter().map(|l| l.resource_id.as_str()).collect();
    let mut sorted = all_ids.clone();
    sorted.sort_unstable();
    assert_eq!(all_ids, sorted);
    for expected in want
        .iter()
        .map(String::as_str)
        .chain([on_http.as_str(), on_grpc.as_str()])
    {
        assert!(all_ids.contains(&expected), "{expected} in {all_ids:?}");
    }
    assert!(!all_ids.contains(&chain.as_str()), "released: {all_ids:?}");
    let all_grpc = list_grpc(&locks, "store", "").await.unwrap();
    assert_eq!(
        all_grpc
            .iter()
            .map(|l| l.resource_id.as_str())
            .collect::<Vec<_>>(),
        all_ids
    );

    // No match: an empty list on both.
    let nothing = unique("agree-nothing");
    assert_eq!(
        list_http(&api, &nothing).await.unwrap(),
        json!({"locks": []})
    );
    assert_eq!(list_grpc(&locks, "store", &nothing).await.unwrap(), vec![]);
}
