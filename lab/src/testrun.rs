//! Runs the tests of a test binary one by one, each in its own process with
//! its own time limit, a few at a time.
//!
//! One process per test costs a few milliseconds and buys three things: a
//! test that spins or blocks forever is stopped and reported by name while
//! the results of the others are kept; a test that crashes its process
//! (a stack overflow, an abort) takes nothing else with it; and the time
//! limit is per test, not per run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::LabError;
use crate::process::{self, RunFailure};
use crate::results::{Outcome, TestResult};

/// How long one test may run before the lab stops it, unless the
/// environment variable `LAB_TEST_TIME_LIMIT_SECS` says otherwise. Every
/// exercise test fails well within it (the watchdogs of the tests are
/// shorter), so a test still running then is spinning or blocked.
pub const TEST_TIME_LIMIT: Duration = Duration::from_secs(5);

/// [`TEST_TIME_LIMIT`], or `LAB_TEST_TIME_LIMIT_SECS` seconds if that is set.
pub fn test_time_limit() -> Duration {
    std::env::var("LAB_TEST_TIME_LIMIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(TEST_TIME_LIMIT, Duration::from_secs)
}

/// How many tests run at once: one per core, at most four.
pub fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}

/// The names of the tests in `executable` (`--list`).
pub fn list(executable: &Path) -> Result<Vec<String>, LabError> {
    let shown = format!("{} --list", executable.display());
    let mut command = Command::new(executable);
    command
        .args(["--list", "--format", "terse"])
        .stdin(Stdio::null());
    let (status, output) = process::run_merged(command, Duration::from_secs(60))
        .map_err(|e| e.into_lab_error(&shown, Duration::from_secs(60)))?;
    if !status.success() {
        return Err(LabError::Spawn {
            command: shown,
            source: std::io::Error::other(output),
        });
    }
    Ok(output
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_string)
        .collect())
}

/// Runs each test of `names` in `executable` (from the directory `cwd`),
/// `jobs` at a time, each stopped after `limit`. The results are in the
/// order of `names`; `show` rewrites paths in the messages.
pub fn run(
    executable: &Path,
    cwd: &Path,
    names: &[String],
    limit: Duration,
    jobs: usize,
    show: &(dyn Fn(&str) -> String + Sync),
) -> Vec<TestResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<TestResult>>> = Mutex::new(vec![None; names.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    let result = run_one(executable, cwd, name, limit, show);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Runs the one test `name` (`--exact`), in a process of its own.
fn run_one(
    executable: &Path,
    cwd: &Path,
    name: &str,
    limit: Duration,
    show: &(dyn Fn(&str) -> String + Sync),
) -> TestResult {
    let mut command = Command::new(executable);
    command
        .args(["--exact", "--test-threads=1", "--color", "never", name])
        .current_dir(cwd)
        // Backtraces would bury the message a test wrote to teach.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    let result = |outcome, message: String| TestResult {
        name: name.to_string(),
        outcome,
        message: Some(message),
    };
    match process::run_merged(command, limit) {
        Err(RunFailure::TimedOut) => result(Outcome::TimedOut, timed_out_message(limit)),
        Err(RunFailure::Spawn(e)) => result(
            Outcome::Failed,
            format!("the test could not be started: {e}"),
        ),
        Ok((status, output)) => {
            let found = parse_results(&output).into_iter().find(|r| r.name == name);
            match found {
                Some(mut found) => {
                    found.message = found.message.map(|m| show(&m));
                    found
                }
                None => result(Outcome::Failed, died_message(status, &show(&output))),
            }
        }
    }
}

/// What the lab says of a test it had to stop.
pub fn timed_out_message(limit: Duration) -> String {
    format!(
        "still running after {} s: spinning or blocked, so the lab stopped it.\n\
         Look for a loop that never ends (a `continue` that changes nothing?) or a\n\
         call that waits for something that never comes (a read on a blocking socket?).",
        limit.as_secs()
    )
}

fn died_message(status: std::process::ExitStatus, output: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match status.signal() {
        Some(signal) => {
            let name = nix::sys::signal::Signal::try_from(signal)
                .map_or_else(|_| signal.to_string(), |s| s.as_str().to_string());
            format!("the test's process was killed by {name}")
        }
        None => format!("the test's process ended ({status}) without a result"),
    };
    let output = output.trim();
    if output.is_empty() {
        how
    } else {
        format!("{how}; it printed:\n{output}")
    }
}

/// Reads the test lines (`test a::tests::b ... ok`) and the failure blocks
/// (`---- a::tests::b stdout ----`) out of a test binary's output.
pub fn parse_results(output: &str) -> Vec<TestResult> {
    let mut results: Vec<TestResult> = Vec::new();
    // The failure block being read: (index in `results`, its lines).
    let mut block: Option<(Option<usize>, Vec<&str>)> = None;

    let finish = |block: Option<(Option<usize>, Vec<&str>)>, results: &mut Vec<TestResult>| {
        if let Some((Some(index), lines)) = block {
            results[index].message = Some(clean_message(&lines));
        }
    };

    for line in output.lines() {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|rest| rest.strip_suffix(" stdout ----"))
        {
            finish(block.take(), &mut results);
            let index = results.iter().rposition(|r| r.name == name);
            block = Some((index, Vec::new()));
        } else if block.is_some() && (line == "failures:" || line.starts_with("test result: ")) {
            finish(block.take(), &mut results);
        } else if let Some((_, lines)) = block.as_mut() {
            lines.push(line);
        } else if let Some((name, outcome)) = test_line(line) {
            results.push(TestResult {
                name: name.to_string(),
                outcome,
                message: None,
            });
        }
    }
    finish(block, &mut results);
    results
}

/// `("a::tests::b", Passed)` from `test a::tests::b ... ok`.
fn test_line(line: &str) -> Option<(&str, Outcome)> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.split_once(" ... ")?;
    let outcome = match result.trim_end() {
        "ok" => Outcome::Passed,
        "FAILED" => Outcome::Failed,
        other if other.starts_with("ignored") => Outcome::Ignored,
        _ => return None,
    };
    (!name.contains(' ')).then_some((name, outcome))
}

/// A failure block without the backtrace note and surrounding blank lines,
/// and with `thread 'NAME' (ID) panicked at` shortened to `panicked at`
/// (the test's name is shown already; the thread id changes every run).
fn clean_message(lines: &[&str]) -> String {
    lines
        .iter()
        .filter(|line| !line.starts_with("note: run with `RUST_BACKTRACE=1`"))
        .map(|line| match line.find(" panicked at ") {
            Some(at) if line.starts_with("thread '") => &line[at + 1..],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "running 3 tests
test ch02_a::tests::first ... ok
test ch02_a::tests::second ... FAILED
test ch03_b::tests::only ... FAILED
test ch03_b::tests::slow ... ignored, needs a network

failures:

---- ch02_a::tests::second stdout ----
some output the test printed

thread 'ch02_a::tests::second' panicked at exercises/src/ch02_a.rs:40:9:
the flags lost O_RDWR: OR the new flag into the old ones
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

---- ch03_b::tests::only stdout ----

thread 'watched' (4242) panicked at exercises/src/ch03_b.rs:9:5:
not yet implemented: ch03: build the set


failures:
    ch02_a::tests::second
    ch03_b::tests::only

test result: FAILED. 1 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
";

    #[test]
    fn reads_every_test_line() {
        let results = parse_results(SAMPLE);
        let seen: Vec<(&str, Outcome)> = results
            .iter()
            .map(|r| (r.name.as_str(), r.outcome))
            .collect();
        assert_eq!(
            seen,
            [
                ("ch02_a::tests::first", Outcome::Passed),
                ("ch02_a::tests::second", Outcome::Failed),
                ("ch03_b::tests::only", Outcome::Failed),
                ("ch03_b::tests::slow", Outcome::Ignored),
            ]
        );
    }

    #[test]
    fn keeps_the_failure_message_a_test_wrote() {
        let results = parse_results(SAMPLE);
        assert_eq!(
            results[1].message.as_deref(),
            Some(
                "some output the test printed\n\n\
                 panicked at exercises/src/ch02_a.rs:40:9:\n\
                 the flags lost O_RDWR: OR the new flag into the old ones"
            )
        );
        assert_eq!(
            results[2].message.as_deref(),
            Some(
                "panicked at exercises/src/ch03_b.rs:9:5:\nnot yet implemented: ch03: build the set"
            )
        );
        assert_eq!(results[0].message, None);
    }

    #[test]
    fn names_and_modules() {
        let results = parse_results(SAMPLE);
        assert_eq!(results[1].module(), "ch02_a");
        assert_eq!(results[1].short_name(), "second");
        assert_eq!(results[1].function(), "second");
    }
}

#[cfg(test)]
mod runs {
    //! A real test binary, built from a fake exercise.

    use std::collections::BTreeSet;
    use std::time::Instant;

    use super::*;
    use crate::compile;
    use crate::evaluate::learner_crate;
    use crate::gencrate::Module;
    use crate::testing::*;

    const TESTS: &str = "
#[cfg(test)]
mod tests {
    #[test]
    fn spins() {
        loop {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn passes() {}

    #[test]
    fn fails() {
        panic!(\"the answer is 42, not 41\");
    }

    #[test]
    fn aborts() {
        std::process::abort();
    }
}
";

    #[test]
    fn a_stuck_test_is_stopped_and_named_and_the_others_are_kept() {
        let s = healthy();
        s.write("exercises/src/ch99_fake.rs", TESTS);
        let ws = s.ws();
        let module = Module {
            name: "ch99_fake".into(),
            file: ws.exercise_file("ch99_fake"),
            shown: "exercises/src/ch99_fake.rs".into(),
        };
        // Only this module: the other exercise is left out of the crate.
        let names = ["ch99_fake".to_string(), "ch99_pair".to_string()];
        let spec = learner_crate(&ws, &names, vec![module]).unwrap();
        let built = compile::build(&spec, ws.build_dir(), &BTreeSet::new(), &|_| {}).unwrap();
        let executable = built.executable.expect("it builds");
        let names = list(&executable).unwrap();
        assert_eq!(names.len(), 4, "{names:?}");

        let started = Instant::now();
        let limit = Duration::from_secs(1);
        let results = run(&executable, &s.root, &names, limit, 2, &|m| m.to_string());
        // One test waits for the limit; the others are not held up by it.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let outcome = |name: &str| {
            results
                .iter()
                .find(|r| r.function() == name)
                .unwrap_or_else(|| panic!("no {name} in {results:?}"))
        };
        assert_eq!(outcome("passes").outcome, Outcome::Passed);
        assert_eq!(outcome("fails").outcome, Outcome::Failed);
        assert!(
            outcome("fails")
                .message
                .as_deref()
                .unwrap()
                .contains("the answer is 42, not 41")
        );
        let spins = outcome("spins");
        assert_eq!(spins.outcome, Outcome::TimedOut);
        assert!(
            spins
                .message
                .as_deref()
                .unwrap()
                .starts_with("still running after 1 s: spinning or blocked"),
            "{spins:?}"
        );
        let aborts = outcome("aborts");
        assert_eq!(aborts.outcome, Outcome::Failed);
        assert!(
            aborts.message.as_deref().unwrap().contains("SIGABRT"),
            "{aborts:?}"
        );
    }
}
