//! What dlock's `Stores` call says about the sidecar's lock stores, built once for both doors:
//! type, servers, capabilities and health (`lock/health.rs`).

use std::time::UNIX_EPOCH;

use serde_json::{json, Value};

use super::ApiState;
use crate::lock::Health;
use crate::proto::dlock::{StoreStatus, StoresResponse};

/// The gRPC answer.
pub(crate) fn describe(state: &ApiState) -> StoresResponse {
    let stores = state.locks.registry().iter().map(|store| {
        let mut status = StoreStatus {
            name: store.name.clone(),
            r#type: store.type_name.clone(),
            version: store.version.clone(),
            servers: store.servers(),
            capabilities: store.store.capabilities().names(),
            healthy: true,
            ..StoreStatus::default()
        };
        if let Health::Failing {
            since,
            lasted,
            last_error,
        } = store.health()
        {
            status.healthy = false;
            status.failing_since_unix_ms = since
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| millis(d.as_millis()));
            status.failing_for_ms = millis(lasted.as_millis());
            status.last_error = last_error;
        }
        status
    });
    StoresResponse {
        app_id: state.locks.app_id().to_string(),
        stores: stores.collect(),
    }
}

fn millis(ms: u128) -> i64 {
    ms.min(i64::MAX as u128) as i64
}

/// The HTTP answer: the same content, camelCase, 64-bit numbers as strings (§6a), and the
/// failure fields only on a failing store.
pub(crate) fn json(answer: StoresResponse) -> Value {
    let stores: Vec<Value> = answer
        .stores
        .into_iter()
        .map(|s| {
            let mut store = json!({
                "name": s.name,
                "type": s.r#type,
                "version": s.version,
                "servers": s.servers,
                "capabilities": s.capabilities,
                "healthy": s.healthy,
            });
            if !s.healthy {
                store["failingSinceUnixMs"] = s.failing_since_unix_ms.to_string().into();
                store["failingForMs"] = s.failing_for_ms.to_string().into();
                store["lastError"] = s.last_error.into();
            }
            store
        })
        .collect();
    json!({ "appId": answer.app_id, "stores": stores })
}
