//! Everything a sidecar is told at start-up, parsed and checked: its command line (`flags`), its
//! Configuration file (`configuration`), its component files (`component`), the secret stores
//! those files may reference (`secrets`), a component's metadata (`metadata`) and the settings
//! kit that reads typed values from it (`settings`, `host_port`, `duration`, `size`), with the
//! one error type they all return.
//! Turning the parsed components into stores is start-up's work, above this layer.

pub mod component;
pub mod configuration;
pub(crate) mod duration;
pub(crate) mod error;
pub mod flags;
pub(crate) mod host_port;
pub(crate) mod metadata;
#[cfg(test)]
mod mutation;
pub(crate) mod secrets;
mod settings;
pub(crate) mod size;
pub(crate) mod spelling;

pub(crate) use error::ConfigError;
pub(crate) use host_port::HostPort;
pub use metadata::Metadata;
