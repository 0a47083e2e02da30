//! Scenario binaries and their transcripts.
//!
//! Every chapter binary lists its scenarios when run without arguments
//! ([`print_scenarios`]); its `tests/transcripts.rs` runs each listed
//! scenario through the real binary ([`listed_scenarios`], [`render`]) and
//! snapshots the result, so the book shows exactly what the binary prints.

use std::process::Output;

/// Prints the no-argument listing of a chapter binary: one line per
/// subcommand with its `about`, then how to run one. `serve` (if any) is
/// listed apart, since it runs until Ctrl-C.
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
    for command in cli.get_subcommands().filter(|c| c.get_name() != "serve") {
        println!("  {:width$}  {}", command.get_name(), about(command));
    }
    if let Some(serve) = cli.get_subcommands().find(|c| c.get_name() == "serve") {
        println!();
        println!("Server (runs until Ctrl-C):");
        println!("  {:width$}  {}", "serve", about(serve));
    }
    println!();
    println!("Run one:   cargo run -p {package} -- SCENARIO");
    println!("Its flags: cargo run -p {package} -- SCENARIO --help");
}

/// The scenario names in a listing printed by [`print_scenarios`]
/// (not `serve`: it does not end by itself).
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
    let mut text = format!("$ cargo run -p {package} -- {}\n", args.join(" "));
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
