//! Items 6 and 7: a holder that crashes loses its locks within their expiry (and sooner where
//! the store notices the crash itself, as ZooKeeper does when the dead sidecar's session times
//! out); a store that goes away makes requests fail promptly (never granting), and the same
//! sidecar serves again when it comes back.

use std::time::{Duration, Instant};

use crate::support::api::{Api, Failure, Protocol, BOTH};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{Dlockd, Options};

pub async fn holder_crash(backend: Backend) {
    let holder = backend.sidecar("app", &[("store", None)]);
    let key = unique("c6");
    let api = Api::new(&holder).await;
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &key, "crasher", 2).await,
        Ok(true)
    );
    // A lock whose expiry is far away: only a store that notices the crash frees it soon.
    let long = unique("c6");
    let noticed = backend.frees_a_dead_sidecars_locks_within();
    if noticed.is_some() {
        assert_eq!(
            api.lock(Protocol::Grpc, "store", &long, "crasher", 300)
                .await,
            Ok(true)
        );
    }
    let taken = Instant::now();
    holder.kill();

    let survivor = backend.sidecar("app", &[("store", None)]);
    let api = Api::new(&survivor).await;
    if backend.shared_between_sidecars() {
        // Held until shortly before its expiry, free within a second after.
        assert_eq!(
            api.lock(Protocol::Grpc, "store", &key, "next", 30).await,
            Ok(false)
        );
        loop {
            if api.lock(Protocol::Grpc, "store", &key, "next", 30).await == Ok(true) {
                break;
            }
            assert!(
                taken.elapsed() < Duration::from_secs(3),
                "the crashed holder's lock outlived its expiry"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            taken.elapsed() >= Duration::from_millis(1700),
            "freed before its expiry"
        );
        if let Some(within) = noticed {
            // ZooKeeper expires a session between one and two ticks past its timeout.
            let limit = within + Duration::from_secs(2);
            while api.lock(Protocol::Grpc, "store", &long, "next", 30).await != Ok(true) {
                assert!(
                    taken.elapsed() < limit,
                    "the crashed holder's lock outlived its session"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    } else {
        // The crashed process took its locks with it.
        assert_eq!(
            api.lock(Protocol::Grpc, "store", &key, "next", 30).await,
            Ok(true)
        );
    }
}

pub async fn store_outage(backend: Backend) {
    let (mut server, file) = backend
        .private_server()
        .expect("item 7 runs for stores with a server");
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let api = Api::new(&sidecar).await;
    let held = unique("c7");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &held, "a", 60).await,
        Ok(true)
    );

    server.stop();
    for protocol in BOTH {
        let started = Instant::now();
        let refused = api.lock(protocol, "store", &unique("c7"), "b", 60).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "failed slowly: {:?}",
            started.elapsed()
        );
        match refused {
            Err(Failure::Http {
                status: 500,
                error_code,
                ..
            }) => assert_eq!(error_code, "ERR_TRY_LOCK"),
            Err(Failure::Grpc {
                code: tonic::Code::Internal,
                message,
            }) => {
                assert!(
                    message.starts_with("failed to try acquiring lock: "),
                    "{message}"
                )
            }
            other => panic!("{protocol:?} during an outage: {other:?}"),
        }
        let unlock = api.unlock(protocol, "store", &held, "a").await;
        match unlock {
            Err(Failure::Http {
                status: 500,
                error_code,
                ..
            }) => assert_eq!(error_code, "ERR_UNLOCK"),
            Err(Failure::Grpc {
                code: tonic::Code::Internal,
                ..
            }) => {}
            other => panic!("{protocol:?} unlock during an outage: {other:?}"),
        }
    }

    server.resume();
    // The same sidecar serves again, without a restart.
    let deadline = Instant::now() + Duration::from_secs(15);
    let key = unique("c7");
    loop {
        match api.lock(Protocol::Grpc, "store", &key, "c", 60).await {
            Ok(granted) => {
                assert!(granted);
                break;
            }
            Err(_) => {
                assert!(Instant::now() < deadline, "the sidecar did not recover");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert_eq!(
        api.lock(Protocol::Http, "store", &key, "d", 60).await,
        Ok(false)
    );
}
