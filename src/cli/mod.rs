//! The `dlock` command: a client of the sidecar's public API like any application. It shares
//! nothing with the server but the generated protobuf types.

/// `println!` for dlock's reports; see `print_line`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print_line(format_args!($($arg)*))
    };
}

/// `eprintln!` for dlock, which never panics: a closed stderr (`dlock k 9 -- cmd 2>&1 | head
/// -1`) must not end a dlock that holds a lock and owes its caller the command's exit code, so
/// what cannot be written to stderr is dropped.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` for dlock, which never panics (see `errln!`).
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub mod bench;
pub mod connect;
mod dapr_only;
pub mod handover;
pub mod hold;
mod hold_end;
pub mod hold_request;
pub mod http_client;
pub mod inspect;
pub mod status;
pub mod top;
mod waiting_line;

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

/// Prints one line on stdout. A reader that went away (`dlock bench | head -1`) ends dlock
/// quietly with success, as it would under SIGPIPE's default action; any other write error
/// ends it with a message. SIGPIPE itself stays ignored (Rust's default) because dlock also
/// writes to sockets, where a vanished peer must be an error it handles, not its death.
pub(crate) fn print_line(line: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(Exit::Ok.code());
        }
        errln!("dlock: can't write to stdout: {e}");
        std::process::exit(Exit::Failed.code());
    }
}
