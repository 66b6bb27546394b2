//! `dlock top`: a live view of every store's held locks and their waiters, for a server
//! without a browser: the console's table in a terminal, redrawn in place once a second until
//! q or Ctrl-C. It makes the calls `dlock status` and `dlock list` make (`Stores`, then `List`
//! for each store that can list), so it shows the whole store's locks, whichever sidecar took
//! them; the waiters it counts are those waiting through this sidecar. Redrawing is plain
//! ANSI (clear, home), which Windows 10 consoles draw once asked to; when stdout is not a terminal
//! each frame is printed after the last, for scripts (`--iterations`).

use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::connect::{self, report, Locks};
use super::status::{describe, utc};
use super::Exit;
use crate::interrupt::Interrupt;
use crate::proto::dlock::{ListRequest, LockInfo, LockMode, StoresRequest};

const REFRESH: Duration = Duration::from_secs(1);
/// Clear the screen, cursor home.
const REDRAW: &str = "\x1b[2J\x1b[H";

/// Shows the held locks whose resource ids start with `prefix`, every second, `iterations`
/// times or until q or Ctrl-C.
pub async fn top(endpoint: &str, prefix: &str, iterations: Option<u32>) -> Exit {
    let mut locks = match connect::locks(endpoint, Duration::from_secs(5)).await {
        Ok(locks) => locks,
        Err(message) => {
            errln!("dlock: {message}");
            return Exit::Unreachable;
        }
    };
    let mut interrupt = match Interrupt::new() {
        Ok(interrupt) => interrupt,
        Err(e) => {
            errln!("dlock: can't watch for Ctrl-C: {e}");
            return Exit::Failed;
        }
    };
    let terminal = std::io::stdout().is_terminal();
    #[cfg(windows)]
    if terminal {
        ansi_on_windows();
    }
    let (quit, mut quitting) = mpsc::unbounded_channel();
    let _keys = terminal.then(|| keys::watch(quit));
    let mut shown = 0;
    loop {
        let frame = match frame(&mut locks, prefix).await {
            Ok(frame) => frame,
            Err(status) => return report(endpoint, &status),
        };
        if terminal {
            outln!("{REDRAW}{frame}");
        } else {
            outln!("{frame}");
        }
        shown += 1;
        if iterations.is_some_and(|n| shown >= n) {
            return Exit::Ok;
        }
        tokio::select! {
            () = tokio::time::sleep(REFRESH) => {}
            Some(()) = quitting.recv() => return Exit::Ok,
            () = interrupt.wait() => return Exit::Interrupted,
        }
    }
}

/// Windows 10's console draws ANSI sequences once asked to (Windows Terminal always does).
#[cfg(windows)]
#[allow(unsafe_code, reason = "the console API is Windows' C API")]
fn ansi_on_windows() {
    use windows_sys::Win32::System::Console::{
        GetConsoleMode, GetStdHandle, SetConsoleMode, ENABLE_VIRTUAL_TERMINAL_PROCESSING,
        STD_OUTPUT_HANDLE,
    };
    // SAFETY: calls on this process's own stdout handle, with a mode it just read.
    unsafe {
        let out = GetStdHandle(STD_OUTPUT_HANDLE);
        let mut mode = 0;
        if GetConsoleMode(out, &mut mode) != 0 {
            SetConsoleMode(out, mode | ENABLE_VIRTUAL_TERMINAL_PROCESSING);
        }
    }
}

/// One screen: the stores as `dlock status` shows them, then the held locks in columns.
async fn frame(locks: &mut Locks, prefix: &str) -> Result<String, tonic::Status> {
    let answer = locks.stores(StoresRequest {}).await?.into_inner();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut out = format!(
        "dlock top · app id '{}' · {} · q or Ctrl-C quits\n\n",
        answer.app_id,
        utc(now)
    );
    let mut rows = vec![[
        "STORE".to_string(),
        "RESOURCE".into(),
        "OWNER".into(),
        "LEFT".into(),
        "FENCING".into(),
        "WAITING HERE".into(),
        "MODE".into(),
    ]];
    let mut held = 0;
    let mut waiting = 0;
    let mut notes = Vec::new();
    for store in &answer.stores {
        out.push_str(&describe(store));
        out.push('\n');
        if !store.capabilities.iter().any(|c| c == "LISTING") {
            notes.push(format!("{}: can't list its locks (no LISTING)", store.name));
            continue;
        }
        let request = ListRequest {
            store_name: store.name.clone(),
            prefix: prefix.into(),
        };
        match locks.list(request).await {
            Ok(listed) => {
                let listed = listed.into_inner().locks;
                held += listed.len();
                waiting += listed.iter().map(|lock| lock.waiting_here).sum::<u32>();
                rows.extend(listed.iter().flat_map(|lock| lock_rows(&store.name, lock)));
            }
            Err(status) => notes.push(format!("{}: {}", store.name, status.message())),
        }
    }
    out.push('\n');
    out.push_str(&columns(&rows));
    out.push_str(&format!(
        "\n{held} held, {waiting} waiting through this sidecar (other sidecars' waiters are not counted)"
    ));
    for note in notes {
        out.push('\n');
        out.push_str(&note);
    }
    Ok(out)
}

/// A lock's rows: its first holder's with the lock's columns, then one per other holder of a
/// shared lock, each with its own time left and token.
fn lock_rows(store: &str, lock: &LockInfo) -> Vec<[String; 7]> {
    let token = |token: u64| match token {
        0 => "-".to_string(),
        token => token.to_string(),
    };
    let left = |ms: i64| format!("{:.1}s", ms as f64 / 1000.0);
    let owner = |owner: &str, holds: u32| match holds {
        0 | 1 => owner.to_string(),
        holds => format!("{owner} x{holds}"),
    };
    let mode = match (lock.mode(), lock.limit) {
        (LockMode::Exclusive, _) => "exclusive".to_string(),
        (LockMode::Shared, 0) => "shared".to_string(),
        (LockMode::Shared, limit) => format!("shared, limit {limit}"),
    };
    let first_holds = lock.holders.first().map_or(1, |h| h.holds);
    let mut rows = vec![[
        store.to_string(),
        lock.resource_id.clone(),
        owner(&lock.lock_owner, first_holds),
        left(lock.expires_in_ms),
        token(lock.fencing_token),
        lock.waiting_here.to_string(),
        mode,
    ]];
    rows.extend(lock.holders.iter().skip(1).map(|holder| {
        [
            String::new(),
            String::new(),
            owner(&holder.lock_owner, holder.holds),
            left(holder.expires_in_ms),
            token(holder.fencing_token),
            String::new(),
            String::new(),
        ]
    }));
    rows
}

/// The rows in columns as wide as their widest cell, two spaces apart.
fn columns(rows: &[[String; 7]]) -> String {
    let mut widths = [0; 7];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect();
    lines.join("\n")
}

/// q quits. On Unix the terminal is put in non-canonical mode without echo while top runs, so
/// a single key press counts (Ctrl-C still interrupts); on Windows the console stays in line
/// mode, so q is followed by Enter.
mod keys {
    use std::io::Read;

    use tokio::sync::mpsc::UnboundedSender;

    /// Restores the terminal when dropped.
    pub(super) struct Watching {
        #[cfg(unix)]
        saved: Option<libc::termios>,
    }

    pub(super) fn watch(quit: UnboundedSender<()>) -> Watching {
        #[cfg(unix)]
        let saved = single_keys();
        // A thread of its own: reading stdin blocks, and a read is not cancellable. It ends
        // with the process.
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut byte = [0u8];
            while let Ok(1) = stdin.read(&mut byte) {
                if byte[0].eq_ignore_ascii_case(&b'q') && quit.send(()).is_err() {
                    return;
                }
            }
        });
        Watching {
            #[cfg(unix)]
            saved,
        }
    }

    /// Non-canonical mode without echo; the previous settings, when stdin is a terminal.
    #[cfg(unix)]
    #[allow(unsafe_code, reason = "termios is a libc API")]
    fn single_keys() -> Option<libc::termios> {
        // SAFETY: termios is plain data, filled by tcgetattr before it is read.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            raw.c_lflag &= !(libc::ICANON | libc::ECHO);
            raw.c_cc[libc::VMIN] = 1;
            raw.c_cc[libc::VTIME] = 0;
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw);
            Some(saved)
        }
    }

    impl Drop for Watching {
        #[allow(unsafe_code, reason = "termios is a libc API")]
        fn drop(&mut self) {
            #[cfg(unix)]
            if let Some(saved) = &self.saved {
                // SAFETY: restores the settings tcgetattr gave.
                unsafe {
                    libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::dlock::Holder;

    #[test]
    fn locks_in_columns() {
        let lock = LockInfo {
            resource_id: "invoice-7".into(),
            lock_owner: "worker-1".into(),
            expires_in_ms: 12_345,
            fencing_token: 0,
            waiting_here: 2,
            ..LockInfo::default()
        };
        let holder = |owner: &str, expires_in_ms, fencing_token, holds| Holder {
            lock_owner: owner.into(),
            expires_in_ms,
            fencing_token,
            holds,
        };
        let semaphore = LockInfo {
            resource_id: "nightly".into(),
            lock_owner: "a".into(),
            expires_in_ms: 9_000,
            fencing_token: 7,
            mode: LockMode::Shared.into(),
            limit: 3,
            holders: vec![holder("a", 9_000, 7, 2), holder("b", 1_500, 9, 1)],
            ..LockInfo::default()
        };
        let mut rows = vec![[
            "STORE",
            "RESOURCE",
            "OWNER",
            "LEFT",
            "FENCING",
            "WAITING HERE",
            "MODE",
        ]
        .map(String::from)];
        rows.extend(lock_rows("jobs", &lock));
        rows.extend(lock_rows("jobs", &semaphore));
        assert_eq!(
            columns(&rows),
            "STORE  RESOURCE   OWNER     LEFT   FENCING  WAITING HERE  MODE\n\
             jobs   invoice-7  worker-1  12.3s  -        2             exclusive\n\
             jobs   nightly    a x2      9.0s   7        0             shared, limit 3\n\
             \x20                 b         1.5s   9"
        );
    }
}
