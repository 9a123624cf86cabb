//! `assent-bench`: starts `assent serve` on a fresh store, loads it over HTTP on 127.0.0.1,
//! prints throughput and latency per run, and checks after each run that nothing was lost or
//! duplicated. Exits non-zero when an invariant breaks or a request fails.

mod client;
mod error;
mod receiver;
mod report;
mod runs;
mod server;

use clap::Parser;
use client::Api;
use error::BenchError;
use receiver::Receiver;
use report::{table_header, table_row};
use runs::{Plan, RUNS};
use server::Backing;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Seconds each run lasts in `--quick` mode.
const QUICK_SECONDS: u64 = 2;
/// Connections at most in `--quick` mode.
const QUICK_CONNECTIONS_MAX: usize = 16;

#[derive(Parser)]
#[command(about = "Load an Assent server over HTTP and check that nothing was lost")]
struct Args {
    /// The `assent` binary to start; by default the one next to this program.
    #[arg(long)]
    assent_bin: Option<PathBuf>,
    /// A PostgreSQL server URL: the bench creates a database there, and drops it after.
    /// Without it the store is SQLite in a temporary directory.
    #[arg(long)]
    postgres: Option<String>,
    /// Concurrent connections of the loaded runs.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds each run lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// A run to do (repeatable); by default all of them.
    #[arg(long = "run", value_parser = clap::builder::PossibleValuesParser::new(RUNS))]
    runs: Vec<String>,
    /// Small counts and 2-second runs: a smoke test that still checks every invariant.
    #[arg(long)]
    quick: bool,
    /// One JSON line per run on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Executions the parked run parks in a store of its own.
    #[arg(long, default_value_t = 1_000_000)]
    parked: usize,
    /// Dispatches per second of the parked run's fixed-rate leg; by default half the
    /// maximum it measured just before.
    #[arg(long)]
    rate: Option<f64>,
    /// SLA deadlines the deadlines run spreads evenly over its window.
    #[arg(long, default_value_t = 100_000)]
    deadlines: usize,
    /// SLA deadlines due within one second in the middle of the window.
    #[arg(long, default_value_t = 10_000)]
    deadline_burst: usize,
    /// Seconds the spread deadlines cover.
    #[arg(long, default_value_t = 600)]
    deadline_window_seconds: u64,
}

impl Args {
    fn plan(&self) -> Plan {
        let connections = self.connections.max(1);
        if self.quick {
            return Plan {
                connections: connections.min(QUICK_CONNECTIONS_MAX),
                duration: Duration::from_secs(QUICK_SECONDS),
                replay_keys: 100,
                parked_executions: 200,
                parked_run_size: 200,
                dispatch_rate: self.rate,
                deadlines_spread: 100,
                deadlines_burst: 50,
                deadline_window: Duration::from_secs(3),
            };
        }
        Plan {
            connections,
            duration: Duration::from_secs(self.seconds),
            replay_keys: 1_000,
            parked_executions: 5_000,
            parked_run_size: self.parked.max(1),
            dispatch_rate: self.rate,
            deadlines_spread: self.deadlines,
            deadlines_burst: self.deadline_burst,
            deadline_window: Duration::from_secs(self.deadline_window_seconds.max(1)),
        }
    }

    fn assent_bin(&self) -> Result<PathBuf, BenchError> {
        if let Some(bin) = &self.assent_bin {
            return Ok(bin.clone());
        }
        let me = std::env::current_exe().map_err(|e| BenchError::Server(format!("{e}")))?;
        Ok(me.with_file_name("assent"))
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let backing = match open(&args).await {
        Ok(backing) => backing,
        Err(e) => {
            eprintln!("assent-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let benched = bench(&args, &backing).await;
    let closed = backing.close().await;
    match benched.and(closed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_violation() => {
            eprintln!("assent-bench: INVARIANT VIOLATED: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("assent-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn open(args: &Args) -> Result<Backing, BenchError> {
    let bin = args.assent_bin()?;
    match &args.postgres {
        Some(url) => Backing::postgres(&bin, url).await,
        None => Backing::sqlite(&bin),
    }
}

/// Starts the server, does the runs in order, and stops the server.
async fn bench(args: &Args, backing: &Backing) -> Result<(), BenchError> {
    let creds = backing.create_workspace().await?;
    let receiver = Arc::new(Receiver::start().await?);
    let server = backing.serve(Some(&receiver.ca_file)).await?;
    let api = Api::new(&server.base_url, &creds)?;
    let plan = args.plan();
    let selected: Vec<&str> = if args.runs.is_empty() {
        RUNS.to_vec()
    } else {
        RUNS.iter().copied().filter(|run| args.runs.iter().any(|r| r == run)).collect()
    };

    let table = |line: String| if args.json { eprintln!("{line}") } else { println!("{line}") };
    table(table_header());
    let mut outcome = Ok(());
    for name in selected {
        match runs::run(name, &api, &receiver, plan, backing).await {
            Ok(reports) => {
                for report in reports {
                    table(table_row(&report));
                    if let Some(note) = report.note {
                        table(format!("  note: {note}"));
                    }
                    if let Some(figures) = report.figures_line() {
                        table(format!("  figures: {figures}"));
                    }
                    if args.json {
                        println!("{}", report.json_line());
                    }
                }
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let stopped = server.stop().await;
    outcome.and(stopped)
}
