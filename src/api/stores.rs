//! What dlock's `Stores` call says about the sidecar's lock stores, built once for both doors:
//! type, servers, capabilities and health (`lock/health.rs`), and the edits of component files
//! that did not load (`startup/reload.rs`).

use std::time::UNIX_EPOCH;

use serde_json::{json, Value};

use super::ApiState;
use crate::lock::Health;
use crate::proto::dlock::{LoadProblem, StoreStatus, StoresResponse};

/// The gRPC answer.
pub(crate) fn describe(state: &ApiState) -> StoresResponse {
    let registry = state.locks.registry();
    let stores = registry.iter().map(|store| {
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
        force_release_enabled: state.admin_token.is_set(),
        stores: stores.collect(),
        load_problems: registry
            .problems()
            .iter()
            .map(|problem| LoadProblem {
                component: problem.component.clone(),
                file: problem.file.display().to_string(),
                reason: problem.reason.clone(),
            })
            .collect(),
    }
}

fn millis(ms: u128) -> i64 {
    ms.min(i64::MAX as u128) as i64
}

/// The HTTP answer: the same content, camelCase, 64-bit numbers as strings (§6a), the
/// failure fields only on a failing store, and the load problems only when there are some.
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
    let mut body = json!({
        "appId": answer.app_id,
        "stores": stores,
        "forceReleaseEnabled": answer.force_release_enabled,
    });
    if !answer.load_problems.is_empty() {
        let problems: Vec<Value> = answer
            .load_problems
            .into_iter()
            .map(|p| json!({ "component": p.component, "file": p.file, "reason": p.reason }))
            .collect();
        body["loadProblems"] = problems.into();
    }
    body
}
