//! Item 10: renewal extends only the holder's lock; fencing tokens strictly increase across
//! successive holders, through expiry and sidecar restarts; a lost lock is reported to a
//! session that holds it, a normal release is not.

use std::time::Duration;

use dlock::proto::dlock::hold_event::Event;

use crate::support::api::{Api, Protocol, LOCK_BELONGS_TO_OTHERS, LOCK_DOES_NOT_EXIST, SUCCESS};
use crate::support::backend::{unique, Backend, ADMIN_TOKEN};
use crate::support::locks::{
    acquire, force_release, inspect, renew, request, try_acquire, Session,
};

pub async fn renewal(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let locks = sidecar.locks().await;
    let key = unique("c10");
    assert_eq!(renew(&locks, &key, "a", 5).await, LOCK_DOES_NOT_EXIST);
    assert!(try_acquire(&locks, &key, "a", 1).await.is_some());
    assert_eq!(renew(&locks, &key, "b", 5).await, LOCK_BELONGS_TO_OTHERS);
    assert_eq!(renew(&locks, &key, "a", 3).await, SUCCESS);
    // Past the first expiry, still held: the renewal counted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(try_acquire(&locks, &key, "b", 30).await, None);
    // Past the renewed expiry, gone; the expired holder can't renew it back.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(renew(&locks, &key, "a", 30).await, LOCK_DOES_NOT_EXIST);
    assert!(try_acquire(&locks, &key, "b", 30).await.is_some());
    assert_eq!(renew(&locks, &key, "a", 30).await, LOCK_BELONGS_TO_OTHERS);
}

pub async fn fencing(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let locks = sidecar.locks().await;
    let api = Api::new(&sidecar).await;
    let key = unique("c10");
    let fenced = locks
        .clone()
        .acquire(dlock::proto::dlock::AcquireRequest {
            require_fencing: true,
            ..request(&key, "a", 30, Duration::ZERO)
        })
        .await;
    // Every store fences: one that stops saying so fails here.
    let capabilities = inspect_capabilities(&sidecar).await;
    assert!(
        capabilities.contains(&"FENCING".to_string()),
        "{capabilities:?}"
    );
    let mut tokens = vec![fenced.unwrap().into_inner().fencing_token];
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "a").await,
        Ok(SUCCESS)
    );
    // Next holder after a release.
    tokens.push(try_acquire(&locks, &key, "b", 1).await.unwrap());
    // Next holder after an expiry.
    tokens.push(
        acquire(&locks, &key, "c", 30, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(
        inspect(&locks, &key).await.unwrap().fencing_token,
        tokens[2]
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "c").await,
        Ok(SUCCESS)
    );
    // Dapr's try-lock takes a token too, so the next one is larger still.
    assert_eq!(
        api.lock(Protocol::Http, "store", &key, "d", 30).await,
        Ok(true)
    );
    tokens.push(inspect(&locks, &key).await.unwrap().fencing_token);
    assert_eq!(
        api.unlock(Protocol::Http, "store", &key, "d").await,
        Ok(SUCCESS)
    );
    // Next holder after the sidecar restarts.
    drop((locks, api, sidecar));
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let locks = sidecar.locks().await;
    tokens.push(
        acquire(&locks, &key, "e", 30, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
    );
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens must strictly increase: {tokens:?}"
    );
}

async fn inspect_capabilities(sidecar: &crate::support::dlockd::Dlockd) -> Vec<String> {
    let metadata = sidecar
        .client()
        .await
        .get_metadata(dlock::proto::dapr::GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    let store = metadata
        .registered_components
        .into_iter()
        .find(|c| c.name == "store")
        .expect("the store is registered");
    store.capabilities
}

pub async fn sessions(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let locks = sidecar.locks().await;

    // A session keeps its lock past the expiry, and a release ends it quietly.
    let key = unique("c10");
    let mut session = Session::open(&locks, request(&key, "s", 1, Duration::ZERO)).await;
    assert!(matches!(session.next(Duration::from_secs(5)).await, Event::Acquired(a) if a.acquired));
    assert!(
        session.quiet_for(Duration::from_millis(2500)).await,
        "no event while held"
    );
    assert_eq!(try_acquire(&locks, &key, "other", 30).await, None);
    session.release().await;
    assert!(matches!(
        session.next(Duration::from_secs(5)).await,
        Event::Released(_)
    ));
    assert!(try_acquire(&locks, &key, "other", 30).await.is_some());

    // A lock deleted by force is reported at once.
    let key = unique("c10");
    let mut session = Session::open(&locks, request(&key, "s", 30, Duration::ZERO)).await;
    assert!(matches!(
        session.next(Duration::from_secs(5)).await,
        Event::Acquired(_)
    ));
    assert!(force_release(&locks, &key, Some(ADMIN_TOKEN))
        .await
        .unwrap());
    match session.next(Duration::from_secs(2)).await {
        Event::Lost(lost) => assert!(!lost.reason.is_empty()),
        other => panic!("expected a lost lock, got {other:?}"),
    }

    // A session whose client vanishes releases its lock.
    let key = unique("c10");
    let mut session = Session::open(&locks, request(&key, "s", 30, Duration::ZERO)).await;
    assert!(matches!(
        session.next(Duration::from_secs(5)).await,
        Event::Acquired(_)
    ));
    session.vanish();
    assert!(acquire(&locks, &key, "other", 30, Duration::from_secs(5))
        .await
        .unwrap()
        .is_some());

    // A session that can't get the lock in time says so.
    let mut session = Session::open(
        &locks,
        request(&key, "late", 30, Duration::from_millis(200)),
    )
    .await;
    assert!(matches!(
        session.next(Duration::from_secs(5)).await,
        Event::TimedOut(_)
    ));
}
