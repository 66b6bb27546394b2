//! dlock, the command-line client: `dlock KEY SECONDS [-- CMD ARGS…]`, the operator's
//! `inspect`, `list`, `release --force`, `status` and `top`, and `dlock bench`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use dlock::cli::bench::{self, Bench};
use dlock::cli::connect;
use dlock::cli::handover::{self, Handover};
use dlock::cli::hold;
use dlock::cli::hold_request::{self, Hold};
use dlock::cli::inspect;
use dlock::cli::status;
use dlock::cli::top;
use dlock::cli::Exit;
use dlock::lock::Kind;
use std::time::Duration;

/// mimalloc, as in dlockd: `dlock bench` is the load generator of the published figures, and
/// glibc's malloc and free took a ninth of its CPU per lock+unlock pair (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dlock",
    version,
    about = "Take a distributed lock through a dlockd sidecar",
    long_about = "Take a distributed lock through a dlockd sidecar.\n\n\
        dlock calls dlockd's own API (dlock.v1.Locks: waiting, renewal, inspection), which \
        daprd does not serve; only `dlock bench` without --handover uses Dapr's API alone \
        and so also measures a daprd.\n\n\
        dlock KEY SECONDS takes lock KEY, waiting while another owner holds it, holds it for \
        SECONDS and releases it. dlock KEY SECONDS -- CMD ARGS... runs CMD while holding the \
        lock, however long CMD runs: the sidecar renews the lock (SECONDS is its expiry, the \
        most it outlives a crashed dlock). CMD finds DLOCK_KEY and DLOCK_FENCING_TOKEN in its \
        environment.\n\n\
        Exit codes: 0 done; 1 not acquired (-n, --wait ran out), the store refused or failed, \
        or the lock expired or was released by an operator before dlock released it; 2 bad \
        usage; 3 the sidecar could not be reached, or the endpoint is not its gRPC port; 4 \
        the lock was lost while CMD ran (CMD got SIGTERM); 130 interrupted (a held lock is \
        released first); with a command, the command's code.",
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    hold: HoldArgs,

    #[command(flatten)]
    target: Target,
}

/// `dlock KEY SECONDS [-- CMD]`, and the same as `dlock hold …`.
#[derive(Args)]
struct HoldArgs {
    /// The lock to take (Dapr's resourceId). A key that is also a subcommand's name (status,
    /// top, list…) is taken with `dlock hold KEY SECONDS`.
    #[arg(required = true)]
    key: Option<String>,

    /// How long to hold it, in seconds: 1 to 2147483647, the range of Dapr's
    /// expiryInSeconds.
    #[arg(required = true, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(1..=i64::from(i32::MAX)))]
    seconds: Option<i64>,

    /// A command to run while holding the lock.
    #[arg(last = true, value_name = "CMD")]
    run: Vec<String>,

    /// The lock owner. Default: this host's name and dlock's process id.
    #[arg(long)]
    owner: Option<String>,

    /// Wait at most this many seconds for the lock (fractions allowed). Default: as long as
    /// it takes.
    #[arg(long, value_name = "SECONDS", conflicts_with = "no_wait")]
    wait: Option<f64>,

    /// Fail at once if the lock is held, instead of waiting (like flock -n).
    #[arg(short = 'n', long = "no-wait")]
    no_wait: bool,

    /// Take the lock shared: shared holders coexist, an exclusive one waits for them all (a
    /// read lock).
    #[arg(long)]
    shared: bool,

    /// At most N shared holders at once (a semaphore: `--limit 3`); implies --shared. Every
    /// holder of a key must give the same limit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,

    /// The owner may take the lock again while holding it (give the same --owner): one more
    /// hold, the same fencing token.
    #[arg(long)]
    reentrant: bool,

    /// One more key to take with KEY, all or none, in one lock (a multi-lock); repeat it for
    /// more. The keys are held under one expiry, renewed together, and released together.
    #[arg(long, value_name = "KEY")]
    also: Vec<String>,
}

#[derive(Args)]
struct Target {
    /// The sidecar's gRPC endpoint. Default: $DAPR_GRPC_ENDPOINT, else 127.0.0.1:$DAPR_GRPC_PORT,
    /// else 127.0.0.1:50001.
    #[arg(long, global = true)]
    endpoint: Option<String>,

    /// The lock store's component name.
    #[arg(long, global = true, default_value = "lockstore")]
    store: String,
}

#[derive(Subcommand)]
enum Command {
    /// Take KEY as `dlock KEY SECONDS [-- CMD]` does: for a KEY that is also a subcommand's
    /// name (`dlock hold status 30`).
    Hold(HoldArgs),
    /// Show who holds KEY, for how long, with which fencing token. Exits 1 when it is free.
    Inspect { key: String },
    /// List the held locks whose keys start with PREFIX.
    List { prefix: Option<String> },
    /// Release KEY whoever holds it. Needs --force and DLOCK_ADMIN_TOKEN (the sidecar's).
    Release {
        /// Required: this frees a lock someone else may be relying on.
        #[arg(long, required = true)]
        force: bool,
        key: String,
    },
    /// Show the sidecar's lock stores: type, servers, capabilities and health (ok, or failing
    /// since when and why). Exits 1 when a store is failing.
    Status,
    /// A live view of the held locks of every store and their waiters, redrawn every second
    /// until q or Ctrl-C (q then Enter on Windows). Waiters are those waiting through this
    /// sidecar.
    Top {
        /// Only the locks whose resource ids start with PREFIX.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Stop after this many refreshes (for scripts).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        iterations: Option<u32>,
    },
    /// Measure lock+unlock pairs per second and their latency through a sidecar.
    Bench {
        /// Concurrent clients, each on its own connection.
        #[arg(short = 'c', long, default_value_t = 50)]
        clients: usize,
        /// gRPC connections the clients share, round robin. One, like an application whose
        /// SDK client multiplexes all its calls on one channel. HTTP clients each have their own.
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Total lock attempts (each followed by an unlock when granted).
        #[arg(short = 'n', long, default_value_t = 100_000)]
        requests: usize,
        /// Which of the sidecar's APIs to load.
        #[arg(long, value_enum, default_value_t = bench::Protocol::Grpc)]
        protocol: bench::Protocol,
        /// Whether clients lock distinct keys or one shared key.
        #[arg(long, value_enum, default_value_t = bench::Keys::Distinct)]
        keys: bench::Keys,
        /// The sidecar's HTTP endpoint, for --protocol http. Default: $DAPR_HTTP_ENDPOINT,
        /// else 127.0.0.1:$DAPR_HTTP_PORT, else 127.0.0.1:3500.
        #[arg(long)]
        http_endpoint: Option<String>,
        /// The expiry of each lock, in seconds.
        #[arg(long, default_value_t = 10)]
        expiry: i32,
        /// Measure hand-over instead: the clients wait for one key in the blocking acquire,
        /// and each sample is the time from a release to the next waiter's grant (-n grants).
        #[arg(long)]
        handover: bool,
    },
}

// One thread: dlock is a client, and as a load generator (like redis-benchmark) it should
// leave the other cores to the sidecar it measures.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let grpc_endpoint = connect::grpc_endpoint(cli.target.endpoint.as_deref());
    let outcome = match cli.command {
        Some(Command::Bench {
            clients,
            connections,
            requests,
            protocol,
            keys,
            http_endpoint,
            expiry,
            handover,
        }) => {
            if handover {
                return exit(
                    handover::run(Handover {
                        clients: clients.max(1),
                        grants: requests,
                        store: cli.target.store,
                        endpoint: grpc_endpoint,
                    })
                    .await,
                );
            }
            bench::run(Bench {
                clients: clients.max(1),
                connections: connections.max(1),
                pairs: requests,
                protocol,
                keys,
                store: cli.target.store,
                grpc_endpoint,
                http_endpoint: connect::http_endpoint(http_endpoint.as_deref()),
                expiry_seconds: expiry,
            })
            .await
        }
        Some(Command::Inspect { key }) => {
            inspect::inspect(&grpc_endpoint, &cli.target.store, &key).await
        }
        Some(Command::List { prefix }) => {
            inspect::list(
                &grpc_endpoint,
                &cli.target.store,
                prefix.as_deref().unwrap_or(""),
            )
            .await
        }
        Some(Command::Status) => status::status(&grpc_endpoint).await,
        Some(Command::Top { prefix, iterations }) => {
            top::top(&grpc_endpoint, &prefix, iterations).await
        }
        Some(Command::Release { key, .. }) => {
            inspect::force_release(&grpc_endpoint, &cli.target.store, &key).await
        }
        Some(Command::Hold(args)) => return take(args, cli.target, grpc_endpoint).await,
        None => return take(cli.hold, cli.target, grpc_endpoint).await,
    };
    exit(outcome)
}

/// `dlock KEY SECONDS [-- CMD]`.
async fn take(args: HoldArgs, target: Target, endpoint: String) -> ExitCode {
    let wait = match (args.no_wait, args.wait) {
        (true, _) => Some(Duration::ZERO),
        (false, Some(seconds)) => match Duration::try_from_secs_f64(seconds) {
            Ok(wait) => Some(wait),
            Err(_) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "dlock: --wait takes a number of seconds, 0 or more"
                );
                return ExitCode::from(2);
            }
        },
        (false, None) => None,
    };
    let (Some(key), Some(seconds)) = (args.key, args.seconds) else {
        let _ = writeln!(std::io::stderr(), "dlock: KEY and SECONDS are required");
        return ExitCode::from(2);
    };
    let mut kind = match (args.shared, args.limit) {
        (false, None) => Kind::PLAIN,
        (_, limit) => Kind::shared(limit.unwrap_or(0)),
    };
    if args.reentrant {
        kind = kind.reentrant();
    }
    let outcome = hold::run(Hold {
        kind,
        wait,
        key,
        also: args.also,
        // Within 1..=i32::MAX: clap checked the range.
        seconds: u32::try_from(seconds).unwrap_or(1),
        command: args.run,
        store: target.store,
        owner: args.owner.unwrap_or_else(hold_request::default_owner),
        endpoint,
    })
    .await;
    exit(outcome)
}

fn exit(outcome: Exit) -> ExitCode {
    ExitCode::from(outcome.code().clamp(0, 255) as u8)
}
