//! `cargo lab check [chNN|EXERCISE]`: check those exercises again (the
//! others keep their saved results), show each test in the order it is
//! written with what went wrong, and say what is next.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Result;

use super::{Lab, fix_this, print_result};
use crate::progress::{State, Target};
use crate::workspace::Exercise;

pub fn run(lab: &Lab, target: Option<&str>) -> Result<ExitCode> {
    let scope: Vec<&Exercise> = match target {
        None => lab.exercises.iter().collect(),
        Some(name) => match lab.resolve(name) {
            Ok(Target::Exercise(exercise)) => lab
                .exercises
                .iter()
                .filter(|e| e.name == exercise.name)
                .collect(),
            Ok(Target::Chapter(chapter)) => lab
                .exercises
                .iter()
                .filter(|e| e.chapter == chapter.id)
                .collect(),
            Err(code) => return Ok(code),
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

    let fresh: BTreeSet<String> = scope.iter().map(|e| e.name.clone()).collect();
    let results = lab.results(&fresh)?;
    let states: Vec<State> = results.iter().map(State::of).collect();
    eprintln!();

    // Checking everything: messages only for the first unsolved exercise,
    // to keep the focus on one thing.
    let mut first_unsolved = None;
    for (i, exercise) in lab.exercises.iter().enumerate() {
        if !fresh.contains(&exercise.name) {
            continue;
        }
        let unsolved = !states[i].is_solved();
        let detailed = target.is_some() || (unsolved && first_unsolved.is_none());
        print_result(exercise, &results[i], detailed);
        println!();
        if unsolved && first_unsolved.is_none() {
            first_unsolved = Some(i);
        }
    }

    if let Some(i) = first_unsolved {
        println!(
            "{}",
            fix_this(&lab.ws, &lab.exercises[i], &results[i], false)
        );
        return Ok(ExitCode::FAILURE);
    }
    match (&scope[..], target) {
        ([one], Some(_)) => println!("{} is solved.", one.name),
        (all, Some(name)) => println!("All {} exercises of {name} are solved.", all.len()),
        (all, None) => println!("All {} exercises are solved.", all.len()),
    }
    println!();
    println!("{}", lab.next_steps(&states));
    Ok(ExitCode::SUCCESS)
}
