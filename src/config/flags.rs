//! dlockd's command line: daprd's flags, so a start script or a `dapr run` habit carries over.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "dlockd",
    version,
    about = "A Dapr-compatible distributed-lock sidecar",
    long_about = "A Dapr-compatible distributed-lock sidecar. Serves Dapr's lock API \
                  (TryLockAlpha1, UnlockAlpha1) over gRPC and HTTP, backed by the lock stores \
                  named in Dapr component files."
)]
pub struct DaemonArgs {
    /// The application id; part of every lock key unless the store's keyPrefix says otherwise.
    #[arg(long, default_value = "")]
    pub app_id: String,

    /// The HTTP port of Dapr's API (0 picks a free port).
    #[arg(long, default_value_t = 3500)]
    pub dapr_http_port: u16,

    /// The gRPC port of Dapr's API (0 picks a free port).
    #[arg(long, default_value_t = 50001)]
    pub dapr_grpc_port: u16,

    /// The application's port. Accepted for daprd compatibility; dlockd never calls the app.
    #[arg(long)]
    pub app_port: Option<u16>,

    /// A folder of component files (repeatable). Without any, ./components is read if it
    /// exists, else an embedded in-memory store named `lockstore` is served.
    #[arg(
        long = "resources-path",
        visible_alias = "components-path",
        value_name = "DIR"
    )]
    pub resources_paths: Vec<PathBuf>,

    /// A Dapr Configuration file. Accepted for daprd compatibility; nothing in it applies to
    /// the lock API.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// The least severe log messages shown.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Log as JSON lines instead of text.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", value_name = "BOOL")]
    pub log_as_json: bool,

    /// Comma-separated IP addresses to listen on. Default: loopback only (127.0.0.1 and ::1).
    #[arg(long, value_delimiter = ',', value_name = "ADDRS")]
    pub dapr_listen_addresses: Vec<IpAddr>,

    /// The largest request body or gRPC message accepted (e.g. 4Mi).
    #[arg(long, default_value = "4Mi", value_parser = parse_size)]
    pub max_body_size: usize,

    /// Threads serving requests (dlockd's own flag). One is the default: a lock request costs
    /// the sidecar microseconds, one thread serves tens of thousands a second, and a sidecar
    /// should leave the host's other cores to the application beside it. One thread means
    /// tokio's current-thread runtime, more a multi-thread runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: u16,

    /// The metrics port. Accepted for daprd compatibility; metrics are not served yet.
    #[arg(long, default_value_t = 9090)]
    pub metrics_port: u16,

    /// Whether to serve metrics. Accepted for daprd compatibility; not served yet.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", value_name = "BOOL")]
    pub enable_metrics: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    /// daprd's most severe level; shown as errors.
    Fatal,
}

impl LogLevel {
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Fatal => "error",
        }
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    super::size::parse(text)
}

impl DaemonArgs {
    /// Parses daprd-style arguments. Go's flag package accepts `-app-id` as well as
    /// `--app-id`, and daprd start scripts use both, so single-dash long flags are accepted.
    pub fn parse_daprd_style(args: impl IntoIterator<Item = String>) -> Self {
        let args = args.into_iter().map(|arg| {
            let single_dash_long = arg.len() > 2
                && arg.starts_with('-')
                && !arg.starts_with("--")
                && arg[1..].starts_with(|c: char| c.is_ascii_alphabetic());
            if single_dash_long && arg[1..].split('=').next().is_some_and(|n| n.len() > 1) {
                format!("-{arg}")
            } else {
                arg
            }
        });
        Self::parse_from(args)
    }

    /// The addresses to listen on.
    pub fn listen_addresses(&self) -> Vec<IpAddr> {
        if self.dapr_listen_addresses.is_empty() {
            vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
            ]
        } else {
            self.dapr_listen_addresses.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> DaemonArgs {
        DaemonArgs::parse_daprd_style(
            std::iter::once("dlockd")
                .chain(args.iter().copied())
                .map(String::from),
        )
    }

    #[test]
    fn daprd_defaults() {
        let args = parse(&[]);
        assert_eq!(args.dapr_http_port, 3500);
        assert_eq!(args.dapr_grpc_port, 50001);
        assert_eq!(args.max_body_size, 4 << 20);
        assert!(args.enable_metrics);
        assert!(!args.log_as_json);
        assert_eq!(args.listen_addresses().len(), 2);
    }

    #[test]
    fn daprd_spellings() {
        let args = parse(&[
            "-app-id",
            "bpm",
            "--components-path",
            "a",
            "--resources-path=b",
            "--enable-metrics=false",
            "--log-as-json",
            "--dapr-listen-addresses",
            "127.0.0.1,::1",
        ]);
        assert_eq!(args.app_id, "bpm");
        assert_eq!(
            args.resources_paths,
            [PathBuf::from("a"), PathBuf::from("b")]
        );
        assert!(!args.enable_metrics);
        assert!(args.log_as_json);
        assert_eq!(args.listen_addresses().len(), 2);
    }
}
