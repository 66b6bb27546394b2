//! dlockd, the sidecar: loads the component files, binds Dapr's ports, serves until SIGINT or
//! SIGTERM (Ctrl-C or Ctrl-Break on Windows), or as a Windows service until the service is
//! stopped (`dlockd service`, src/startup/windows_service.rs).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dlock::api::access::ApiAccess;
use dlock::api::auth::ApiToken;
use dlock::api::connections::ConnectionLimits;
use dlock::api::server::{self, Listeners};
use dlock::api::ApiState;
use dlock::config::configuration::Configuration;
use dlock::config::flags::{DaemonArgs, DAPRD_VERSION};
use dlock::interrupt::Interrupt;
use dlock::lock::{probe, LockService};
use dlock::metrics::{endpoint, Metrics};
use dlock::startup::{load_components, Reloader, StoreTypes};
use tracing_subscriber::EnvFilter;

/// mimalloc: measured, glibc malloc and free took a sixth of the sidecar's CPU per lock+unlock pair.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A stop request from elsewhere than the console (the Windows service's stop).
type StopRequest = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    refuse_huge_pages();
    let argv: Vec<String> = std::env::args().collect();
    #[cfg(windows)]
    if dlock::startup::windows_service::requested(&argv) {
        return dlock::startup::windows_service::run(argv, serve);
    }
    serve(argv, None)
}

/// Serves with daprd's command line until stopped: by `stop` if given, else by SIGINT or
/// SIGTERM (Ctrl-C, Ctrl-Break).
fn serve(argv: Vec<String>, stop: Option<StopRequest>) -> ExitCode {
    let args = DaemonArgs::parse_daprd_style(argv);
    // Printed as daprd prints them: the `dapr` CLI reads stdout and parses the version.
    if args.version {
        println!("{DAPRD_VERSION}");
        return ExitCode::SUCCESS;
    }
    if args.build_info {
        println!(
            "Version: {DAPRD_VERSION}\nGit Commit: {}\nGit Version: dlock {}",
            env!("DLOCK_GIT_COMMIT"),
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    // Read before logging starts, because it may turn the API log on; a mistake in it is
    // reported once logging runs.
    let configuration = args.config.as_deref().map(Configuration::read).transpose();
    let from_file = match &configuration {
        Ok(Some(configuration)) => configuration.api_logging,
        _ => None,
    };
    let api_log = args.enable_api_logging.or(from_file).unwrap_or(false);
    init_logging(&args, api_log);
    let configuration = match configuration {
        Ok(configuration) => configuration.unwrap_or_default(),
        Err(e) => {
            tracing::error!("can't start: --config: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match args.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        threads => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads.into());
            builder
        }
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("can't start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, configuration, api_log, stop)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &DaemonArgs, api_log: bool) {
    // The libraries under us are chatty at debug; keep them at warn unless RUST_LOG says more.
    // The ZooKeeper client logs every session state at info (eight lines for one start):
    // the store's health record says what an operator needs, once.
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=warn,zookeeper_client=warn",
            args.log_level.as_filter()
        ))
    });
    // As daprd's API log, it shows whatever --log-level says.
    if api_log {
        filter = filter.add_directive(
            format!("{}=info", dlock::lock::api_log::TARGET)
                .parse()
                .expect("a valid directive"),
        );
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if args.log_as_json {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// Keeps the kernel from backing dlockd's memory with transparent huge pages, before the heap
/// grows. mimalloc asks for them on the arena it reserves (and a host set to THP `always` gives
/// them unasked), and a sidecar whose heap is a few MiB then holds 2 MiB pages it barely uses:
/// measured idle, 7.8 MiB anonymous memory with them, 1.5 MiB without (docs/performance.md,
/// "Memory after a burst").
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "prctl is a libc call")]
fn refuse_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE reads no memory of ours; it sets a flag of this process. It
    // fails only on kernels older than 3.15, which then keep their default.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Hands the memory the allocator holds free back to the operating system, every two seconds.
/// mimalloc returns freed pages only when its heap is next used past a delay, so a sidecar
/// that goes quiet after a burst of short locks (every one swept away since) would otherwise
/// keep its peak. Forced, the collect also frees the pages mimalloc keeps for reuse and purges
/// freed memory at once rather than after its delay. With one worker thread (the default)
/// every allocation is on the thread this runs on, whose heap `mi_collect` collects.
#[allow(unsafe_code, reason = "mimalloc's C API")]
async fn return_freed_memory() {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        // SAFETY: mi_collect only walks the calling thread's heap and the arenas' free lists.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
}

/// Lifts the soft limit on open files to the hard one, as Go programs (daprd among them) do
/// by themselves: the usual soft limit, 1,024, is less than --max-connections allows.
#[cfg(unix)]
#[allow(unsafe_code, reason = "getrlimit and setrlimit are libc calls")]
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let soft = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                tracing::debug!(
                    "open files: soft limit raised from {soft} to {}",
                    limit.rlim_max
                );
            }
        }
    }
}

async fn run(
    args: DaemonArgs,
    configuration: Configuration,
    api_log: bool,
    stop: Option<StopRequest>,
) -> Result<(), String> {
    // Installed before anything else, so a SIGTERM right after the ready line still shuts
    // down gracefully instead of killing the process.
    let shutdown = match stop {
        Some(stop) => stop,
        None => {
            Box::pin(shutdown_signal().map_err(|e| format!("can't install signal handlers: {e}"))?)
        }
    };
    if args.app_port.is_some() {
        tracing::debug!("--app-port is accepted for daprd compatibility; dlockd calls no app");
    }
    log_flags_without_effect(&args, &configuration);
    let access = ApiAccess::new(&configuration.allowed, &configuration.denied);
    log_configuration(&configuration, &access);
    #[cfg(unix)]
    raise_open_file_limit();
    tokio::spawn(return_freed_memory());

    // Both daprd's switches must be on: the flag, and the Configuration's spec.metric.enabled.
    // A port that can't be bound stops start-up, as daprd's does, rather than leave the
    // dashboards silently empty.
    let metrics_port = if args.enable_metrics && configuration.metrics_enabled {
        let listener = endpoint::bind(args.metrics_host(), args.metrics_port)
            .await
            .map_err(|e| {
                format!(
                    "metrics port: {e} (--metrics-port, --metrics-listen-address; \
                     --enable-metrics=false turns metrics off)"
                )
            })?;
        Some((Metrics::new(&args.app_id), listener))
    } else {
        None
    };

    let store_types = StoreTypes::new();
    let loaded = load_components(&args.resources_paths, &args.app_id, &store_types)
        .await
        .map_err(|e| format!("can't load components: {e}"))?;
    let no_lock_store = loaded.registry.iter().next().is_none();
    if !args.resources_paths.is_empty() && no_lock_store && !args.allow_no_lock_store {
        return Err(format!(
            "no lock store was loaded from {}: no component there is a lock store in scope for \
             app id '{}' (see the lines above for what was skipped); give --allow-no-lock-store \
             to start anyway, answering every lock call ERR_LOCK_STORE_NOT_CONFIGURED",
            loaded.source, args.app_id
        ));
    }
    let sidecar = Arc::new(ApiState {
        locks: LockService::new(args.app_id.clone(), loaded.registry)
            .log_api_calls(api_log)
            .max_waiters(args.max_waiters as usize),
        secret_stores: loaded.secret_stores,
        api_token: ApiToken::from_env("DAPR_API_TOKEN"),
        admin_token: ApiToken::from_env("DLOCK_ADMIN_TOKEN"),
        access,
        metrics: metrics_port.as_ref().map(|(metrics, _)| metrics.clone()),
    });
    let metrics_address = match metrics_port {
        Some((metrics, listener)) => {
            let address = listener
                .local_addr()
                .map_err(|e| format!("metrics port: {e}"))?;
            let served = sidecar.clone();
            let render = Arc::new(move || metrics.render(&served.locks));
            tokio::spawn(endpoint::serve(listener, render));
            Some(address)
        }
        None => None,
    };

    let (http, grpc) = match &args.unix_domain_socket {
        Some(dir) => (
            bind_unix_socket(dir, &args.app_id, "http")?,
            bind_unix_socket(dir, &args.app_id, "grpc")?,
        ),
        None => {
            let defaults = args.dapr_listen_addresses.is_empty();
            let addresses = args.listen_addresses();
            let http = server::bind(&addresses, args.dapr_http_port, defaults)
                .await
                .map_err(|e| format!("HTTP port: {e}"))?;
            let grpc = server::bind(&addresses, args.dapr_grpc_port, defaults)
                .await
                .map_err(|e| format!("gRPC port: {e}"))?;
            (Listeners::Tcp(http), Listeners::Tcp(grpc))
        }
    };
    let sockets = [&http, &grpc].map(socket_path);

    tracing::info!(
        "{}",
        ready_line(&sidecar, [&http, &grpc], metrics_address, &loaded.source)
    );
    // daprd reloads components only when its HotReload feature is enabled; dlockd unless it is
    // disabled, since a lock store edited without a restart is what its users ask for.
    let hot_reload = args.hot_reload.or(configuration.hot_reload).unwrap_or(true);
    if hot_reload && !args.resources_paths.is_empty() {
        let reloader = Reloader::new(
            args.resources_paths.clone(),
            args.app_id.clone(),
            store_types,
            loaded.components,
            &sidecar.locks,
        );
        let sidecar = sidecar.clone();
        tokio::spawn(async move { reloader.run(&sidecar.locks).await });
        tracing::info!(
            "component files are reloaded live: edits under {} apply within 2 seconds",
            loaded.source
        );
    } else if !args.resources_paths.is_empty() {
        tracing::info!("component files are read at start-up only (hot reload is off)");
    }
    let every = args.health_probe_interval;
    if !every.is_zero() {
        let sidecar = sidecar.clone();
        tokio::spawn(async move { probe::probe_stores(&sidecar.locks, every).await });
    }
    let block = args.dapr_block_shutdown_duration;
    let signal = async move {
        shutdown.await;
        // daprd's --dapr-block-shutdown-duration: the API keeps answering while the app
        // stops, so it can still release its locks.
        if let Some(block) = block {
            tracing::info!("blocking shutdown for {block:?}; still serving");
            tokio::time::sleep(block).await;
        }
    };
    let grace = args.shutdown_grace();
    let shutdown = server::Shutdown { signal, grace };
    let limits = ConnectionLimits {
        header_read_timeout: args.http_header_read_timeout,
        idle_timeout: args.http_idle_timeout,
        max_connections: args.max_connections as usize,
        keepalive: args.client_keepalive,
        max_streams: args.max_streams_per_connection,
    };
    let drained = server::serve(sidecar, http, grpc, args.max_body_size(), limits, shutdown).await;
    // As daprd does, so that the next start can bind the same names.
    for path in sockets.into_iter().flatten() {
        let _ = std::fs::remove_file(path);
    }
    if !drained {
        return Err(format!(
            "graceful shutdown timeout of {grace:?} exceeded with requests still open; \
             stopping anyway (--dapr-graceful-shutdown-seconds)"
        ));
    }
    tracing::info!("stopped");
    Ok(())
}

/// daprd's socket for one API under --unix-domain-socket: DIR/dapr-<app-id>-<api>.socket.
#[cfg(unix)]
fn bind_unix_socket(dir: &std::path::Path, app_id: &str, api: &str) -> Result<Listeners, String> {
    let path = dir.join(format!("dapr-{app_id}-{api}.socket"));
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("can't listen on {}: {e}", path.display()))?;
    Ok(Listeners::Unix(listener, path))
}

#[cfg(not(unix))]
fn bind_unix_socket(_: &std::path::Path, _: &str, _: &str) -> Result<Listeners, String> {
    Err("--unix-domain-socket needs a Unix system".into())
}

/// The socket file to remove at exit, if the API listens on one.
fn socket_path(listeners: &Listeners) -> Option<std::path::PathBuf> {
    match listeners {
        Listeners::Tcp(_) => None,
        #[cfg(unix)]
        Listeners::Unix(_, path) => Some(path.clone()),
    }
}

/// Names, once, what the command line asked for that dlockd does not do.
fn log_flags_without_effect(args: &DaemonArgs, configuration: &Configuration) {
    if !args.no_effect.is_empty() {
        let flags: Vec<String> = args.no_effect.iter().map(|f| format!("--{f}")).collect();
        tracing::info!(
            "accepted for daprd compatibility, no effect in dlockd: {}",
            flags.join(" ")
        );
    }
    if args.dapr_http_max_request_size.is_some() {
        tracing::warn!(
            "--dapr-http-max-request-size is deprecated (as in daprd); use --max-body-size \
             (the largest body accepted is {} bytes)",
            args.max_body_size()
        );
    }
    if args.enable_metrics && !configuration.metrics_enabled {
        tracing::info!(
            "{}: spec.metric.enabled is false: metrics are off",
            configuration.file.display()
        );
    }
    if !args.positional.is_empty() {
        tracing::warn!(
            "ignoring arguments that are not flags, as daprd does: {:?} (a bool flag takes \
             a value only as --flag=false)",
            args.positional
        );
    }
}

/// Says, once, what the Configuration file changes and what of it dlockd leaves aside.
fn log_configuration(configuration: &Configuration, access: &ApiAccess) {
    let file = configuration.file.display();
    for warning in &configuration.warnings {
        tracing::warn!("{file}: {warning}");
    }
    if let Some(closed) = access.describe_closed() {
        tracing::info!("{file}: spec.api closes {closed}");
    }
    if !configuration.ignored.is_empty() {
        tracing::info!(
            "{file}: not applied, no meaning for a lock sidecar: {}",
            configuration.ignored.join(", ")
        );
    }
}

fn ready_line(
    sidecar: &ApiState,
    [http, grpc]: [&Listeners; 2],
    metrics: Option<std::net::SocketAddr>,
    source: &str,
) -> String {
    let stores: Vec<String> = sidecar
        .locks
        .registry()
        .iter()
        .map(|s| format!("{} ({})", s.name, s.location()))
        .collect();
    let stores = if stores.is_empty() {
        "none (lock calls will answer ERR_LOCK_STORE_NOT_CONFIGURED)".to_string()
    } else {
        stores.join(", ")
    };
    format!(
        "dlockd ready: gRPC on {} HTTP on {} metrics {} app id '{}' lock stores: {} from {}{}",
        grpc.describe(),
        http.describe(),
        metrics.map_or("off".to_string(), |address| format!("on {address}")),
        sidecar.locks.app_id(),
        stores,
        source,
        if sidecar.api_token.is_set() {
            "; API token required"
        } else {
            ""
        },
    )
}

/// A future that completes on SIGINT or SIGTERM (Ctrl-C, Ctrl-Break or closing the console on
/// Windows); the handlers are installed on the call.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut interrupt = Interrupt::new()?;
    Ok(async move { interrupt.wait().await })
}
