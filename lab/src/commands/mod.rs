//! The commands of `cargo lab`, one file each, and what they share: the
//! workspace with its exercises and chapters, name resolution, and how an
//! exercise's result is printed.

pub mod check;
pub mod hint;
pub mod input;
pub mod reset;
pub mod solution;
pub mod status;
pub mod verify;
pub mod watch;
pub mod watcher;

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Result;

use crate::evaluate;
use crate::progress::{self, State, Target};
use crate::results::{ExerciseResult, Outcome};
use crate::workspace::{Chapter, Exercise, Workspace};

/// The exit code for a usage mistake (an unknown name, a bad option).
pub const USAGE: u8 = 2;

/// The workspace with its exercises (in book order) and chapters.
pub struct Lab {
    pub ws: Workspace,
    pub exercises: Vec<Exercise>,
    pub chapters: Vec<Chapter>,
}

impl Lab {
    pub fn load(ws: Workspace) -> Result<Lab> {
        let exercises = ws.exercises()?;
        let chapters = ws.chapters()?;
        Ok(Lab {
            ws,
            exercises,
            chapters,
        })
    }

    /// What `name` refers to; an unknown name is explained (with a "did you
    /// mean") on stderr, and the exit code to return is given instead.
    pub fn resolve(&self, name: &str) -> Result<Target, ExitCode> {
        progress::resolve(name, &self.exercises, &self.chapters).map_err(|unknown| {
            eprintln!("{unknown}");
            ExitCode::from(USAGE)
        })
    }

    /// The exercise `name` for a command that needs one (`hint`, `reset`,
    /// `solution`): a chapter or an unknown name is explained on stderr.
    pub fn exercise(&self, name: &str, command: &str) -> Result<&Exercise, ExitCode> {
        match self.resolve(name)? {
            Target::Exercise(exercise) => Ok(self
                .exercises
                .iter()
                .find(|e| e.name == exercise.name)
                .expect("resolved from this list")),
            Target::Chapter(chapter) => {
                let names: Vec<&str> = self
                    .exercises
                    .iter()
                    .filter(|e| e.chapter == chapter.id)
                    .map(|e| e.name.as_str())
                    .collect();
                eprintln!(
                    "`cargo lab {command}` takes an exercise, and {} is a chapter.",
                    chapter.id
                );
                if names.is_empty() {
                    eprintln!("It has no exercises yet.");
                } else {
                    eprintln!("Its exercises: {}", names.join(", "));
                    eprintln!("For example: cargo lab {command} {}", names[0]);
                }
                Err(ExitCode::from(USAGE))
            }
        }
    }

    /// The result of every exercise (saved ones where nothing changed;
    /// those in `fresh` always checked again), telling on stderr what it
    /// is doing when that takes a while.
    pub fn results(&self, fresh: &BTreeSet<String>) -> Result<Vec<ExerciseResult>> {
        let say = |line: &str| eprintln!("{line}");
        Ok(evaluate::results(&self.ws, &self.exercises, fresh, &say)?)
    }

    /// The lines saying what to do next, given every exercise's state: the
    /// first unsolved exercise in book order, or that all are solved.
    pub fn next_steps(&self, states: &[State]) -> String {
        match progress::next(states) {
            Some(i) => progress::next_steps(&self.ws, &self.exercises[i]),
            None => format!(
                "Every exercise is solved ({} of {}). Well done!\n\
                 `cargo lab solution EXERCISE` shows the reference solution of any of them.",
                states.len(),
                states.len()
            ),
        }
    }
}

/// Prints one exercise's result: its state, then each test in the order
/// the file has them (with its message if `detailed`), or the compiler's
/// messages if it does not compile.
pub fn print_result(exercise: &Exercise, result: &ExerciseResult, detailed: bool) {
    let state = State::of(result);
    println!("{}: {}", exercise.name, state.describe());
    match result {
        ExerciseResult::Tested { tests } => {
            let mut previous: Option<&str> = None;
            for test in tests {
                let verdict = match test.outcome {
                    Outcome::Passed => "ok",
                    Outcome::Failed => "FAILED",
                    Outcome::Ignored => "ignored",
                    Outcome::TimedOut => "STUCK",
                };
                println!("  {verdict:7} {}", test.short_name());
                let Some(message) = test.message.as_deref().filter(|_| detailed) else {
                    continue;
                };
                if previous == Some(message) {
                    println!("          (the same message as above)");
                    continue;
                }
                for line in message.lines() {
                    if line.is_empty() {
                        println!();
                    } else {
                        println!("          {line}");
                    }
                }
                previous = Some(message);
            }
            if tests.is_empty() {
                println!(
                    "  (no test ran: the test names start with `{}::`)",
                    exercise.name
                );
            }
        }
        ExerciseResult::DoesNotCompile { messages, .. } => {
            println!("  It does not compile, so none of its tests ran (the other exercises are");
            println!("  built and checked without it). The compiler says:");
            println!();
            let shown = if detailed {
                messages.as_str()
            } else {
                first_error(messages)
            };
            for line in shown.lines() {
                println!("    {line}");
            }
        }
        ExerciseResult::Missing => {
            println!(
                "  exercises/src/{}.rs is not there. `cargo lab reset {}` brings back the file as shipped.",
                exercise.name, exercise.name
            );
        }
        ExerciseResult::NotBuilt { reason } => {
            println!(
                "  The exercises could not be built, for a reason outside the exercise files:"
            );
            for line in reason.lines() {
                println!("    {line}");
            }
        }
    }
}

/// The first error of the compiler's messages, up to its `-->` line and
/// the code it points at.
pub fn first_error(messages: &str) -> &str {
    let mut end = 0;
    let mut seen_arrow = false;
    for line in messages.split_inclusive('\n') {
        if end > 0 && (line.starts_with("error") || (line.trim().is_empty() && seen_arrow)) {
            break;
        }
        seen_arrow |= line.trim_start().starts_with("-->");
        end += line.len();
    }
    messages[..end].trim_end()
}

/// What to do about an unsolved exercise, after its results (`watching`:
/// in `cargo lab watch`, where saving the file checks it again).
pub fn fix_this(
    ws: &Workspace,
    exercise: &Exercise,
    result: &ExerciseResult,
    watching: bool,
) -> String {
    let name = &exercise.name;
    let file = ws.show(&ws.exercise_file(name));
    let again = if watching {
        "save the file: it is checked again at once".to_string()
    } else {
        format!("run `cargo lab check {name}` again")
    };
    match result {
        ExerciseResult::DoesNotCompile { location, .. } => format!(
            "Next: fix the compile error at {}, then {again}.\n\
             Stuck? cargo lab hint {name}",
            location.as_deref().unwrap_or(&file)
        ),
        ExerciseResult::Missing => format!("Next: cargo lab reset {name}"),
        ExerciseResult::NotBuilt { .. } => {
            "Next: make the workspace build again (`cargo build` shows the errors), then run `cargo lab`.".to_string()
        }
        ExerciseResult::Tested { tests } => {
            let first = tests
                .iter()
                .find(|t| matches!(t.outcome, Outcome::Failed | Outcome::TimedOut));
            let what = match first {
                Some(test) => format!(
                    "fix `{}`, the first test of {name} marked {}",
                    test.short_name(),
                    if test.outcome == Outcome::TimedOut { "STUCK" } else { "FAILED" }
                ),
                None => format!("make the tests of {name} pass"),
            };
            format!(
                "Next: {what}\n\
                 (its message above says what went wrong), then {again}.\n  \
                 edit   {file}\n\
                 Stuck? cargo lab hint {name}"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_error_is_its_headline_location_and_code() {
        let messages = "error[E0308]: mismatched types\n  --> exercises/src/a.rs:3:5\n   |\n 3 |     x\n   |     ^ expected u32\n\nerror[E0425]: cannot find value `y`\n  --> exercises/src/a.rs:9:1\n";
        assert_eq!(
            first_error(messages),
            "error[E0308]: mismatched types\n  --> exercises/src/a.rs:3:5\n   |\n 3 |     x\n   |     ^ expected u32"
        );
    }
}
