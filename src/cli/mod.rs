//! The `dlock` command: a client of the sidecar's public API like any application. It shares
//! nothing with the server but the generated protobuf types.

pub mod bench;
pub mod connect;
pub mod handover;
pub mod hold;
pub mod http_client;
pub mod inspect;

/// How `dlock` ends, so scripts can tell the cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// The store refused or failed, or the lock was lost.
    Failed,
    /// The sidecar could not be reached.
    Unreachable,
    /// The lock was lost while the command ran; the command got SIGTERM.
    Lost,
    /// Ctrl-C (or SIGTERM) ended it; a held lock was released first.
    Interrupted,
    /// The command run under the lock ended with this code.
    Command(i32),
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Unreachable => 3,
            Exit::Lost => 4,
            Exit::Interrupted => 130,
            Exit::Command(code) => code,
        }
    }
}
