//! What the metadata API says about this sidecar, built once for both protocols.

use std::collections::HashMap;

use serde::Serialize;

use super::ApiState;
use crate::proto::dapr::{GetMetadataResponse, RegisteredComponents};

/// The version reported as `runtimeVersion`.
pub(crate) const RUNTIME_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-dlock");

/// The gRPC answer; the HTTP one is the same content in Dapr's JSON shape.
pub(crate) fn describe(state: &ApiState) -> GetMetadataResponse {
    let registry = state.locks.registry();
    let locks = registry.iter().map(|store| RegisteredComponents {
        name: store.name.clone(),
        r#type: store.type_name.clone(),
        version: store.version.clone(),
        capabilities: store.store.capabilities().names(),
    });
    let secrets = state
        .secret_stores
        .iter()
        .map(|(name, type_name)| RegisteredComponents {
            name: name.clone(),
            r#type: type_name.clone(),
            version: "v1".into(),
            capabilities: Vec::new(),
        });
    GetMetadataResponse {
        id: state.locks.app_id().to_string(),
        registered_components: locks.chain(secrets).collect(),
        extended_metadata: HashMap::from([(
            "dlockVersion".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        )]),
        runtime_version: RUNTIME_VERSION.into(),
        enabled_features: Vec::new(),
    }
}

/// `GET /v1.0/metadata`'s body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetadataJson {
    id: String,
    runtime_version: String,
    enabled_features: Vec<String>,
    components: Vec<ComponentJson>,
    extended: HashMap<String, String>,
}

#[derive(Serialize)]
pub(crate) struct ComponentJson {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    version: String,
    capabilities: Vec<String>,
}

impl From<GetMetadataResponse> for MetadataJson {
    fn from(m: GetMetadataResponse) -> Self {
        MetadataJson {
            id: m.id,
            runtime_version: m.runtime_version,
            enabled_features: m.enabled_features,
            components: m
                .registered_components
                .into_iter()
                .map(|c| ComponentJson {
                    name: c.name,
                    type_name: c.r#type,
                    version: c.version,
                    capabilities: c.capabilities,
                })
                .collect(),
            extended: m.extended_metadata,
        }
    }
}
