//! dlockd as a Windows service. Windows servers run long-lived programs under the Service
//! Control Manager (SCM), which starts them at boot with no console and asks them to stop by
//! a call, not by Ctrl-C. `dlockd.exe service --log-file PATH FLAGS…` is the command an
//! installed service runs (docs/install.md has the `sc.exe create` line): it hands the process
//! to the SCM, serves with the daprd-style FLAGS as a console dlockd would, maps the SCM's stop
//! (and the system's shutdown) to the same graceful shutdown Ctrl-C starts, and writes what a
//! console dlockd prints to PATH, since a service has no console to print to.

use std::future::Future;
use std::os::windows::io::IntoRawHandle;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::sync::oneshot;
use windows_sys::Win32::System::Console::{SetStdHandle, STD_ERROR_HANDLE, STD_OUTPUT_HANDLE};
use windows_sys::Win32::System::Services::{
    RegisterServiceCtrlHandlerExW, SetServiceStatus, StartServiceCtrlDispatcherW,
    SERVICE_ACCEPT_SHUTDOWN, SERVICE_ACCEPT_STOP, SERVICE_CONTROL_INTERROGATE,
    SERVICE_CONTROL_SHUTDOWN, SERVICE_CONTROL_STOP, SERVICE_RUNNING, SERVICE_STATUS,
    SERVICE_STATUS_CURRENT_STATE, SERVICE_STOPPED, SERVICE_STOP_PENDING, SERVICE_TABLE_ENTRYW,
    SERVICE_WIN32_OWN_PROCESS,
};

/// A stop request: resolves when the sidecar should shut down.
pub type StopRequest = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What serves: the sidecar's own start-up, given the daprd-style command line (program name
/// first) and the stop request to shut down on.
pub type Serve = fn(Vec<String>, Option<StopRequest>) -> ExitCode;

/// The first argument that asks for the service.
const SUBCOMMAND: &str = "service";
/// The SCM's "stopped with an exit code of the service's own" (ERROR_SERVICE_SPECIFIC_ERROR).
const SERVICE_SPECIFIC_ERROR: u32 = 1066;
/// How long a stop may take before the SCM gives up on it: the default graceful shutdown
/// (5 s) with room to spare.
const STOP_WAIT_HINT_MS: u32 = 30_000;

/// Whether the command line asks to run as a service (`dlockd service …`).
pub fn requested(argv: &[String]) -> bool {
    argv.get(1).map(String::as_str) == Some(SUBCOMMAND)
}

/// The sidecar to run once the SCM calls in, and where it ended.
struct Service {
    serve: Serve,
    argv: Vec<String>,
    exit: Mutex<ExitCode>,
}

static SERVICE: OnceLock<Service> = OnceLock::new();
/// The SCM's handle for this service's status (a pointer, kept as an integer to be shared).
static STATUS_HANDLE: AtomicUsize = AtomicUsize::new(0);
/// The stop request's sender, taken by the first stop control.
static STOP: Mutex<Option<oneshot::Sender<()>>> = Mutex::new(None);

/// Runs `dlockd service --log-file PATH FLAGS…`: sends stdout and stderr to PATH, then hands
/// the process to the SCM, which calls `serve` with FLAGS; returns once it has stopped.
pub fn run(argv: Vec<String>, serve: Serve) -> ExitCode {
    let (log_file, flags) = match argv.get(2..4) {
        Some([flag, path]) if flag == "--log-file" => (path.clone(), &argv[4..]),
        _ => {
            eprintln!(
                "usage: dlockd service --log-file PATH [daprd flags…] (the command a Windows \
                 service runs; see docs/install.md)"
            );
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = log_to(&log_file) {
        eprintln!("dlockd service: can't open the log file {log_file}: {e}");
        return ExitCode::FAILURE;
    }
    let mut daprd_argv = vec![argv[0].clone()];
    daprd_argv.extend_from_slice(flags);
    let service = Service {
        serve,
        argv: daprd_argv,
        exit: Mutex::new(ExitCode::FAILURE),
    };
    if SERVICE.set(service).is_err() {
        return ExitCode::FAILURE;
    }
    if !dispatch() {
        eprintln!(
            "dlockd service: not started by the Service Control Manager ({}); install it as a \
             service and start it with `sc.exe start`, or run dlockd without `service`",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    SERVICE
        .get()
        .map_or(ExitCode::FAILURE, |service| *lock(&service.exit))
}

/// Appends stdout and stderr to `path`: the standard library looks the handles up at each
/// write, so everything the sidecar logs goes there.
#[allow(unsafe_code, reason = "SetStdHandle is Windows' C API")]
fn log_to(path: &str) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // The handle stays open for the life of the process: it is the process's stdout now.
    let handle = file.into_raw_handle();
    // SAFETY: an open file handle owned by no one else, set as this process's std handles.
    let set = unsafe {
        SetStdHandle(STD_OUTPUT_HANDLE, handle) != 0 && SetStdHandle(STD_ERROR_HANDLE, handle) != 0
    };
    if set {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Connects to the SCM, which runs `service_main` on a thread of its own; returns when the
/// service has stopped, or false at once if the SCM did not start this process.
#[allow(unsafe_code, reason = "StartServiceCtrlDispatcherW is Windows' C API")]
fn dispatch() -> bool {
    // An own-process service's name is not checked: the SCM knows which one it started.
    let mut name = [0u16];
    let table = [
        SERVICE_TABLE_ENTRYW {
            lpServiceName: name.as_mut_ptr(),
            lpServiceProc: Some(service_main),
        },
        SERVICE_TABLE_ENTRYW::default(),
    ];
    // SAFETY: a table ended by a null entry, alive until the call returns.
    unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) != 0 }
}

#[allow(unsafe_code, reason = "the SCM's callbacks are Windows' C API")]
unsafe extern "system" fn service_main(_argc: u32, _argv: *mut windows_sys::core::PWSTR) {
    let Some(service) = SERVICE.get() else {
        return;
    };
    let name = [0u16];
    // SAFETY: a null-terminated name and a handler that lives as long as the process.
    let handle =
        unsafe { RegisterServiceCtrlHandlerExW(name.as_ptr(), Some(control), std::ptr::null()) };
    if handle.is_null() {
        eprintln!(
            "dlockd service: can't register with the Service Control Manager: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    STATUS_HANDLE.store(handle as usize, Ordering::SeqCst);
    let (stop, stopped) = oneshot::channel();
    *lock(&STOP) = Some(stop);
    report(SERVICE_RUNNING, 0);
    let exit = (service.serve)(
        service.argv.clone(),
        Some(Box::pin(async move {
            let _ = stopped.await;
        })),
    );
    *lock(&service.exit) = exit;
    report(
        SERVICE_STOPPED,
        if exit == ExitCode::SUCCESS {
            0
        } else {
            SERVICE_SPECIFIC_ERROR
        },
    );
}

/// The SCM's controls: stop and the system's shutdown start the graceful shutdown.
#[allow(unsafe_code, reason = "the SCM's callbacks are Windows' C API")]
unsafe extern "system" fn control(
    control: u32,
    _event_type: u32,
    _event_data: *mut std::ffi::c_void,
    _context: *mut std::ffi::c_void,
) -> u32 {
    const NO_ERROR: u32 = 0;
    const ERROR_CALL_NOT_IMPLEMENTED: u32 = 120;
    match control {
        SERVICE_CONTROL_STOP | SERVICE_CONTROL_SHUTDOWN => {
            report(SERVICE_STOP_PENDING, 0);
            if let Some(stop) = lock(&STOP).take() {
                let _ = stop.send(());
            }
            NO_ERROR
        }
        SERVICE_CONTROL_INTERROGATE => NO_ERROR,
        _ => ERROR_CALL_NOT_IMPLEMENTED,
    }
}

/// Tells the SCM the service's state.
#[allow(unsafe_code, reason = "SetServiceStatus is Windows' C API")]
fn report(state: SERVICE_STATUS_CURRENT_STATE, exit_code: u32) {
    let status = SERVICE_STATUS {
        dwServiceType: SERVICE_WIN32_OWN_PROCESS,
        dwCurrentState: state,
        dwControlsAccepted: if state == SERVICE_RUNNING {
            SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN
        } else {
            0
        },
        dwWin32ExitCode: exit_code,
        dwServiceSpecificExitCode: u32::from(exit_code != 0),
        dwCheckPoint: 0,
        dwWaitHint: if state == SERVICE_STOP_PENDING {
            STOP_WAIT_HINT_MS
        } else {
            0
        },
    };
    let handle = STATUS_HANDLE.load(Ordering::SeqCst)
        as windows_sys::Win32::System::Services::SERVICE_STATUS_HANDLE;
    // SAFETY: the handle the SCM gave this service, and a status struct alive for the call.
    unsafe { SetServiceStatus(handle, &status) };
}

/// A mutex's value, whether or not a panic poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
