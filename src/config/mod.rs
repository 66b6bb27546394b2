//! Everything a sidecar is told at start-up: its command line (`flags`), its component files
//! (`component`, `loader`), the secret stores those files may reference (`secrets`), and the
//! small value formats they use (`duration`, `size`).

pub mod component;
pub mod duration;
pub mod error;
pub mod flags;
pub mod host_port;
pub mod loader;
pub mod metadata;
pub mod secrets;
mod settings;
pub mod size;

pub use error::ConfigError;
pub use host_port::HostPort;
pub use loader::{load_components, Loaded};
pub use metadata::Metadata;
