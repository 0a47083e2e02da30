//! Bad input on the command line: a clean `error:` message, exit code 2
//! for a usage error, a hint for a bind that fails, the scenarios listed
//! for an unknown one, and never a backtrace (even with RUST_BACKTRACE=1).
//! First for this chapter's binary, then for every chapter binary built
//! beside it (all of them after a workspace `cargo test`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const THIS: &str = "ch06-epoll-echo-server";

fn this_binary() -> &'static Path {
    Path::new(assert_cmd::cargo::cargo_bin!("ch06-epoll-echo-server"))
}

/// Runs `binary ARGS` with RUST_BACKTRACE=1 and a time limit.
fn run(binary: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(binary);
    command.args(args).env("RUST_BACKTRACE", "1");
    assert_cmd::Command::from_std(command)
        .timeout(std::time::Duration::from_secs(10))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Checks the things every error shares: exit code `code`, `error: ` at the
/// start of stderr, no backtrace, no panic.
fn assert_clean_error(binary: &Path, args: &[&str], output: &Output, code: i32) {
    let err = stderr(output);
    let shown = format!("{} {}", binary.display(), args.join(" "));
    assert_eq!(
        output.status.code(),
        Some(code),
        "`{shown}` should exit with {code}; stderr:\n{err}"
    );
    assert!(
        err.starts_with("error: "),
        "`{shown}` should say `error: ...` first; stderr:\n{err}"
    );
    for noise in ["backtrace", "panicked", "Caused by", "Stack"] {
        assert!(
            !err.contains(noise),
            "`{shown}` printed {noise:?} under RUST_BACKTRACE=1: a user's mistake gets a \
             message, not a backtrace; stderr:\n{err}"
        );
    }
}

/// The scenario names a binary lists when run without arguments.
fn scenarios_of(binary: &Path) -> Vec<String> {
    let listing = run(binary, &[]);
    lab_kit::transcript::listed_scenarios(&String::from_utf8_lossy(&listing.stdout))
}

fn has_serve(binary: &Path) -> bool {
    let listing = run(binary, &[]);
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .any(|l| l.trim_start().starts_with("serve "))
}

fn check_unknown_scenario(binary: &Path) {
    let output = run(binary, &["no-such-scenario"]);
    assert_clean_error(binary, &["no-such-scenario"], &output, 2);
    let err = stderr(&output);
    for scenario in scenarios_of(binary) {
        assert!(
            err.contains(&scenario),
            "an unknown scenario should list the scenarios there are; `{scenario}` is \
             missing from:\n{err}"
        );
    }
}

fn check_bad_addresses(binary: &Path) {
    for bad in ["notanaddress", "127.0.0.1", "0.0.0.0:7006"] {
        let args = ["serve", "--addr", bad];
        let output = run(binary, &args);
        assert_clean_error(binary, &args, &output, 2);
        assert!(
            stderr(&output).contains("--addr"),
            "the message should name the flag; stderr:\n{}",
            stderr(&output)
        );
    }
}

fn check_port_in_use(binary: &Path) {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = ["serve", "--addr", addr.as_str()];
    let output = run(binary, &args);
    assert_clean_error(binary, &args, &output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("EADDRINUSE") && err.contains("--addr 127.0.0.1:0"),
        "a port in use should be named as such, with the way out (`--addr 127.0.0.1:0`); \
         stderr:\n{err}"
    );
}

#[test]
fn an_unknown_scenario_is_a_usage_error_that_lists_the_scenarios() {
    check_unknown_scenario(this_binary());
}

#[test]
fn a_bad_addr_is_a_usage_error_without_a_backtrace() {
    check_bad_addresses(this_binary());
}

#[test]
fn a_port_in_use_fails_with_a_hint() {
    check_port_in_use(this_binary());
}

#[test]
fn a_bad_server_name_for_bench_is_a_usage_error() {
    let args = ["bench", "--servers", "epoll,nginx"];
    let output = run(this_binary(), &args);
    assert_clean_error(this_binary(), &args, &output, 2);
    assert!(stderr(&output).contains("possible values"));
}

/// Every chapter binary built beside this one behaves the same.
#[test]
fn every_chapter_binary_handles_bad_input_the_same_way() {
    let dir = this_binary().parent().unwrap();
    let mut binaries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // ch01-blocking-io, ch02-..., but not ch01-blocking-io.d
            name.starts_with("ch")
                && name.as_bytes().get(2).is_some_and(u8::is_ascii_digit)
                && name.contains('-')
                && !name.contains('.')
        })
        .collect();
    binaries.sort();
    assert!(
        binaries.iter().any(|b| b.ends_with(THIS)),
        "found no {THIS} in {}",
        dir.display()
    );
    let mut checked = Vec::new();
    for binary in &binaries {
        check_unknown_scenario(binary);
        if has_serve(binary) {
            check_bad_addresses(binary);
            check_port_in_use(binary);
        }
        checked.push(binary.file_name().unwrap().to_string_lossy().to_string());
    }
    eprintln!("checked: {}", checked.join(", "));
}
