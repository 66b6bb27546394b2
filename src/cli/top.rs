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
use crate::proto::dlock::{ListRequest, LockInfo, StoresRequest};

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
    ]];
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
                rows.extend(listed.iter().map(|lock| row(&store.name, lock)));
            }
            Err(status) => notes.push(format!("{}: {}", store.name, status.message())),
        }
    }
    out.push('\n');
    out.push_str(&columns(&rows));
    let held = rows.len() - 1;
    let waiting: u32 = rows[1..]
        .iter()
        .filter_map(|r| r[5].parse::<u32>().ok())
        .sum();
    out.push_str(&format!(
        "\n{held} held, {waiting} waiting through this sidecar (other sidecars' waiters are not counted)"
    ));
    for note in notes {
        out.push('\n');
        out.push_str(&note);
    }
    Ok(out)
}

fn row(store: &str, lock: &LockInfo) -> [String; 6] {
    let token = match lock.fencing_token {
        0 => "-".to_string(),
        token => token.to_string(),
    };
    [
        store.to_string(),
        lock.resource_id.clone(),
        lock.lock_owner.clone(),
        format!("{:.1}s", lock.expires_in_ms as f64 / 1000.0),
        token,
        lock.waiting_here.to_string(),
    ]
}

/// The rows in columns as wide as their widest cell, two spaces apart.
fn columns(rows: &[[String; 6]]) -> String {
    let mut widths = [0; 6];
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
        let rows = [
            [
                "STORE",
                "RESOURCE",
                "OWNER",
                "LEFT",
                "FENCING",
                "WAITING HERE",
            ]
            .map(String::from),
            row("jobs", &lock),
        ];
        assert_eq!(
            columns(&rows),
            "STORE  RESOURCE   OWNER     LEFT   FENCING  WAITING HERE\n\
             jobs   invoice-7  worker-1  12.3s  -        2"
        );
    }
}
