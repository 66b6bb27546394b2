//! dlockd, the sidecar: loads the component files, binds Dapr's ports, serves until SIGINT or
//! SIGTERM (Ctrl-C or Ctrl-Break on Windows).

use std::process::ExitCode;
use std::sync::Arc;

use dlock::api::auth::ApiToken;
use dlock::api::{server, ApiState};
use dlock::config::flags::DaemonArgs;
use dlock::interrupt::Interrupt;
use dlock::lock::LockService;
use dlock::startup::load_components;
use tracing_subscriber::EnvFilter;

/// mimalloc: measured, glibc malloc and free took a sixth of the sidecar's CPU per lock+unlock pair.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = DaemonArgs::parse_daprd_style(std::env::args());
    init_logging(&args);
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
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &DaemonArgs) {
    // The libraries under us are chatty at debug; keep them at warn unless RUST_LOG says more.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=warn",
            args.log_level.as_filter()
        ))
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if args.log_as_json {
        logs.json().init();
    } else {
        logs.init();
    }
}

async fn run(args: DaemonArgs) -> Result<(), String> {
    // Installed before anything else, so a SIGTERM right after the ready line still shuts
    // down gracefully instead of killing the process.
    let shutdown = shutdown_signal().map_err(|e| format!("can't install signal handlers: {e}"))?;
    if args.app_port.is_some() {
        tracing::debug!("--app-port is accepted for daprd compatibility; dlockd calls no app");
    }
    if args.config.is_some() {
        tracing::info!(
            "--config is accepted for daprd compatibility; nothing in it applies to locks"
        );
    }
    if args.enable_metrics {
        tracing::debug!(
            "metrics are not served yet (--metrics-port {})",
            args.metrics_port
        );
    }

    let loaded = load_components(&args.resources_paths, &args.app_id)
        .await
        .map_err(|e| format!("can't load components: {e}"))?;
    let sidecar = Arc::new(ApiState {
        locks: LockService::new(args.app_id.clone(), loaded.registry),
        secret_stores: loaded.secret_stores,
        api_token: ApiToken::from_env("DAPR_API_TOKEN"),
        admin_token: ApiToken::from_env("DLOCK_ADMIN_TOKEN"),
    });

    let defaults = args.dapr_listen_addresses.is_empty();
    let addresses = args.listen_addresses();
    let http = server::bind(&addresses, args.dapr_http_port, defaults)
        .await
        .map_err(|e| format!("HTTP port: {e}"))?;
    let grpc = server::bind(&addresses, args.dapr_grpc_port, defaults)
        .await
        .map_err(|e| format!("gRPC port: {e}"))?;

    tracing::info!("{}", ready_line(&sidecar, &http, &grpc, &loaded.source));
    server::serve(sidecar, http, grpc, args.max_body_size, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

fn ready_line(
    sidecar: &ApiState,
    http: &[tokio::net::TcpListener],
    grpc: &[tokio::net::TcpListener],
    source: &str,
) -> String {
    let addresses = |listeners: &[tokio::net::TcpListener]| {
        listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let stores: Vec<String> = sidecar
        .locks
        .registry()
        .iter()
        .map(|s| format!("{} ({})", s.name, s.type_name))
        .collect();
    let stores = if stores.is_empty() {
        "none (lock calls will answer ERR_LOCK_STORE_NOT_CONFIGURED)".to_string()
    } else {
        stores.join(", ")
    };
    format!(
        "dlockd ready: gRPC on {} HTTP on {} app id '{}' lock stores: {} from {}{}",
        addresses(grpc),
        addresses(http),
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
