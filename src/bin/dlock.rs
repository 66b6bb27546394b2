//! dlock, the command-line client: `dlock KEY SECONDS [-- CMD ARGS…]` and `dlock bench`.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use dlock::cli::bench::{self, Bench};
use dlock::cli::connect;
use dlock::cli::hold::{self, Hold};

#[derive(Parser)]
#[command(
    name = "dlock",
    version,
    about = "Take a distributed lock through a dlockd (or daprd) sidecar",
    long_about = "Take a distributed lock through a dlockd (or daprd) sidecar.\n\n\
        dlock KEY SECONDS takes lock KEY, waiting while another owner holds it, holds it for \
        SECONDS and releases it. dlock KEY SECONDS -- CMD ARGS... runs CMD while holding the \
        lock (at most SECONDS: the lock's expiry) and exits with CMD's code.\n\n\
        Exit codes: 0 done; 1 the store refused or failed, or the lock expired before dlock \
        released it; 2 bad usage; 3 the sidecar could not be reached; 130 interrupted (a held \
        lock is released first); with a command, the command's code.",
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// The lock to take (Dapr's resourceId).
    #[arg(required = true)]
    key: Option<String>,

    /// How long to hold it, in seconds (at least 1).
    #[arg(required = true, value_parser = clap::value_parser!(u32).range(1..))]
    seconds: Option<u32>,

    /// A command to run while holding the lock.
    #[arg(last = true, value_name = "CMD")]
    run: Vec<String>,

    #[command(flatten)]
    target: Target,

    /// The lock owner. Default: this host's name and dlock's process id.
    #[arg(long)]
    owner: Option<String>,
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
    },
}

// One thread: dlock is a client, and as a load generator (like redis-benchmark) it should
// leave the other cores to the sidecar it measures.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let grpc_endpoint = connect::grpc_endpoint(cli.target.endpoint.as_deref());
    let exit = match cli.command {
        Some(Command::Bench {
            clients,
            connections,
            requests,
            protocol,
            keys,
            http_endpoint,
            expiry,
        }) => {
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
        None => {
            hold::run(Hold {
                key: cli.key.expect("clap requires KEY"),
                seconds: cli.seconds.expect("clap requires SECONDS"),
                command: cli.run,
                store: cli.target.store,
                owner: cli.owner.unwrap_or_else(hold::default_owner),
                endpoint: grpc_endpoint,
            })
            .await
        }
    };
    ExitCode::from(exit.code().clamp(0, 255) as u8)
}
