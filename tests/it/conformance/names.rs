//! Item 8: resource ids are opaque: spaces, slashes, non-ASCII, case and length all work, and
//! only `||` is refused.

use crate::support::api::{Api, Failure, BOTH, SUCCESS};
use crate::support::backend::{unique, Backend};

pub async fn names(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let api = Api::new(&sidecar).await;
    for protocol in BOTH {
        let base = unique("c8");
        let long = format!("{base}-{}", "L".repeat(1024));
        let names = [
            format!("{base} with spaces"),
            format!("{base}/orders/42/lines"),
            format!("{base}-Prozeß-ünïcødé-日本語-🔒"),
            format!("{base}-MixedCase"),
            long,
            format!("{base}|single|pipes|"),
        ];
        for name in &names {
            assert_eq!(
                api.lock(protocol, "store", name, "a", 30).await,
                Ok(true),
                "{name}"
            );
            assert_eq!(
                api.lock(protocol, "store", name, "b", 30).await,
                Ok(false),
                "{name}"
            );
        }
        // Case matters: a different case is a different lock.
        let lower = format!("{base}-mixedcase");
        assert_eq!(api.lock(protocol, "store", &lower, "b", 30).await, Ok(true));
        for name in names.iter().chain([&lower]) {
            let owner = if *name == lower { "b" } else { "a" };
            assert_eq!(
                api.unlock(protocol, "store", name, owner).await,
                Ok(SUCCESS),
                "{name}"
            );
        }
        let refused = api
            .lock(protocol, "store", &format!("{base}||x"), "a", 30)
            .await;
        assert!(
            matches!(refused, Err(ref f) if f.message().contains("can't contain '||'")),
            "{refused:?}"
        );
        assert!(matches!(
            refused,
            Err(Failure::Http { status: 500, .. })
                | Err(Failure::Grpc {
                    code: tonic::Code::Internal,
                    ..
                })
        ));
    }
}
