//! `cargo lab`: every chapter with its exercises and how far each is, what
//! needs attention (an exercise that does not compile, a test that had to
//! be stopped), and the one next step.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Result;

use super::{Lab, first_error};
use crate::progress::{self, State};
use crate::results::{ExerciseResult, Outcome};

pub fn run(lab: &Lab) -> Result<ExitCode> {
    println!("epoll-lab: from one blocking read to a reactor.");
    println!();
    if lab.exercises.is_empty() {
        for chapter in &lab.chapters {
            println!(
                "{}  {}",
                chapter.id,
                progress::chapter_title(&lab.ws, chapter)
            );
        }
        println!();
        println!("No exercises yet: they are being written.");
        println!("Meanwhile, read the book and run a chapter's scenarios:");
        println!("  mdbook serve book        (install: cargo install mdbook --locked)");
        if let Some(first) = lab.chapters.first() {
            println!("  cargo run -p {}", first.package());
        }
        return Ok(ExitCode::SUCCESS);
    }

    let results = lab.results(&BTreeSet::new())?;
    let states: Vec<State> = results.iter().map(State::of).collect();
    let width = lab
        .exercises
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0);

    let mut ids: Vec<String> = lab.chapters.iter().map(|c| c.id.clone()).collect();
    for exercise in &lab.exercises {
        if !ids.contains(&exercise.chapter) {
            ids.push(exercise.chapter.clone());
        }
    }
    ids.sort();
    let titles: Vec<(String, String)> = ids
        .into_iter()
        .map(|id| {
            let title = lab
                .chapters
                .iter()
                .find(|c| c.id == id)
                .map(|c| progress::chapter_title(&lab.ws, c))
                .unwrap_or_default();
            (id, title)
        })
        .collect();
    let title_width = titles.iter().map(|(_, t)| t.len()).max().unwrap_or(0);
    for (id, title) in &titles {
        let (solved, total) = progress::chapter_progress(id, &lab.exercises, &states);
        if total == 0 {
            println!("{id}  {title:title_width$}  (no exercises)");
            continue;
        }
        println!("{id}  {title:title_width$}  {solved}/{total} solved");
        for (exercise, state) in lab.exercises.iter().zip(&states) {
            if &exercise.chapter != id {
                continue;
            }
            let mark = if state.is_solved() { "[x]" } else { "[ ]" };
            println!(
                "      {mark} {:width$}  {}",
                exercise.name,
                state.describe()
            );
        }
    }
    let solved = states.iter().filter(|s| s.is_solved()).count();
    println!();
    println!("{solved} of {} exercises solved.", lab.exercises.len());
    println!();

    print_attention(lab, &results);
    println!("{}", lab.next_steps(&states));
    Ok(ExitCode::SUCCESS)
}

/// The exercises that do not compile (with the compiler's first error) and
/// the tests that had to be stopped.
fn print_attention(lab: &Lab, results: &[ExerciseResult]) {
    let mut any = false;
    let mut heading = || {
        if !any {
            println!("Needs attention:");
            any = true;
        }
    };
    let mut built_reason: Option<&str> = None;
    for (exercise, result) in lab.exercises.iter().zip(results) {
        match result {
            ExerciseResult::DoesNotCompile { messages, .. } => {
                heading();
                println!(
                    "  {} does not compile (the others are checked without it):",
                    exercise.name
                );
                for line in first_error(messages).lines() {
                    println!("      {line}");
                }
            }
            ExerciseResult::Tested { tests } => {
                let stuck: Vec<&str> = tests
                    .iter()
                    .filter(|t| t.outcome == Outcome::TimedOut)
                    .map(|t| t.short_name())
                    .collect();
                if stuck.is_empty() {
                    continue;
                }
                heading();
                let limit = crate::testrun::test_time_limit().as_secs();
                let (what, them) = if stuck.len() == 1 {
                    ("a test was", "it")
                } else {
                    ("tests were", "them")
                };
                println!(
                    "  {}: {what} still running after {limit} s (spinning or blocked), so the lab stopped {them}:",
                    exercise.name
                );
                for name in stuck {
                    println!("      {name}");
                }
            }
            ExerciseResult::NotBuilt { reason } => built_reason = Some(reason),
            ExerciseResult::Missing => {}
        }
    }
    if let Some(reason) = built_reason {
        heading();
        println!("  The exercises could not be built, for a reason outside the exercise files:");
        for line in reason.lines().take(20) {
            println!("      {line}");
        }
    }
    if any {
        println!();
    }
}
