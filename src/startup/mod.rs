//! Start-up: turns the parsed component files into the registry of stores a sidecar serves,
//! and keeps it in step with them. It is the one part that knows configuration, the core and
//! the stores together, so it sits above all three: `load` applies the component files as
//! daprd does, `store_types` is the table of store types this build serves, `watch` notices
//! edits of the files and `reload` applies them while the sidecar serves; on Windows,
//! `windows_service` starts it under the Service Control Manager.

mod load;
mod reload;
mod store_types;
mod watch;
#[cfg(windows)]
pub mod windows_service;

pub use load::load_components;
pub use reload::Reloader;
pub use store_types::StoreTypes;
