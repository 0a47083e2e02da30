//! `cargo lab`: where you are in epoll-lab and what to do next.
//!
//! - `cargo lab`: the chapters, their exercises solved or not, the next step.
//! - `cargo lab check [chNN|EXERCISE]`: run those tests, show what failed.
//! - `cargo lab hint EXERCISE [--level N]`: a hint (1 nudge, 2 man page, 3 near-solution).
//! - `cargo lab verify`: the maintainer's contract (what `cargo test` checks too).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use lab::contract::{self, Problem};
use lab::progress::{self, State, Target};
use lab::testrun::{self, Outcome, TestRun};
use lab::workspace::{Chapter, Exercise};
use lab::{LabError, Workspace};

/// The exit code for a name that is not an exercise or a chapter.
const USAGE: u8 = 2;

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
    /// Show a hint for an exercise: level 1 is a nudge, 2 the man page
    /// section to read, 3 a near-solution.
    Hint {
        /// The exercise, e.g. ch02_set_nonblocking.
        exercise: String,
        /// Which hint to show.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
        level: u8,
    },
    /// For maintainers: check that exercises, solutions, info.toml, chapters
    /// and book agree (what `cargo test` checks too).
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ws = Workspace::locate();
    let outcome = match cli.command {
        None => status(&ws),
        Some(Command::Check { target }) => check(&ws, target.as_deref()),
        Some(Command::Hint { exercise, level }) => hint(&ws, &exercise, level),
        Some(Command::Verify) => verify(&ws),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

/// The exercises in the order a learner meets them (by chapter, then as
/// info.toml lists them), and the chapters.
fn load(ws: &Workspace) -> Result<(Vec<Exercise>, Vec<Chapter>)> {
    let mut exercises = ws.exercises()?;
    exercises.sort_by(|a, b| a.chapter.cmp(&b.chapter));
    let chapters = ws.chapters()?;
    Ok((exercises, chapters))
}

/// Runs the learner's tests (in `target/lab`), telling them it may take a
/// while the first time.
fn run_exercise_tests(ws: &Workspace, scope: &[&Exercise], what: &str) -> Result<TestRun> {
    let first_time = !ws.root().join("target/lab").exists();
    let filters: Vec<String> = scope.iter().map(|e| format!("{}::", e.name)).collect();
    if first_time {
        eprintln!("Testing {what} (the first run compiles the exercises: a minute or so)...");
    } else {
        eprintln!("Testing {what}...");
    }
    let run = testrun::cargo_test(
        ws.root(),
        "lab",
        &["exercises"],
        &filters,
        testrun::time_limit(),
    )
    .context("running the exercises' tests")?;
    eprintln!();
    Ok(run)
}

/// `cargo lab`: the chapters with their exercises, and the next step.
fn status(ws: &Workspace) -> Result<ExitCode> {
    let (exercises, chapters) = load(ws)?;
    println!("epoll-lab: from one blocking read to a reactor.");
    println!();
    if exercises.is_empty() {
        for chapter in &chapters {
            println!("{}  {}", chapter.id, progress::chapter_title(ws, chapter));
        }
        println!();
        println!("No exercises yet: they are being written.");
        println!("Meanwhile, read the book and run a chapter's scenarios:");
        println!("  mdbook serve book        (install: cargo install mdbook --locked)");
        if let Some(first) = chapters.first() {
            println!("  cargo run -p {}", first.package());
        }
        return Ok(ExitCode::SUCCESS);
    }

    let all: Vec<&Exercise> = exercises.iter().collect();
    let run = run_exercise_tests(ws, &[], "all exercises")?;
    let states: Vec<State> = all.iter().map(|e| progress::state_of(e, &run)).collect();
    let solved = states.iter().filter(|s| s.is_solved()).count();

    let width = exercises.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let titles: Vec<(String, String)> = chapter_order(&chapters, &exercises)
        .into_iter()
        .map(|id| {
            let title = chapters
                .iter()
                .find(|c| c.id == id)
                .map(|c| progress::chapter_title(ws, c))
                .unwrap_or_default();
            (id, title)
        })
        .collect();
    let title_width = titles.iter().map(|(_, t)| t.len()).max().unwrap_or(0);
    for (id, title) in titles {
        let mine: Vec<(&Exercise, &State)> = all
            .iter()
            .zip(&states)
            .filter(|(e, _)| e.chapter == id)
            .map(|(e, s)| (*e, s))
            .collect();
        if mine.is_empty() {
            println!("{id}  {title:title_width$}  (no exercises)");
            continue;
        }
        println!("{id}  {title}");
        for (exercise, state) in mine {
            let mark = if state.is_solved() { "[x]" } else { "[ ]" };
            println!(
                "      {mark} {:width$}  {}",
                exercise.name,
                state.describe()
            );
        }
    }
    println!();
    println!("{solved} of {} exercises solved.", exercises.len());
    println!();

    if run.build_failed() {
        print_build_failure(&run, &exercises, None);
        return Ok(ExitCode::SUCCESS);
    }
    match all.iter().zip(&states).find(|(_, s)| !s.is_solved()) {
        Some((next, _)) => println!("{}", progress::next_steps(ws, next)),
        None => {
            println!("Every exercise is solved. Well done!");
            println!("Chapters 05-13 (epoll, edge-triggered pitfalls, a reactor) are coming.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The chapter ids in order: those with a crate, and any an exercise names.
fn chapter_order(chapters: &[Chapter], exercises: &[Exercise]) -> Vec<String> {
    let mut ids: Vec<String> = chapters.iter().map(|c| c.id.clone()).collect();
    for exercise in exercises {
        if !ids.contains(&exercise.chapter) {
            ids.push(exercise.chapter.clone());
        }
    }
    ids.sort();
    ids
}

/// `cargo lab check [TARGET]`.
fn check(ws: &Workspace, target: Option<&str>) -> Result<ExitCode> {
    let (exercises, chapters) = load(ws)?;
    let (scope, what): (Vec<&Exercise>, String) = match target {
        None => (exercises.iter().collect(), "all exercises".to_string()),
        Some(name) => match progress::resolve(name, &exercises, &chapters) {
            Ok(Target::Exercise(exercise)) => {
                let found = exercises
                    .iter()
                    .filter(|e| e.name == exercise.name)
                    .collect();
                (found, exercise.name)
            }
            Ok(Target::Chapter(chapter)) => {
                let found = exercises
                    .iter()
                    .filter(|e| e.chapter == chapter.id)
                    .collect();
                (found, format!("the exercises of {}", chapter.id))
            }
            Err(unknown) => {
                eprintln!("{unknown}");
                return Ok(ExitCode::from(USAGE));
            }
        },
    };
    if scope.is_empty() {
        match target {
            Some(name) => println!("{name} has no exercises (yet)."),
            None => println!("There are no exercises yet."),
        }
        println!("Run `cargo lab` to see the chapters and their exercises.");
        return Ok(ExitCode::SUCCESS);
    }

    // Checking everything: tests are listed for all, failure messages only
    // for the first unsolved exercise, to keep the focus on one thing.
    let filters = if target.is_none() {
        Vec::new()
    } else {
        scope.clone()
    };
    let run = run_exercise_tests(ws, &filters, &what)?;
    if run.build_failed() {
        print_build_failure(&run, &exercises, scope.first().copied());
        return Ok(ExitCode::FAILURE);
    }

    let mut first_unsolved: Option<&Exercise> = None;
    for exercise in &scope {
        let state = progress::state_of(exercise, &run);
        println!("{}: {}", exercise.name, state.describe());
        let detailed = target.is_some() || first_unsolved.is_none();
        let mut results: Vec<_> = run.of("exercises", &exercise.name).collect();
        results.sort_by(|a, b| a.name.cmp(&b.name));
        let mut previous: Option<&str> = None;
        for result in results {
            let verdict = match result.outcome {
                Outcome::Passed => "ok",
                Outcome::Failed => "FAILED",
                Outcome::Ignored => "ignored",
            };
            println!("  {verdict:7} {}", result.short_name());
            if let (true, Some(message)) = (detailed, &result.message) {
                if previous == Some(message.as_str()) {
                    println!("          (the same message as above)");
                } else {
                    for line in message.lines() {
                        if line.is_empty() {
                            println!();
                        } else {
                            println!("          {line}");
                        }
                    }
                    previous = Some(message);
                }
            }
        }
        if state == State::NoTests {
            println!(
                "  (no test ran: the test names start with `{}::`)",
                exercise.name
            );
        }
        println!();
        if !state.is_solved() && first_unsolved.is_none() {
            first_unsolved = Some(exercise);
        }
    }

    match first_unsolved {
        Some(exercise) => {
            println!(
                "Next: make the first FAILED test of {} pass (its message says what went wrong),",
                exercise.name
            );
            println!("then run `cargo lab check {}` again.", exercise.name);
            println!("  edit   {}", ws.show(&ws.exercise_file(&exercise.name)));
            println!("Stuck? cargo lab hint {}", exercise.name);
            Ok(ExitCode::FAILURE)
        }
        None => {
            let last = scope.last().map(|e| e.name.as_str());
            let after = exercises
                .iter()
                .position(|e| Some(e.name.as_str()) == last)
                .and_then(|i| exercises.get(i + 1));
            match &scope[..] {
                [one] => println!("{} is solved.", one.name),
                all => println!("All {} exercises are solved.", all.len()),
            }
            match after {
                Some(next) => println!("{}", progress::next_steps(ws, next)),
                None => println!("That was the last exercise. `cargo lab` shows your progress."),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_build_failure(run: &TestRun, exercises: &[Exercise], fallback: Option<&Exercise>) {
    println!("The exercises do not compile, so no test could run. The compiler says:");
    println!();
    println!("{}", run.compiler_messages());
    println!();
    let location = run.first_error_location();
    let broken = location.as_deref().and_then(|loc| {
        exercises
            .iter()
            .find(|e| loc.starts_with(&format!("exercises/src/{}.rs", e.name)))
    });
    match (location, broken.or(fallback)) {
        (Some(location), Some(exercise)) => {
            println!(
                "Next: fix the error at {location}, then run `cargo lab check {}`.",
                exercise.name
            );
            println!("(All exercises are one crate: one that does not compile stops them all.)");
        }
        (Some(location), None) => {
            println!("Next: fix the error at {location}, then run `cargo lab`.")
        }
        (None, _) => println!("Next: fix the first error above, then run `cargo lab`."),
    }
}

/// `cargo lab hint EXERCISE --level N`.
fn hint(ws: &Workspace, name: &str, level: u8) -> Result<ExitCode> {
    let (exercises, chapters) = load(ws)?;
    let exercise = match progress::resolve(name, &exercises, &chapters) {
        Ok(Target::Exercise(exercise)) => exercise,
        Ok(Target::Chapter(chapter)) => {
            let names: Vec<&str> = exercises
                .iter()
                .filter(|e| e.chapter == chapter.id)
                .map(|e| e.name.as_str())
                .collect();
            eprintln!("Hints are per exercise, and {} is a chapter.", chapter.id);
            if names.is_empty() {
                eprintln!("It has no exercises yet.");
            } else {
                eprintln!("Its exercises: {}", names.join(", "));
                eprintln!("For example: cargo lab hint {}", names[0]);
            }
            return Ok(ExitCode::from(USAGE));
        }
        Err(unknown) => {
            eprintln!("{unknown}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let count = exercise.hints.len();
    let Some(text) = exercise.hints.get(usize::from(level) - 1) else {
        eprintln!(
            "{} has {count} hint{}: ask for --level 1{}.",
            exercise.name,
            if count == 1 { "" } else { "s" },
            if count > 1 {
                format!(" to {count}")
            } else {
                String::new()
            }
        );
        return Ok(ExitCode::from(USAGE));
    };
    let kind = match (count, level) {
        (3, 1) => " (a nudge)",
        (3, 2) => " (what to read)",
        (3, 3) => " (a near-solution)",
        _ => "",
    };
    println!("{}, hint {level} of {count}{kind}:", exercise.name);
    println!();
    for line in text.trim().lines() {
        for wrapped in wrap(line, 76) {
            println!("  {wrapped}");
        }
    }
    println!();
    if usize::from(level) < count {
        println!(
            "Still stuck? cargo lab hint {} --level {}",
            exercise.name,
            level + 1
        );
    } else {
        println!(
            "That is the last hint. Check it: cargo lab check {}",
            exercise.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `cargo lab verify`: every check of the contract, as a report.
fn verify(ws: &Workspace) -> Result<ExitCode> {
    println!("epoll-lab contract, in {}", ws.root().display());
    println!();
    let mut broken = 0;
    let mut report = |title: &str, problems: Vec<Problem>| {
        if problems.is_empty() {
            println!("ok    {title}");
        } else {
            broken += problems.len();
            println!("FAIL  {title}");
            for line in contract::render(&problems).lines() {
                println!("      {line}");
            }
        }
    };
    for (title, check) in contract::FILE_CHECKS {
        report(title, check(ws));
    }

    match ws.exercises() {
        Ok(exercises) if exercises.is_empty() => {
            println!("--    every exercise as shipped fails its tests (no exercises yet)");
            println!("--    every solution passes its tests (no exercises yet)");
        }
        Ok(exercises) => {
            if std::io::stdout().is_terminal() {
                eprintln!(
                    "      (running cargo test -p exercises -p solutions in target/contract...)"
                );
            }
            match contract::run_shipped(ws, &["exercises", "solutions"]) {
                Ok(run) => {
                    report(
                        "every exercise as shipped fails its tests",
                        contract::shipped_exercises_fail(&exercises, &run),
                    );
                    report(
                        "every solution passes its tests",
                        contract::solutions_pass(&exercises, &run),
                    );
                }
                Err(e @ (LabError::TimedOut { .. } | LabError::Spawn { .. })) => {
                    report(
                        "the exercises' and solutions' tests run",
                        vec![Problem {
                            what: e.to_string(),
                            fix: "make every test that could block run under lab_kit::watchdog::within".into(),
                        }],
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Reported by the first file check.
        Err(_) => println!("--    the tests were not run: exercises/info.toml is broken"),
    }

    println!();
    if broken == 0 {
        println!("The contract holds.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "The contract is broken: {broken} problem{}.",
            if broken == 1 { "" } else { "s" }
        );
        Ok(ExitCode::FAILURE)
    }
}

/// `text` cut into lines of at most `width` characters at spaces (a longer
/// word keeps its own line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let line = lines.last_mut().expect("never empty");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}
