//! `cargo lab verify [--bless]`: the maintainer's contract as a report.
//!
//! Without `--bless` it checks the exercises as shipped, like `cargo test`
//! (and, with `CI=true`, that the working tree is the shipped version).
//! With `--bless` it checks the exercises in the working tree instead, and
//! if the whole contract holds for them, records them as the shipped
//! version in `exercises/shipped.toml`.

use std::process::ExitCode;

use anyhow::Result;

use crate::contract::{self, FILE_CHECKS, Problem, runs};
use crate::manifest::{self, Manifest, Shipped};
use crate::workspace::Workspace;

pub fn run(ws: &Workspace, bless: bool) -> Result<ExitCode> {
    println!("epoll-lab contract, in {}", ws.root().display());
    let exercises = ws.exercises().unwrap_or_default();
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

    let shipped = if bless {
        println!("Checking the exercises in the working tree, to record them as shipped.");
        println!();
        Shipped::working_tree(ws, &exercises)
    } else {
        println!(
            "Checking the exercises as shipped (the versions {} names), not the working copy.",
            manifest::PATH
        );
        println!();
        match contract::shipped(ws) {
            Ok(shipped) => shipped,
            Err(problem) => {
                report(
                    "the manifest of the shipped exercises can be read",
                    vec![problem],
                );
                Shipped::default()
            }
        }
    };

    for (title, check) in FILE_CHECKS {
        report(title, check(ws, &shipped));
    }
    if !bless {
        let changed = shipped.changed_in_working_tree();
        if contract::in_ci() {
            report(
                "the working tree's exercises are the shipped ones (CI)",
                runs::tree_is_shipped(&shipped),
            );
        } else if !changed.is_empty() {
            println!(
                "--    {} file{} of exercises/ differ{} from the shipped version (a learner's work: not checked;",
                changed.len(),
                if changed.len() == 1 { "" } else { "s" },
                if changed.len() == 1 { "s" } else { "" },
            );
            println!("      a maintainer who changed an exercise runs `cargo lab verify --bless`)");
        }
    }
    for note in contract::notes(&shipped) {
        println!("note  {note}");
    }

    let say = |line: &str| eprintln!("      {line}");
    if exercises.is_empty() {
        println!(
            "--    every exercise {} fails its tests (no exercises yet)",
            shipped.label()
        );
        println!("--    every solution passes its tests (no exercises yet)");
    } else {
        report(
            &format!("every exercise {} fails its tests", shipped.label()),
            runs::shipped_exercises_fail(ws, &shipped, &say)?,
        );
        report(
            "every solution passes its tests",
            runs::solutions_pass(ws, &say)?,
        );
    }

    println!();
    if broken > 0 {
        println!(
            "The contract is broken: {broken} problem{}.",
            if broken == 1 { "" } else { "s" }
        );
        if bless {
            println!(
                "Nothing was recorded: fix the problems, then run `cargo lab verify --bless` again."
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    println!("The contract holds.");
    if bless {
        let old = Manifest::load(ws).ok().flatten().unwrap_or_default();
        let new = Manifest::of_working_tree(ws, &exercises)?;
        let changed: Vec<&String> = new
            .files
            .iter()
            .filter(|(path, id)| old.files.get(*path) != Some(id))
            .map(|(path, _)| path)
            .collect();
        let dropped: Vec<&String> = old
            .files
            .keys()
            .filter(|p| !new.files.contains_key(*p))
            .collect();
        if changed.is_empty() && dropped.is_empty() {
            println!(
                "{} already records these versions: nothing to change.",
                manifest::PATH
            );
        } else {
            new.save(ws)?;
            println!("Recorded in {}:", manifest::PATH);
            for path in changed {
                println!("  exercises/{path}");
            }
            for path in dropped {
                println!("  exercises/{path} (removed)");
            }
            println!("Commit it with the exercises.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
