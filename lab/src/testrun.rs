//! Runs `cargo test` on the exercises (once, for all of them) and reads the
//! result of every test from its output.
//!
//! The nested cargo gets its own target directory, so it never waits for the
//! lock of the cargo that started us. Its stdout and stderr go into one pipe,
//! so cargo's `Running unittests ... (deps/exercises-HASH)` line comes right
//! before the lines of that test binary and each test can be tied to its
//! package. The run has an overall time limit: the tests have their own
//! watchdogs, but a learner's code can still block where no watchdog looks.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::LabError;

/// How long the nested `cargo test` may run, build included, unless the
/// environment variable `LAB_TIME_LIMIT_SECS` says otherwise.
pub const TIME_LIMIT: Duration = Duration::from_secs(10 * 60);

/// [`TIME_LIMIT`], or `LAB_TIME_LIMIT_SECS` seconds if that is set.
pub fn time_limit() -> Duration {
    std::env::var("LAB_TIME_LIMIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(TIME_LIMIT, Duration::from_secs)
}

/// The result of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Ignored,
}

/// One test of one package, e.g. `ch02_set_nonblocking::tests::keeps_the_access_mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The crate of the test binary: `exercises` or `solutions`.
    pub package: String,
    /// The full test path.
    pub name: String,
    pub outcome: Outcome,
    /// For a failed test: what it printed and its panic message.
    pub message: Option<String>,
}

impl TestResult {
    /// The first segment of the test path: the exercise module.
    pub fn module(&self) -> &str {
        self.name.split("::").next().unwrap_or(&self.name)
    }

    /// The test path without the module and `tests::`: `keeps_the_access_mode`.
    pub fn short_name(&self) -> &str {
        let rest = self
            .name
            .split_once("::")
            .map_or(self.name.as_str(), |(_, rest)| rest);
        rest.strip_prefix("tests::").unwrap_or(rest)
    }
}

/// What one nested `cargo test` run produced.
#[derive(Debug, Clone)]
pub struct TestRun {
    /// The command, as a learner could type it.
    pub command: String,
    /// Whether cargo exited with status 0.
    pub success: bool,
    /// Every test line found, in output order.
    pub results: Vec<TestResult>,
    /// Everything cargo and the tests printed (stdout and stderr together).
    pub output: String,
}

impl TestRun {
    /// The results of the tests of `module` in `package`.
    pub fn of<'a>(
        &'a self,
        package: &'a str,
        module: &'a str,
    ) -> impl Iterator<Item = &'a TestResult> + 'a {
        self.results
            .iter()
            .filter(move |r| r.package == package && r.module() == module)
    }

    /// True if cargo failed and not one test ran: the build broke (or the
    /// test binary died before printing anything).
    pub fn build_failed(&self) -> bool {
        !self.success && self.results.is_empty()
    }

    /// The compiler's messages (cargo's progress lines removed), for when
    /// the build failed.
    pub fn compiler_messages(&self) -> String {
        const PROGRESS: [&str; 9] = [
            "Compiling ",
            "Checking ",
            "Finished ",
            "Running ",
            "Blocking ",
            "Downloading ",
            "Downloaded ",
            "Updating ",
            "Locking ",
        ];
        self.output
            .lines()
            .filter(|line| !PROGRESS.iter().any(|p| line.trim_start().starts_with(p)))
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string()
    }

    /// The first `--> exercises/src/NAME.rs:LINE:COL` the compiler points at.
    pub fn first_error_location(&self) -> Option<String> {
        self.output.lines().find_map(|line| {
            let location = line.trim_start().strip_prefix("--> ")?;
            location
                .starts_with("exercises/")
                .then(|| location.to_string())
        })
    }
}

/// Runs `cargo test --lib --no-fail-fast` for `packages` in `root`, with
/// the target directory `root/target/TARGET_SUBDIR`, keeping only tests
/// whose path contains one of `filters` (all tests if it is empty).
pub fn cargo_test(
    root: &Path,
    target_subdir: &str,
    packages: &[&str],
    filters: &[String],
    limit: Duration,
) -> Result<TestRun, LabError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut args: Vec<String> = vec!["test".into()];
    for package in packages {
        args.push("-p".into());
        args.push(package.to_string());
    }
    args.extend(["--lib", "--no-fail-fast", "--color", "never"].map(String::from));
    if !filters.is_empty() {
        args.push("--".into());
        args.extend(filters.iter().cloned());
    }
    let target_dir = root.join("target").join(target_subdir);
    let shown = format!(
        "CARGO_TARGET_DIR=target/{target_subdir} cargo {}",
        args.join(" ")
    );

    let mut command = Command::new(&cargo);
    command
        .args(&args)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target_dir)
        // Backtraces would bury the message a test wrote to teach.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    let (finished, output) = run_merged(command, limit).map_err(|e| match e {
        RunFailure::Spawn(source) => LabError::Spawn {
            command: shown.clone(),
            source,
        },
        RunFailure::TimedOut => LabError::TimedOut {
            command: shown.clone(),
            limit,
        },
    })?;
    Ok(TestRun {
        command: shown,
        success: finished,
        results: parse_results(&output),
        output,
    })
}

/// Why [`run_merged`] produced no output.
#[derive(Debug)]
pub enum RunFailure {
    Spawn(std::io::Error),
    TimedOut,
}

/// Runs `command` with stdout and stderr in one pipe, and returns whether it
/// exited successfully and what it printed. After `limit` the command and
/// every process it started are killed.
pub fn run_merged(mut command: Command, limit: Duration) -> Result<(bool, String), RunFailure> {
    let (mut reader, writer) = std::io::pipe().map_err(RunFailure::Spawn)?;
    let writer_for_stderr = writer.try_clone().map_err(RunFailure::Spawn)?;
    command.stdout(writer).stderr(writer_for_stderr);
    let spawned = command.spawn();
    // Our copies of the write end must go, or the pipe never reports EOF.
    drop(command);
    let mut child = spawned.map_err(RunFailure::Spawn)?;

    let collected = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&collected);
    let pump = thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
    });

    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                kill_tree(&mut child);
                return Err(RunFailure::TimedOut);
            }
        }
    };
    // A grandchild that outlives cargo could keep the pipe open; don't wait
    // for it beyond the deadline.
    while !pump.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let bytes = collected.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok((
        status.success(),
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

/// Kills `child` and all its descendants (cargo and the test binary it
/// runs), found through the parent pids in `/proc`.
fn kill_tree(child: &mut Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let mut parents: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = parent_of(pid) {
                parents.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![child.id()];
    let mut seen = HashSet::new();
    let mut i = 0;
    while i < tree.len() {
        if let Some(children) = parents.get(&tree[i]) {
            tree.extend(children.iter().filter(|pid| seen.insert(**pid)));
        }
        i += 1;
    }
    for pid in tree.iter().rev() {
        if let Ok(raw) = i32::try_from(*pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    let _ = child.wait();
}

/// The parent pid from `/proc/PID/stat` (the field after the `(comm)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Reads the test lines (`test a::tests::b ... ok`) and the failure blocks
/// (`---- a::tests::b stdout ----`) out of `cargo test` output.
pub fn parse_results(output: &str) -> Vec<TestResult> {
    let mut results: Vec<TestResult> = Vec::new();
    let mut package = String::new();
    // The failure block being read: (index in `results`, its lines).
    let mut block: Option<(Option<usize>, Vec<&str>)> = None;

    let finish = |block: Option<(Option<usize>, Vec<&str>)>, results: &mut Vec<TestResult>| {
        if let Some((Some(index), lines)) = block {
            results[index].message = Some(clean_message(&lines));
        }
    };

    for line in output.lines() {
        if let Some(name) = running_package(line) {
            finish(block.take(), &mut results);
            package = name;
        } else if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|rest| rest.strip_suffix(" stdout ----"))
        {
            finish(block.take(), &mut results);
            let index = results
                .iter()
                .rposition(|r| r.package == package && r.name == name);
            block = Some((index, Vec::new()));
        } else if block.is_some() && (line == "failures:" || line.starts_with("test result: ")) {
            finish(block.take(), &mut results);
        } else if let Some((_, lines)) = block.as_mut() {
            lines.push(line);
        } else if let Some((name, outcome)) = test_line(line) {
            results.push(TestResult {
                package: package.clone(),
                name: name.to_string(),
                outcome,
                message: None,
            });
        }
    }
    finish(block, &mut results);
    results
}

/// `exercises` from `     Running unittests src/lib.rs (target/lab/debug/deps/exercises-0123abcd)`.
fn running_package(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix("Running ")?;
    let path = rest.rsplit_once('(')?.1.strip_suffix(')')?;
    let file = path.rsplit('/').next()?;
    let (name, _hash) = file.rsplit_once('-')?;
    Some(name.to_string())
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

    const SAMPLE: &str = "\
   Compiling exercises v0.1.0 (/w/exercises)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.50s
     Running unittests src/lib.rs (target/lab/debug/deps/exercises-0123abcd)

running 3 tests
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

thread 'ch03_b::tests::only' (4242) panicked at exercises/src/ch03_b.rs:9:5:
not yet implemented: ch03: build the set


failures:
    ch02_a::tests::second
    ch03_b::tests::only

test result: FAILED. 1 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

error: test failed, to rerun pass `-p exercises --lib`
     Running unittests src/lib.rs (target/lab/debug/deps/solutions-99ff)

running 1 test
test ch02_a::tests::second ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";

    #[test]
    fn reads_every_test_line_with_its_package() {
        let results = parse_results(SAMPLE);
        let seen: Vec<(&str, &str, Outcome)> = results
            .iter()
            .map(|r| (r.package.as_str(), r.name.as_str(), r.outcome))
            .collect();
        assert_eq!(
            seen,
            [
                ("exercises", "ch02_a::tests::first", Outcome::Passed),
                ("exercises", "ch02_a::tests::second", Outcome::Failed),
                ("exercises", "ch03_b::tests::only", Outcome::Failed),
                ("exercises", "ch03_b::tests::slow", Outcome::Ignored),
                ("solutions", "ch02_a::tests::second", Outcome::Passed),
            ]
        );
    }

    #[test]
    fn keeps_the_failure_message_a_test_wrote() {
        let results = parse_results(SAMPLE);
        let second = &results[1];
        assert_eq!(
            second.message.as_deref(),
            Some(
                "some output the test printed\n\n\
                 panicked at exercises/src/ch02_a.rs:40:9:\n\
                 the flags lost O_RDWR: OR the new flag into the old ones"
            )
        );
        let only = &results[2];
        assert!(
            only.message
                .as_deref()
                .unwrap()
                .ends_with("not yet implemented: ch03: build the set")
        );
        assert_eq!(results[0].message, None);
        assert_eq!(results[4].message, None);
    }

    #[test]
    fn names_and_modules() {
        let results = parse_results(SAMPLE);
        assert_eq!(results[1].module(), "ch02_a");
        assert_eq!(results[1].short_name(), "second");
    }

    #[test]
    fn a_build_failure_points_at_the_file() {
        let run = TestRun {
            command: String::new(),
            success: false,
            results: parse_results("   Compiling exercises\nerror[E0308]: mismatched types\n  --> exercises/src/ch02_a.rs:12:5\n"),
            output: "   Compiling exercises\nerror[E0308]: mismatched types\n  --> exercises/src/ch02_a.rs:12:5\n".into(),
        };
        assert!(run.build_failed());
        assert_eq!(
            run.first_error_location().as_deref(),
            Some("exercises/src/ch02_a.rs:12:5")
        );
        assert!(!run.compiler_messages().contains("Compiling"));
    }

    #[test]
    fn a_command_that_runs_too_long_is_stopped() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; sleep 30 & wait"]);
        let started = Instant::now();
        let result = run_merged(command, Duration::from_millis(300));
        assert!(matches!(result, Err(RunFailure::TimedOut)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn output_of_both_streams_is_kept_in_order() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo one; echo two >&2; echo three; exit 3"]);
        let (success, output) = run_merged(command, Duration::from_secs(10)).unwrap();
        assert!(!success);
        assert_eq!(output, "one\ntwo\nthree\n");
    }
}
