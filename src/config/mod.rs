//! Everything a sidecar is told at start-up, parsed and checked: its command line (`flags`),
//! its component files (`component`), the secret stores those files may reference (`secrets`),
//! a component's metadata (`metadata`) and the settings kit that reads typed values from it
//! (`settings`, `host_port`, `duration`, `size`), with the one error type they all return.
//! Turning the parsed components into stores is start-up's work, above this layer.

pub mod component;
pub mod duration;
pub mod error;
pub mod flags;
pub mod host_port;
pub mod metadata;
pub mod secrets;
mod settings;
pub mod size;

pub use error::ConfigError;
pub use host_port::HostPort;
pub use metadata::Metadata;
