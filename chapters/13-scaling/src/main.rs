//! `ch13-scaling`: what a wait costs as the watched set grows (`waitbench`),
//! what an event loop pays per event (`dispatch`), and the chart (`chart`).

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use ch13_scaling::compare::{self, Comparison};
use ch13_scaling::dispatch::{self, BACKENDS, Chain};
use ch13_scaling::results::{Row, Table, format_ns, format_ratio, markdown_table, thousands};
use ch13_scaling::waitbench::{self, Clock, Outcome, Ready, Settings, median};
use ch13_scaling::{chart, machine};
use clap::{Parser, Subcommand, ValueEnum};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

const PACKAGE: &str = "ch13-scaling";

#[derive(Parser)]
#[command(name = PACKAGE, about = "what a wait costs as the watched set grows")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// A size N, or `max`: the largest multiple of 1,000 the open-file limit
/// allows, up to 20,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Size {
    N(usize),
    Max,
}

impl FromStr for Size {
    type Err = String;
    fn from_str(text: &str) -> Result<Size, String> {
        if text == "max" {
            return Ok(Size::Max);
        }
        match text.replace('_', "").parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Size::N(n)),
            _ => Err(format!(
                "{text:?} is not a size: a whole number of descriptors (at least 1), or `max`"
            )),
        }
    }
}

/// The clock the table and chart use (both are measured).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ClockArg {
    /// This thread's CPU time: the calls' own cost, whatever else runs.
    Cpu,
    /// Elapsed time, as the C program measures it.
    Wall,
}

/// Which of the N descriptors is ready.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReadyArg {
    First,
    Last,
}

/// The wait calls' timeout.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum TimeoutArg {
    /// Block until a descriptor is ready (an event loop's wait).
    Block,
    /// Zero: only look.
    Zero,
}

#[derive(Subcommand)]
enum Command {
    /// Time one select, poll and epoll_wait call with one of N descriptors ready
    ///
    /// Prints a Markdown table: nanoseconds per call at each N, and the
    /// ratios poll/epoll_wait and select/epoll_wait. `--save PREFIX` also
    /// writes PREFIX.md (the table) and PREFIX.svg (the chart).
    Waitbench {
        /// The sizes N (a list); `max` is the largest multiple of 1,000 that
        /// the open-file limit allows, up to 20,000 (ask for more by number).
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000,max")]
        sizes: Vec<Size>,
        /// Blocks per call and N (the result is their median).
        #[arg(long, default_value_t = 9)]
        blocks: usize,
        /// Milliseconds one block aims at.
        #[arg(long, default_value_t = 25.0)]
        block_ms: f64,
        /// Run on this CPU only (sched_setaffinity); the C program too.
        #[arg(long)]
        cpu: Option<usize>,
        /// The clock of the table and chart (--compare-c always compares
        /// elapsed time, the C program's clock).
        #[arg(long, value_enum, default_value = "cpu")]
        clock: ClockArg,
        /// Which descriptor is ready: the last one (select and poll put the
        /// caller on every other one's wait queue first) or the first.
        #[arg(long, value_enum, default_value = "last")]
        ready: ReadyArg,
        /// The waits' timeout.
        #[arg(long, value_enum, default_value = "block")]
        timeout: TimeoutArg,
        /// Also write PREFIX.md and PREFIX.svg (and PREFIX-vs-c.md with
        /// --compare-c).
        #[arg(long, value_name = "PREFIX")]
        save: Option<PathBuf>,
        /// Also run perf-reference's C waitbench from this folder, in
        /// alternating rounds, and report this program's time over its.
        #[arg(long, value_name = "DIR")]
        compare_c: Option<PathBuf>,
        /// With --compare-c: the alternating rounds.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// libevent's bench.c: A tokens travel along N socketpairs; time per event
    ///
    /// For each N and A, each backend (chapters 03-05) runs the chain
    /// `--runs` times, the backends taking turns; each cell is the median
    /// run's nanoseconds per dispatched event.
    Dispatch {
        /// N: socketpairs (each takes 2 descriptors here).
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000,5000")]
        pairs: Vec<usize>,
        /// A: tokens travelling at once (a list).
        #[arg(long, value_delimiter = ',', default_value = "1,100")]
        active: Vec<usize>,
        /// W: writes along the chain per run.
        #[arg(long, default_value_t = 10_000)]
        writes: usize,
        /// Runs per backend, N and A.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The clock: this thread's CPU time, or elapsed time.
        #[arg(long, value_enum, default_value = "cpu")]
        clock: ClockArg,
        /// Also write the table to this file.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
    },
    /// Draw a waitbench results file as an SVG chart (log-log)
    Chart {
        /// A file `waitbench --save` wrote (PREFIX.md).
        results: PathBuf,
        /// Where to write the SVG (default: the results file's name with
        /// .svg).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    lab_kit::cli::run_main(cli_main)
}

fn cli_main() -> Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(command) = cli.command else {
        print_commands();
        return Ok(());
    };
    match command {
        Command::Waitbench {
            sizes,
            blocks,
            block_ms,
            cpu,
            clock,
            ready,
            timeout,
            save,
            compare_c,
            rounds,
        } => {
            let settings = Settings {
                blocks,
                block_ms,
                ready: match ready {
                    ReadyArg::First => Ready::First,
                    ReadyArg::Last => Ready::Last,
                },
                zero_timeout: matches!(timeout, TimeoutArg::Zero),
            };
            let clock = match clock {
                ClockArg::Cpu => Clock::Cpu,
                ClockArg::Wall => Clock::Wall,
            };
            run_waitbench(&sizes, settings, cpu, clock, save, compare_c, rounds)
        }
        Command::Dispatch {
            pairs,
            active,
            writes,
            runs,
            clock,
            save,
        } => run_dispatch(&pairs, &active, writes, runs, clock, save),
        Command::Chart { results, out } => {
            let out = out.unwrap_or_else(|| results.with_extension("svg"));
            draw_chart(&results, &out)
        }
    }
}

fn print_commands() {
    println!("{PACKAGE}: what a wait costs as the watched set grows");
    println!();
    println!("Commands (benchmarks: build with --release):");
    println!(
        "  waitbench  one select, poll, epoll_wait call with one of N ready, N = 10 to 20,000"
    );
    println!("  dispatch   libevent's bench.c: tokens along N socketpairs, time per event");
    println!("  chart      draw a waitbench results file as an SVG");
    println!();
    println!("Run one:   cargo run --release -p {PACKAGE} -- waitbench");
    println!("Its flags: cargo run --release -p {PACKAGE} -- waitbench --help");
}

/// The command line as typed, for the results file.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("{PACKAGE} {}", args.join(" "))
}

fn pin(cpu: Option<usize>) -> Result<()> {
    if let Some(cpu) = cpu {
        let mut set = CpuSet::new();
        set.set(cpu).context("no such CPU")?;
        sched_setaffinity(Pid::from_raw(0), &set)
            .with_context(|| format!("cannot run on CPU {cpu} only"))?;
    }
    Ok(())
}

fn run_waitbench(
    sizes: &[Size],
    settings: Settings,
    cpu: Option<usize>,
    clock: Clock,
    save: Option<PathBuf>,
    compare_c: Option<PathBuf>,
    rounds: usize,
) -> Result<()> {
    if settings.blocks == 0 || settings.block_ms <= 0.0 {
        bail!(lab_kit::cli::CliError::Usage(
            "--blocks and --block-ms must be more than 0".to_string()
        ));
    }
    let limit = waitbench::raise_descriptor_limit().context("raising RLIMIT_NOFILE")?;
    let mut resolved: Vec<usize> = Vec::new();
    for size in sizes {
        let n = match size {
            Size::N(n) => *n,
            Size::Max => waitbench::largest_size(limit),
        };
        if n > 0 && !resolved.contains(&n) {
            resolved.push(n);
        }
    }
    pin(cpu)?;
    let load_before = machine::load_average();
    let date = machine::utc_now();
    let progress = |n: usize| eprintln!("waitbench: N = {} ...", thousands(n as u64));

    let mut comparison = Comparison::default();
    // Rows in the chosen clock, one list per round (one round without C).
    let mut rounds_rows: Vec<Vec<Row>> = Vec::new();
    let outcomes = match &compare_c {
        None => {
            let outcomes = waitbench::run(&resolved, &settings, limit, progress)?;
            rounds_rows.push(measured_rows(&outcomes, clock));
            outcomes
        }
        Some(dir) => {
            let binary = dir.join("waitbench");
            let mut first = None;
            for round in 1..=rounds.max(1) {
                eprintln!("round {round} of {rounds}");
                let c_first = round % 2 == 1;
                let run_c = |comparison: &mut Comparison| -> Result<()> {
                    let c = compare::run_c(&binary, &resolved, &settings, cpu)?;
                    comparison.c.push(c.median);
                    comparison.c_min.push(c.min);
                    Ok(())
                };
                if c_first {
                    run_c(&mut comparison)?;
                }
                let outcomes = waitbench::run(&resolved, &settings, limit, progress)?;
                comparison.ours.push(measured_rows(&outcomes, Clock::Wall));
                comparison.ours_min.push(fastest_rows(&outcomes));
                rounds_rows.push(measured_rows(&outcomes, clock));
                first.get_or_insert(outcomes);
                if !c_first {
                    run_c(&mut comparison)?;
                }
            }
            first.unwrap_or_default()
        }
    };
    // The table: each call's median over the rounds.
    let rows = Comparison::medians(&rounds_rows);
    let load_after = machine::load_average();

    let mut notes = vec![
        match clock {
            Clock::Cpu => "clock: this thread's CPU time (user + kernel), \
                           CLOCK_THREAD_CPUTIME_ID"
                .to_string(),
            Clock::Wall => "clock: elapsed time, CLOCK_MONOTONIC".to_string(),
        },
        format!(
            "load average (1 minute): {load_before} before, {load_after} after, on {} CPUs",
            machine::cpus()
        ),
        format!(
            "{} blocks of about {} ms per call and N, the calls taking turns; {} timeout; \
             the ready descriptor is the {} one; {}",
            settings.blocks,
            settings.block_ms,
            if settings.zero_timeout {
                "zero"
            } else {
                "blocking"
            },
            match settings.ready {
                Ready::First => "first",
                Ready::Last => "last",
            },
            match cpu {
                Some(c) => format!("pinned to CPU {c}"),
                None => "not pinned".to_string(),
            }
        ),
    ];
    if compare_c.is_some() {
        notes.push(format!(
            "each value is the median of {} rounds, alternating with the C program",
            comparison.ours.len()
        ));
    }
    notes.push(format!("command: `{}`", command_line()));
    for outcome in &outcomes {
        match outcome {
            Outcome::Measured {
                wall,
                select_skipped: Some(why),
                ..
            } => notes.push(format!(
                "select at N = {}: not measured: {why}",
                thousands(wall.n as u64)
            )),
            Outcome::Skipped { n, why } => {
                notes.push(format!("N = {}: skipped: {why}", thousands(*n as u64)))
            }
            _ => {}
        }
    }
    let table = Table {
        rows,
        machine: machine::description(),
        date,
        notes,
    };
    let text = table.render();
    print!("{text}");
    let mut comparison_text = String::new();
    if compare_c.is_some() {
        let c_table = Table {
            rows: Comparison::medians(&comparison.c),
            machine: table.machine.clone(),
            date: table.date.clone(),
            notes: vec!["the C program's own numbers, median of the same rounds".to_string()],
        };
        comparison_text = format!(
            "{}\nThe C program (perf-reference waitbench.c) in the same run:\n\n{}",
            comparison.render(),
            c_table.render()
        );
        println!();
        print!("{comparison_text}");
    }
    if let Some(prefix) = save {
        let md = with_suffix(&prefix, ".md");
        fs::write(&md, &text).with_context(|| format!("writing {}", md.display()))?;
        draw_chart(&md, &with_suffix(&prefix, ".svg"))?;
        if compare_c.is_some() {
            let vs = with_suffix(&prefix, "-vs-c.md");
            fs::write(&vs, &comparison_text)
                .with_context(|| format!("writing {}", vs.display()))?;
        }
    }
    Ok(())
}

/// The measured rows, in `clock`'s time.
fn measured_rows(outcomes: &[Outcome], clock: Clock) -> Vec<Row> {
    outcomes
        .iter()
        .filter_map(|o| match (o, clock) {
            (Outcome::Measured { wall, .. }, Clock::Wall) => Some(wall.clone()),
            (Outcome::Measured { cpu, .. }, Clock::Cpu) => Some(cpu.clone()),
            (Outcome::Skipped { .. }, _) => None,
        })
        .collect()
}

/// The fastest blocks (elapsed time).
fn fastest_rows(outcomes: &[Outcome]) -> Vec<Row> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Measured { wall_min, .. } => Some(wall_min.clone()),
            Outcome::Skipped { .. } => None,
        })
        .collect()
}

/// `book/src/figures/ch13-waitbench` + `.md`.
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn draw_chart(results: &Path, out: &Path) -> Result<()> {
    let text = fs::read_to_string(results)
        .with_context(|| format!("reading the results file {}", results.display()))?;
    let table = Table::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", results.display()))?;
    let svg = chart::draw(&table).map_err(anyhow::Error::msg)?;
    fs::write(out, svg).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("chart: wrote {}", out.display());
    Ok(())
}

fn run_dispatch(
    pairs: &[usize],
    active: &[usize],
    writes: usize,
    runs: usize,
    clock: ClockArg,
    save: Option<PathBuf>,
) -> Result<()> {
    let limit = waitbench::raise_descriptor_limit().context("raising RLIMIT_NOFILE")?;
    let load_before = machine::load_average();
    let date = machine::utc_now();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for &n in pairs {
        if n == 0 {
            bail!(lab_kit::cli::CliError::Usage(
                "--pairs: at least 1".to_string()
            ));
        }
        let needed = 2 * n as u64 + 32;
        if needed > limit {
            notes.push(format!(
                "N = {}: skipped: needs about {needed} open descriptors, RLIMIT_NOFILE is {limit}",
                thousands(n as u64)
            ));
            continue;
        }
        let set = dispatch::make_pairs(n)?;
        let select_refused = dispatch::select_refuses(&set);
        if let Some(why) = &select_refused {
            notes.push(format!(
                "select at N = {}: not measured: {why}",
                thousands(n as u64)
            ));
        }
        for &a in active {
            if a == 0 || a > n {
                notes.push(format!(
                    "N = {}, A = {a}: skipped: A must be 1 to N",
                    thousands(n as u64)
                ));
                continue;
            }
            eprintln!("dispatch: N = {}, A = {a} ...", thousands(n as u64));
            let chain = Chain {
                pairs: n,
                active: a,
                writes,
            };
            let mut samples: [Vec<f64>; 3] = Default::default();
            let mut waits: [Vec<f64>; 3] = Default::default();
            for run in 0..runs.max(1) {
                // The backends take turns, each starting first in turn.
                for k in 0..BACKENDS.len() {
                    let b = (run + k) % BACKENDS.len();
                    if BACKENDS[b] == "select" && select_refused.is_some() {
                        continue;
                    }
                    let mut poller = dispatch::backend(BACKENDS[b])?;
                    let result = dispatch::run_chain(poller.as_mut(), &set, chain)?;
                    samples[b].push(match clock {
                        ClockArg::Cpu => result.cpu_ns_per_event(),
                        ClockArg::Wall => result.ns_per_event(),
                    });
                    waits[b].push(result.events as f64 / result.waits as f64);
                }
            }
            let ns: Vec<Option<f64>> = samples.iter_mut().map(|s| median(s)).collect();
            let per_wait = median(&mut waits[2]);
            let cell = |v: Option<f64>| v.map_or("-".to_string(), format_ns);
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => format_ratio(a / b),
                _ => "-".to_string(),
            };
            rows.push(vec![
                thousands(n as u64),
                a.to_string(),
                cell(ns[0]),
                cell(ns[1]),
                cell(ns[2]),
                ratio(ns[1], ns[2]),
                ratio(ns[0], ns[2]),
                per_wait.map_or("-".to_string(), |w| format!("{w:.1}")),
            ]);
        }
    }
    let load_after = machine::load_average();
    let mut text = format!(
        "Nanoseconds per dispatched event: A tokens travel along N socketpairs, {} writes per \
         run, median of {runs} runs per backend (the backends taking turns).\n\n",
        thousands(writes as u64)
    );
    text.push_str(&markdown_table(
        &[
            "N",
            "A",
            "select",
            "poll",
            "epoll",
            "poll/epoll",
            "select/epoll",
            "events per epoll_wait",
        ],
        &rows,
    ));
    text.push('\n');
    text.push_str(&format!("- machine: {}\n", machine::description()));
    text.push_str(&format!("- date: {date}\n"));
    text.push_str(match clock {
        ClockArg::Cpu => {
            "- clock: this thread's CPU time (user + kernel), CLOCK_THREAD_CPUTIME_ID\n"
        }
        ClockArg::Wall => "- clock: elapsed time, CLOCK_MONOTONIC\n",
    });
    text.push_str(&format!(
        "- load average (1 minute): {load_before} before, {load_after} after, on {} CPUs\n",
        machine::cpus()
    ));
    text.push_str(&format!("- command: `{}`\n", command_line()));
    for note in notes {
        text.push_str(&format!("- {note}\n"));
    }
    print!("{text}");
    if let Some(path) = save {
        fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
