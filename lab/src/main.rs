//! `cargo lab`: where you are in epoll-lab and what to do next.
//!
//! - `cargo lab`: the chapters, their exercises solved or not, the next step.
//! - `cargo lab check [chNN|EXERCISE]`: run those tests, show what failed.
//! - `cargo lab watch`: check the exercise you work on every time you save.
//! - `cargo lab hint EXERCISE [--level N]`: a hint (1 nudge, 2 man page, 3 near-solution).
//! - `cargo lab reset EXERCISE`: the exercise as shipped again (yours kept as a backup).
//! - `cargo lab solution EXERCISE`: the reference solution, once yours passes.
//! - `cargo lab verify [--bless]`: the maintainer's contract (what `cargo test` checks too).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use lab::Workspace;
use lab::commands::{self, Lab};

#[derive(Parser)]
#[command(
    name = "cargo lab",
    bin_name = "cargo lab",
    about = "epoll-lab's guide: your progress, the next step, tests and hints.",
    after_help = "With no command: the chapters, their exercises (solved or not), and what to do next."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tests of an exercise (ch02_set_nonblocking), of a chapter's
    /// exercises (ch02), or of all exercises, and say what is next.
    Check {
        /// An exercise or a chapter; all exercises if left out.
        target: Option<String>,
    },
    /// Check the exercise you are working on every time a file under
    /// exercises/ is saved. Keys: h hint, n next exercise, r check again,
    /// q quit.
    Watch,
    /// Show a hint for an exercise: level 1 is a nudge, 2 the man page
    /// section to read, 3 a near-solution.
    Hint {
        /// The exercise, e.g. ch02_set_nonblocking.
        exercise: String,
        /// Which hint to show.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
        level: u8,
    },
    /// Put an exercise back as shipped; your file is kept as a backup in
    /// exercises/backups/.
    Reset {
        /// The exercise, e.g. ch02_set_nonblocking.
        exercise: String,
    },
    /// Show the reference solution of an exercise you have solved.
    Solution {
        /// The exercise, e.g. ch02_set_nonblocking.
        exercise: String,
    },
    /// For maintainers: check that the exercises as shipped, the solutions,
    /// info.toml, the chapters and the book agree (what `cargo test` checks
    /// too).
    Verify {
        /// Check the exercises in the working tree instead and, if the
        /// contract holds, record them as shipped (exercises/shipped.toml).
        #[arg(long)]
        bless: bool,
    },
}

fn main() -> ExitCode {
    // clap exits with 2 on a usage mistake, 0 for --help.
    let cli = Cli::parse();
    let ws = Workspace::locate();
    let outcome = match cli.command {
        Some(Command::Verify { bless }) => commands::verify::run(&ws, bless),
        command => Lab::load(ws).and_then(|lab| match command {
            None => commands::status::run(&lab),
            Some(Command::Check { target }) => commands::check::run(&lab, target.as_deref()),
            Some(Command::Watch) => commands::watch::run(&lab),
            Some(Command::Hint { exercise, level }) => commands::hint::run(&lab, &exercise, level),
            Some(Command::Reset { exercise }) => commands::reset::run(&lab, &exercise),
            Some(Command::Solution { exercise }) => commands::solution::run(&lab, &exercise),
            Some(Command::Verify { .. }) => unreachable!("handled above"),
        }),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}
