//! The operating system asking dlockd or dlock to stop: SIGINT or SIGTERM on Unix; Ctrl-C,
//! Ctrl-Break or the console window closing on Windows. It exists so the one platform
//! difference in how the binaries end lives in one place, and a Windows build is not ruled out
//! by Unix-only signal handling elsewhere.

/// Stop requests from the operating system; the handlers are installed by `Interrupt::new`,
/// so a request that comes before the first `wait` is not lost.
pub struct Interrupt {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(windows)]
    ctrl_c: tokio::signal::windows::CtrlC,
    #[cfg(windows)]
    ctrl_break: tokio::signal::windows::CtrlBreak,
    /// Windows ends the process as soon as the handler of this event returns (or 5 s on);
    /// tokio's never returns for it, so the shutdown it starts runs to its end and the
    /// process exits by itself (tests/it/windows.rs checks both binaries).
    #[cfg(windows)]
    ctrl_close: tokio::signal::windows::CtrlClose,
}

impl Interrupt {
    /// Installs the handlers; fails only if the operating system refuses them.
    #[cfg(unix)]
    pub fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Interrupt {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Installs the handlers; fails only if the operating system refuses them.
    #[cfg(windows)]
    pub fn new() -> std::io::Result<Self> {
        use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};
        Ok(Interrupt {
            ctrl_c: ctrl_c()?,
            ctrl_break: ctrl_break()?,
            ctrl_close: ctrl_close()?,
        })
    }

    /// Resolves at the next stop request.
    pub async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(windows)]
        tokio::select! {
            _ = self.ctrl_c.recv() => {}
            _ = self.ctrl_break.recv() => {}
            _ = self.ctrl_close.recv() => {}
        }
    }
}
