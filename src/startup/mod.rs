//! Start-up: turns the parsed component files into the registry of stores a sidecar serves.
//! It is the one part that knows configuration, the core and the stores together, so it sits
//! above all three: `load` applies the component files as daprd does, and `store_types` is the
//! table of store types this build serves.

mod load;
mod store_types;

pub use load::{load_components, Loaded};
pub use store_types::StoreTypes;
