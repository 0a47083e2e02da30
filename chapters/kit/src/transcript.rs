//! Scenario binaries and their transcripts.
//!
//! Every chapter binary lists its scenarios when run without arguments
//! ([`print_scenarios`]); its `tests/transcripts.rs` runs each listed
//! scenario through the real binary ([`listed_scenarios`], [`render`]) and
//! snapshots the result, so the book shows exactly what the binary prints.

use std::path::Path;
use std::process::{Command, Output};

/// Subcommands that are not scenarios: they run until stopped (`serve`) or
/// measure time (`bench`), so they are listed apart and never snapshotted.
pub const NOT_SCENARIOS: [&str; 2] = ["serve", "bench"];

/// Prints the no-argument listing of a chapter binary: one line per
/// scenario with its `about`, then `serve` and `bench` (if any) apart, then
/// how to run one.
pub fn print_scenarios(package: &str, intro: &str, cli: &clap::Command) {
    println!("{package}: {intro}");
    println!();
    println!("Scenarios:");
    let width = cli
        .get_subcommands()
        .map(|c| c.get_name().len())
        .max()
        .unwrap_or(0);
    let about = |c: &clap::Command| c.get_about().map(|a| a.to_string()).unwrap_or_default();
    let is_scenario = |c: &&clap::Command| !NOT_SCENARIOS.contains(&c.get_name());
    for command in cli.get_subcommands().filter(is_scenario) {
        println!("  {:width$}  {}", command.get_name(), about(command));
    }
    let others: Vec<&clap::Command> = cli.get_subcommands().filter(|c| !is_scenario(c)).collect();
    if !others.is_empty() {
        println!();
        println!("Also:");
        for command in others {
            println!("  {:width$}  {}", command.get_name(), about(command));
        }
    }
    println!();
    println!("Run one:   cargo run -p {package} -- SCENARIO");
    println!("Its flags: cargo run -p {package} -- SCENARIO --help");
}

/// The scenario names in a listing printed by [`print_scenarios`]
/// (not `serve` or `bench`: see [`NOT_SCENARIOS`]).
pub fn listed_scenarios(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip_while(|line| *line != "Scenarios:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// A transcript as the book shows it: the command a learner types, what the
/// binary printed on stdout, its stderr (if any), and its exit code.
pub fn render(package: &str, args: &[&str], output: &Output) -> String {
    let mut text = if args.is_empty() {
        format!("$ cargo run -p {package}\n")
    } else {
        format!("$ cargo run -p {package} -- {}\n", args.join(" "))
    };
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    if !output.stderr.is_empty() {
        text.push_str("--- stderr ---\n");
        text.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match output.status.code() {
        Some(code) => text.push_str(&format!("(exit code {code})\n")),
        None => text.push_str("(killed by a signal)\n"),
    }
    text
}

/// A command that runs a scenario binary with only stdin, stdout and
/// stderr open, as a fresh shell starts it. Whatever else the test process
/// inherited (a CI runner or a terminal multiplexer may leave descriptors
/// such as 10 or 255 open without close-on-exec) is closed at exec, so the
/// numbers the scenario's descriptors get, which some transcripts show as
/// `base+N`, are the same on every machine.
pub fn scenario_command(binary: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(binary);
    // SAFETY: the closure makes one system call (close_range(2), Linux
    // 5.11 for CLOSE_RANGE_CLOEXEC) between fork and exec: async-signal-safe,
    // no allocation, no lock. Marking the descriptors close-on-exec rather
    // than closing them keeps the standard library's own exec-error pipe
    // working until the exec.
    unsafe {
        command.pre_exec(|| {
            let rc = nix::libc::syscall(
                nix::libc::SYS_close_range,
                3,
                nix::libc::c_uint::MAX,
                nix::libc::CLOSE_RANGE_CLOEXEC,
            );
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command
}

/// Runs `binary` the way a chapter's `tests/transcripts.rs` needs it: with
/// no arguments (the listing), then every listed scenario, and a scenario
/// that has a `--mode` flag once per mode its `--help` lists. Returns
/// `(snapshot name, transcript)` pairs: `listing`, `NAME`, or `NAME--MODE`.
/// The caller snapshots each pair with `insta::assert_snapshot!`, which
/// must be called from the test's own file to find its snapshot folder.
pub fn all_transcripts(package: &str, binary: &Path) -> Vec<(String, String)> {
    let run = |args: &[&str]| -> Output {
        scenario_command(binary)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
    };
    let listing = run(&[]);
    let scenarios = listed_scenarios(&String::from_utf8_lossy(&listing.stdout));
    assert!(
        !scenarios.is_empty(),
        "{package} listed no scenarios:\n{}",
        render(package, &[], &listing)
    );
    let mut transcripts = vec![("listing".to_string(), render(package, &[], &listing))];
    for scenario in &scenarios {
        let help = String::from_utf8_lossy(&run(&[scenario, "--help"]).stdout).to_string();
        let modes = mode_values(&help);
        if modes.is_empty() {
            let output = run(&[scenario]);
            transcripts.push((scenario.clone(), render(package, &[scenario], &output)));
        }
        for mode in modes {
            let args = [scenario.as_str(), "--mode", mode.as_str()];
            let output = run(&args);
            transcripts.push((
                format!("{scenario}--{mode}"),
                render(package, &args, &output),
            ));
        }
    }
    transcripts
}

/// The values clap's `--help` lists for a `--mode` flag
/// (`[possible values: level, edge]`), or none if there is no such flag.
fn mode_values(help: &str) -> Vec<String> {
    let Some(flag) = help.find("--mode") else {
        return Vec::new();
    };
    let rest = &help[flag..];
    let Some(start) = rest.find("[possible values: ") else {
        return Vec::new();
    };
    let values = &rest[start + "[possible values: ".len()..];
    let end = values.find(']').unwrap_or(values.len());
    values[..end]
        .split(',')
        .map(|v| v.trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_modes_of_a_mode_flag_only() {
        let help = "Options:\n      --mode <MODE>  Register [default: level] \
                    [possible values: level, edge]\n  -h, --help";
        assert_eq!(mode_values(help), vec!["level", "edge"]);
        let other = "      --backend <B>  [possible values: epoll, poll]\n";
        assert!(mode_values(other).is_empty(), "only --mode makes modes");
    }

    #[test]
    fn lists_scenarios_but_not_serve_or_bench() {
        let listing = "x: y\n\nScenarios:\n  one    first\n  two    second\n\n\
                       Also:\n  serve  serves\n  bench  measures\n";
        assert_eq!(listed_scenarios(listing), vec!["one", "two"]);
    }
}
