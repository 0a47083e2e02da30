//! `cargo lab solution EXERCISE`: the reference solution, once the exercise
//! is solved (so it is something to compare with, not a way around).

use std::collections::BTreeSet;
use std::fs;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::Lab;
use crate::progress::State;
use crate::source;

pub fn run(lab: &Lab, name: &str) -> Result<ExitCode> {
    let exercise = match lab.exercise(name, "solution") {
        Ok(exercise) => exercise,
        Err(code) => return Ok(code),
    };
    let index = lab
        .exercises
        .iter()
        .position(|e| e.name == exercise.name)
        .expect("found in this list");
    // The saved result if the file did not change since the last check.
    let results = lab.results(&BTreeSet::new())?;
    let state = State::of(&results[index]);
    if !state.is_solved() {
        println!("{} is not solved yet: {}.", exercise.name, state.describe());
        println!("Its solution is shown once all its tests pass. To get there:");
        println!(
            "  cargo lab check {}     what fails, and why",
            exercise.name
        );
        println!(
            "  cargo lab hint {} --level 1   (up to --level 3, a near-solution)",
            exercise.name
        );
        return Ok(ExitCode::FAILURE);
    }
    let path = lab.ws.solution_file(&exercise.name);
    let text =
        fs::read_to_string(&path).with_context(|| format!("reading {}", lab.ws.show(&path)))?;
    // The tests are the same as in the exercise: the code is what differs.
    let code = match source::tests_section(&text) {
        Some(tests) => &text[..text.len() - tests.len()],
        None => text.as_str(),
    };
    println!(
        "{} is solved. The reference solution, {}:",
        exercise.name,
        lab.ws.show(&path)
    );
    println!();
    println!("{}", code.trim_end());
    println!();
    println!(
        "(Its tests are the same as in your file.) Yours passes the same tests: both are right."
    );
    Ok(ExitCode::SUCCESS)
}
