//! dlockd's command line: daprd's flags, so a start script or a `dapr run` habit carries over.
//! Every daprd 1.18 flag is accepted, spelled as daprd's pflag takes it; those that mean
//! something for a lock sidecar are fields of `DaemonArgs`, the rest are in `NO_EFFECT`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};

/// The daprd release whose flags dlockd accepts, and what `dlockd --version` prints. The
/// `dapr` CLI runs `daprd --version` before every command and compares the answer as a semver:
/// below 1.14.0-rc.1, or anything that is not a semver (dlock's own `0.x`, or "dlock 0.1.0"),
/// makes `dapr run` blank `--scheduler-host-address` and leaves its value as a stray argument,
/// and `dapr --version` would show a runtime version that means nothing to a Dapr user. So
/// dlockd answers as the daprd it stands in for; `--build-info` also names dlock's own version.
pub const DAPRD_VERSION: &str = "1.18.3";

/// daprd's flags that mean nothing for a lock sidecar, as (name, takes a value). They are
/// accepted so that `dapr run` and daprd start scripts work unchanged, and named once in the
/// log. One table rather than a clap field each: a field would be a value nothing reads, and
/// the list of what dlockd ignores stays readable in one place.
const NO_EFFECT: &[(&str, bool)] = &[
    ("mode", true),
    ("dapr-public-port", true),
    ("dapr-public-listen-address", true),
    ("dapr-internal-grpc-port", true),
    ("dapr-internal-grpc-listen-address", true),
    ("app-protocol", true),
    ("app-channel-address", true),
    ("app-max-concurrency", true),
    ("app-ssl", false),
    ("profile-port", true),
    ("enable-profiling", false),
    ("control-plane-address", true),
    ("sentry-address", true),
    ("control-plane-trust-domain", true),
    ("control-plane-namespace", true),
    ("sentry-request-jwt-audiences", true),
    ("enable-mtls", false),
    ("allowed-origins", true),
    // dlockd's HTTP and gRPC servers keep their own header limits.
    ("read-buffer-size", true),
    ("dapr-http-read-buffer-size", true),
    ("disable-builtin-k8s-secret-store", false),
    ("enable-app-health-check", false),
    ("app-health-check-path", true),
    ("app-health-probe-interval", true),
    ("app-health-probe-timeout", true),
    ("app-health-threshold", true),
    ("disable-init-endpoints", true),
    ("placement-host-address", true),
    ("scheduler-host-address", true),
    ("scheduler-job-streams", true),
    ("actors-disseminate-timeout", true),
    ("hot-reload-reconcile-interval", true),
    ("app-binding-options-timeout", true),
    ("reminders-service", true),
    ("actors-service", true),
    ("wait", false),
    ("log-file", true),
];

#[derive(Debug, Clone, Parser)]
#[command(
    name = "dlockd",
    about = "A Dapr-compatible distributed-lock sidecar",
    long_about = "A Dapr-compatible distributed-lock sidecar. Serves Dapr's lock API \
                  (TryLockAlpha1, UnlockAlpha1) over gRPC and HTTP, backed by the lock stores \
                  named in Dapr component files.",
    // pflag lets a later flag override an earlier one; so must dlockd, because `dapr run`
    // and wrapper scripts append to argument lists.
    args_override_self = true
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

    /// A folder of component files (repeatable). Without any, no folder is read (not even
    /// ./components) and an embedded in-memory store named `lockstore` is served.
    #[arg(
        long = "resources-path",
        visible_alias = "components-path",
        value_name = "DIR"
    )]
    pub resources_paths: Vec<PathBuf>,

    /// A daprd Configuration file (kind: Configuration). Its API allow and deny lists
    /// (spec.api) and spec.logging.apiLogging.enabled apply; the sections that mean nothing
    /// for a lock sidecar are named once in the log.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log every API call at info: method, store, resource id, owner, outcome, duration.
    /// Default: the Configuration's spec.logging.apiLogging.enabled, else off.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL")]
    pub enable_api_logging: Option<bool>,

    /// Apply component files added, changed or removed under --resources-path while running,
    /// within 2 seconds (dlockd's own flag). Default: on, unless the Configuration's
    /// spec.features turns HotReload off (enabled: false); --hot-reload=false turns it off.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL")]
    pub hot_reload: Option<bool>,

    /// The least severe log messages shown.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Log as JSON lines instead of text.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub log_as_json: bool,

    /// Comma-separated IP addresses to listen on. Default: loopback only (127.0.0.1 and ::1).
    #[arg(long, value_delimiter = ',', value_name = "ADDRS")]
    pub dapr_listen_addresses: Vec<IpAddr>,

    /// The largest request body or gRPC message accepted (e.g. 4Mi). Default: 4Mi.
    #[arg(long, value_parser = parse_size)]
    pub(crate) max_body_size: Option<usize>,

    /// Deprecated by daprd: --max-body-size in whole MiB. --max-body-size wins over it.
    #[arg(long, value_name = "MB")]
    pub dapr_http_max_request_size: Option<usize>,

    /// Seconds that requests in flight get to finish after SIGINT or SIGTERM; then dlockd
    /// exits with status 1. 0 waits without limit; a negative number means the default, 5.
    #[arg(
        long,
        default_value_t = 5,
        allow_hyphen_values = true,
        value_name = "SECONDS"
    )]
    pub(crate) dapr_graceful_shutdown_seconds: i64,

    /// On SIGINT or SIGTERM, keep serving this long (e.g. 10s) before shutting down, so that
    /// the app can still release its locks while it stops.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub dapr_block_shutdown_duration: Option<Duration>,

    /// Serve the HTTP and gRPC APIs only on Unix sockets in this folder, named as daprd names
    /// them: dapr-<app-id>-http.socket and dapr-<app-id>-grpc.socket.
    #[arg(long, value_name = "DIR")]
    pub unix_domain_socket: Option<PathBuf>,

    /// Threads serving requests (dlockd's own flag). One is the default: a lock request costs
    /// the sidecar microseconds, one thread serves tens of thousands a second, and a sidecar
    /// should leave the host's other cores to the application beside it. One thread means
    /// tokio's current-thread runtime, more a multi-thread runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: u16,

    /// How long an HTTP request may take to arrive whole, head and body, from its first byte
    /// (dlockd's own flag); a slower one's connection is closed.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub http_header_read_timeout: Duration,

    /// How long an HTTP connection may stay open with no request (dlockd's own flag). Longer
    /// than the idle time of HTTP clients' connection pools (60 to 90 s in .NET, Go and
    /// Python's), so that the client, not the sidecar, closes a connection it no longer uses.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub http_idle_timeout: Duration,

    /// The most connections open at once, HTTP and gRPC together (dlockd's own flag); one
    /// more is closed as soon as it is accepted.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// How often a quiet client connection is checked for a live peer (dlockd's own flag):
    /// an HTTP/2 ping at this interval, answered within as long, and TCP keepalive probes
    /// after this long idle. A client host that vanishes without closing its connections (a
    /// crash, a pulled cable) is noticed within about twice this over HTTP/2 and gRPC, and
    /// its sessions end and release their locks; a plain HTTP/1 session is noticed by TCP's
    /// probes, within about four times this.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub client_keepalive: Duration,

    /// The most requests one HTTP/2 or gRPC connection may have open at once (dlockd's own
    /// flag); a client opening more waits for one to finish, as HTTP/2 prescribes.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_connection: u32,

    /// The most blocking acquires (and sessions waiting for their grant) this sidecar keeps
    /// waiting at once, across all connections and stores (dlockd's own flag); one more is
    /// refused at once with ERR_TOO_MANY_WAITERS.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_waiters: u32,

    /// Start even when the component files give no lock store (dlockd's own flag): every lock
    /// call then answers ERR_LOCK_STORE_NOT_CONFIGURED. Without it, a --resources-path that
    /// yields no lock store (a typo, a scope, an ignoreErrors component that failed) stops
    /// start-up saying so.
    #[arg(long)]
    pub allow_no_lock_store: bool,

    /// How often every lock store is asked a cheap question (a read of one key) in the
    /// background, so that `dlock status`, the metrics, the console and the log show an
    /// outage within this long even while no application calls (dlockd's own flag; 0 turns
    /// the probe off). One read per interval per sidecar costs a store nothing noticeable.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub health_probe_interval: Duration,

    /// The port Prometheus scrapes (0: pick a free one; the ready line says which).
    #[arg(long, default_value_t = 9090)]
    pub metrics_port: u16,

    /// The address the metrics port listens on: an IP address or a host name (daprd's
    /// default, all interfaces, when not given).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_listen_address: Option<String>,

    /// Whether to serve metrics (on by default, as in daprd; the Configuration's
    /// spec.metric.enabled: false turns them off too).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_metrics: bool,

    /// Print the daprd version dlockd stands in for, and exit.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub version: bool,

    /// Print that version, and dlock's own, in daprd's build-info format, and exit.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub build_info: bool,

    /// Words that are not flags. daprd ignores them, and `--some-bool false` leaves one
    /// (pflag takes a bool's value only after `=`); dlockd names them in the log.
    #[arg(hide = true)]
    pub positional: Vec<String>,

    /// The flags given from `NO_EFFECT`, in table order.
    #[arg(skip)]
    pub no_effect: Vec<&'static str>,
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

fn parse_duration(text: &str) -> Result<Duration, String> {
    super::duration::parse(text)
}

/// A no-effect flag as clap takes it: a value flag takes the next word even when it starts
/// with `-` (`dapr run` passes `--profile-port -1`), a bool flag takes a value only after `=`.
fn no_effect_arg(name: &'static str, takes_value: bool) -> Arg {
    let arg = Arg::new(name)
        .long(name)
        .help_heading("Accepted for daprd compatibility; no effect in dlockd");
    if takes_value {
        arg.action(ArgAction::Append)
            .num_args(1)
            .allow_hyphen_values(true)
    } else {
        arg.action(ArgAction::Set)
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_parser(clap::builder::BoolishValueParser::new())
    }
}

impl DaemonArgs {
    /// Parses daprd-style arguments, printing the error and exiting with status 2 (as daprd
    /// does) when they are wrong.
    pub fn parse_daprd_style(args: impl IntoIterator<Item = String>) -> Self {
        Self::try_parse_daprd_style(args).unwrap_or_else(|e| e.exit())
    }

    /// Parses daprd-style arguments. daprd gives every `-name` longer than two characters a
    /// second dash before parsing, and start scripts use both spellings, so dlockd does too
    /// (a negative number such as `-1` is left alone).
    pub(crate) fn try_parse_daprd_style(
        args: impl IntoIterator<Item = String>,
    ) -> Result<Self, clap::Error> {
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
        let command = NO_EFFECT
            .iter()
            .fold(Self::command(), |command, &(name, takes_value)| {
                command.arg(no_effect_arg(name, takes_value))
            });
        let matches = command.try_get_matches_from(args)?;
        let mut parsed = Self::from_arg_matches(&matches)?;
        parsed.no_effect = NO_EFFECT
            .iter()
            .map(|&(name, _)| name)
            .filter(|name| matches.value_source(name) == Some(ValueSource::CommandLine))
            .collect();
        Ok(parsed)
    }

    /// The host the metrics port listens on: --metrics-listen-address, else daprd's default,
    /// every interface.
    pub fn metrics_host(&self) -> &str {
        self.metrics_listen_address
            .as_deref()
            .filter(|host| !host.is_empty())
            .unwrap_or("0.0.0.0")
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

    /// The largest body accepted: --max-body-size, else the deprecated
    /// --dapr-http-max-request-size (in MiB, as daprd counts it), else daprd's 4Mi.
    pub fn max_body_size(&self) -> usize {
        self.max_body_size
            .or_else(|| {
                self.dapr_http_max_request_size
                    .map(|mb| mb.saturating_mul(1 << 20))
            })
            .unwrap_or(4 << 20)
    }

    /// How long requests in flight get after the shutdown signal; None: no limit. daprd's
    /// meaning: 0 waits forever, a negative number is the default 5 seconds.
    pub fn shutdown_grace(&self) -> Option<Duration> {
        match self.dapr_graceful_shutdown_seconds {
            0 => None,
            seconds if seconds < 0 => Some(Duration::from_secs(5)),
            seconds => Some(Duration::from_secs(seconds.unsigned_abs())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_parse(args: &[&str]) -> Result<DaemonArgs, clap::Error> {
        DaemonArgs::try_parse_daprd_style(
            std::iter::once("dlockd")
                .chain(args.iter().copied())
                .map(String::from),
        )
    }

    fn parse(args: &[&str]) -> DaemonArgs {
        try_parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn daprd_defaults() {
        let args = parse(&[]);
        assert_eq!(args.dapr_http_port, 3500);
        assert_eq!(args.dapr_grpc_port, 50001);
        assert_eq!(args.max_body_size(), 4 << 20);
        assert_eq!(args.shutdown_grace(), Some(Duration::from_secs(5)));
        assert_eq!(args.dapr_block_shutdown_duration, None);
        assert!(args.enable_metrics);
        assert!(!args.log_as_json);
        assert!(!args.version);
        assert!(args.no_effect.is_empty());
        assert_eq!(args.listen_addresses().len(), 2);
        assert_eq!(args.enable_api_logging, None);
    }

    #[test]
    fn api_logging_is_a_bool_flag() {
        assert_eq!(
            parse(&["--enable-api-logging"]).enable_api_logging,
            Some(true)
        );
        assert_eq!(
            parse(&["-enable-api-logging=false"]).enable_api_logging,
            Some(false)
        );
    }

    #[test]
    fn hot_reload_is_a_bool_flag() {
        assert_eq!(parse(&[]).hot_reload, None);
        assert_eq!(parse(&["--hot-reload"]).hot_reload, Some(true));
        assert_eq!(parse(&["-hot-reload=false"]).hot_reload, Some(false));
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

    #[test]
    fn no_effect_flags_in_every_spelling_are_named() {
        let args = parse(&[
            "--app-protocol",
            "http",
            "-app-max-concurrency",
            "-1",
            "--profile-port=-1",
            "-placement-host-address=localhost:50005",
            "--scheduler-host-address",
            "localhost:50006",
            "--app-ssl",
            "-enable-mtls=false",
            "--enable-profiling=true",
        ]);
        assert_eq!(
            args.no_effect,
            [
                "app-protocol",
                "app-max-concurrency",
                "app-ssl",
                "profile-port",
                "enable-profiling",
                "enable-mtls",
                "placement-host-address",
                "scheduler-host-address",
            ]
        );
        assert!(args.positional.is_empty(), "{:?}", args.positional);
    }

    #[test]
    fn every_daprd_flag_is_accepted() {
        for &(name, takes_value) in NO_EFFECT {
            let flag = format!("--{name}");
            let given: &[&str] = if takes_value { &[&flag, "x"] } else { &[&flag] };
            assert_eq!(parse(given).no_effect, [name]);
        }
    }

    #[test]
    fn bools_take_a_value_only_after_an_equals_sign_as_pflag_does() {
        let args = parse(&["--log-as-json", "false"]);
        assert!(args.log_as_json);
        assert_eq!(args.positional, ["false"]);
        assert!(!parse(&["--log-as-json=false"]).log_as_json);
        assert!(parse(&["-log-as-json=true"]).log_as_json);
        assert!(try_parse(&["--log-as-json=maybe"]).is_err());
    }

    #[test]
    fn a_later_flag_overrides_an_earlier_one() {
        let args = parse(&["--dapr-http-port", "1", "--dapr-http-port=2"]);
        assert_eq!(args.dapr_http_port, 2);
    }

    #[test]
    fn an_unknown_flag_is_an_error_naming_it() {
        for spelling in ["--no-such-flag", "-no-such-flag=1"] {
            let error = try_parse(&[spelling]).unwrap_err().to_string();
            assert!(error.contains("--no-such-flag"), "{error}");
        }
    }

    #[test]
    fn the_deprecated_request_size_counts_mib_and_yields_to_max_body_size() {
        assert_eq!(
            parse(&["--dapr-http-max-request-size", "8"]).max_body_size(),
            8 << 20
        );
        let both = parse(&["--dapr-http-max-request-size=8", "--max-body-size", "1Mi"]);
        assert_eq!(both.max_body_size(), 1 << 20);
    }

    #[test]
    fn shutdown_timing_as_daprd_reads_it() {
        let grace = |n: &str| parse(&["--dapr-graceful-shutdown-seconds", n]).shutdown_grace();
        assert_eq!(grace("2"), Some(Duration::from_secs(2)));
        assert_eq!(grace("0"), None);
        assert_eq!(grace("-1"), Some(Duration::from_secs(5)));
        let block = parse(&["-dapr-block-shutdown-duration=1m30s"]);
        assert_eq!(
            block.dapr_block_shutdown_duration,
            Some(Duration::from_secs(90))
        );
        assert!(try_parse(&["--dapr-block-shutdown-duration", "90"]).is_err());
    }

    #[test]
    fn version_flags() {
        assert!(parse(&["--version"]).version);
        assert!(parse(&["-version"]).version);
        assert!(parse(&["--build-info"]).build_info);
    }
}
