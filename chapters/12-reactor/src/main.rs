//! `ch12-reactor`: the reactor's life as scenarios, `serve` (the
//! Redis-protocol server) and `bench` (against redis-server).

mod bench;
mod scenarios;

use std::net::SocketAddr;

use anyhow::{Context, Result};
use ch12_reactor::server::{self, Config};
use clap::{CommandFactory, Parser, Subcommand};

const PACKAGE: &str = "ch12-reactor";

#[derive(Parser)]
#[command(name = PACKAGE, about = "a reactor of our own, and a Redis-protocol server on it")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Tokens from a generation slab: register, deregister, and a stale event skipped
    Registration,
    /// A timer among socket events: its deadline is the wait's timeout
    Timer,
    /// Another thread wakes the reactor through an eventfd; wakes add up
    Waker,
    /// SIGTERM arrives on a signalfd; the reactor stops and closes everything
    Shutdown,
    /// A flooding peer and a quiet one: the budget, and a re-queued handler under EPOLLET
    Budget,
    /// Serve the Redis protocol on 127.0.0.1 until Ctrl-C (SIGUSR1 prints stats)
    Serve {
        /// Where to listen (loopback only); port 0 lets the kernel choose,
        /// and the server prints the address it got first.
        #[arg(long, default_value = "127.0.0.1:6380", value_parser = lab_kit::cli::loopback_addr)]
        addr: SocketAddr,
        /// Stop reading a client while this many bytes of replies wait for it.
        #[arg(long, default_value_t = Config::default().out_soft_limit)]
        output_soft_limit: usize,
        /// Close a client once this many bytes of replies wait for it.
        #[arg(long, default_value_t = Config::default().out_hard_limit)]
        output_hard_limit: usize,
        /// Do not log connections (for benchmarks).
        #[arg(long)]
        quiet: bool,
    },
    /// redis-benchmark against this server and redis-server, alternating (see the README)
    ///
    /// Build with --release first: `cargo run --release -p ch12-reactor -- bench`.
    /// Needs redis-benchmark (redis-tools) and redis-server; pins the servers
    /// and the client to different CPUs with taskset when it can.
    Bench {
        /// Rounds (each runs both servers); each row is the median.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Requests per test (redis-benchmark -n).
        #[arg(long, default_value_t = 200_000)]
        requests: u64,
        /// Parallel connections (redis-benchmark -c).
        #[arg(long, default_value_t = 50)]
        clients: u32,
        /// Pipeline depths (redis-benchmark -P), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,16")]
        pipelines: Vec<u32>,
        /// The CPU the servers run on.
        #[arg(long, default_value_t = 0)]
        server_cpu: u32,
        /// The CPU redis-benchmark runs on.
        #[arg(long, default_value_t = 1)]
        client_cpu: u32,
        /// The redis-server to compare with.
        #[arg(long, default_value = "redis-server")]
        redis_server: std::path::PathBuf,
        /// Also write the table (Markdown) to this file.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// redis-benchmark tests (-t), comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "ping_inline,ping_mbulk,set,get,incr"
        )]
        tests: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    lab_kit::cli::run_main(cli_main)
}

fn cli_main() -> Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(command) = cli.command else {
        lab_kit::transcript::print_scenarios(
            PACKAGE,
            "a reactor of our own, and a Redis-protocol server on it",
            &Cli::command(),
        );
        return Ok(());
    };
    match command {
        Command::Serve {
            addr,
            output_soft_limit,
            output_hard_limit,
            quiet,
        } => {
            let listener = lab_kit::cli::bind_loopback(addr)?;
            let config = Config {
                out_soft_limit: output_soft_limit,
                out_hard_limit: output_hard_limit,
                log: !quiet,
                ..Config::default()
            };
            server::serve(listener, config).context("the server's loop failed")
        }
        Command::Bench {
            rounds,
            requests,
            clients,
            pipelines,
            server_cpu,
            client_cpu,
            redis_server,
            out,
            tests,
        } => bench::run(&bench::Plan {
            rounds,
            requests,
            clients,
            pipelines,
            server_cpu,
            client_cpu,
            redis_server,
            out,
            tests,
        }),
        scenario => {
            lab_kit::trace::enable();
            match scenario {
                Command::Registration => scenarios::registration(),
                Command::Timer => scenarios::timer(),
                Command::Waker => scenarios::waker(),
                Command::Shutdown => scenarios::shutdown(),
                Command::Budget => scenarios::budget(),
                Command::Serve { .. } | Command::Bench { .. } => unreachable!("handled above"),
            }
        }
    }
}
