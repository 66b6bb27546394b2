//! What the tests share and nothing tests itself: the dlockd processes and store servers a
//! test starts, the clients that talk to them, and the answers the tests expect. Every test
//! file sits one level up.

pub mod api;
pub mod azure_sas;
pub mod backend;
pub mod bench;
pub mod certs;
pub mod dlockd;
pub mod expected;
pub mod locks;
pub mod locks_http;
pub mod netns;
pub mod prometheus;
pub mod servers;
pub mod webdriver;
