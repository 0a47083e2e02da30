//! `cargo lab hint EXERCISE [--level N]`: level 1 is a nudge, 2 the man page
//! section to read, 3 a near-solution (its code printed as code).

use std::process::ExitCode;

use anyhow::Result;

use super::{Lab, USAGE};
use crate::hints;
use crate::workspace::Exercise;

pub fn run(lab: &Lab, name: &str, level: u8) -> Result<ExitCode> {
    let exercise = match lab.exercise(name, "hint") {
        Ok(exercise) => exercise,
        Err(code) => return Ok(code),
    };
    let count = exercise.hints.len();
    let Some(lines) = render(exercise, level) else {
        eprintln!(
            "{} has {count} hint{}: ask for --level 1{}.",
            exercise.name,
            if count == 1 { "" } else { "s" },
            if count > 1 {
                format!(" to {count}")
            } else {
                String::new()
            }
        );
        return Ok(ExitCode::from(USAGE));
    };
    for line in lines {
        println!("{line}");
    }
    println!();
    if usize::from(level) < count {
        println!(
            "Still stuck? cargo lab hint {} --level {}",
            exercise.name,
            level + 1
        );
    } else {
        println!(
            "That is the last hint. Check it: cargo lab check {}",
            exercise.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The lines of hint `level` of `exercise` with their heading, or `None` if
/// it has no such hint.
pub fn render(exercise: &Exercise, level: u8) -> Option<Vec<String>> {
    let count = exercise.hints.len();
    let text = exercise.hints.get(usize::from(level).checked_sub(1)?)?;
    let kind = match (count, level) {
        (3, 1) => " (a nudge)",
        (3, 2) => " (what to read)",
        (3, 3) => " (a near-solution)",
        _ => "",
    };
    let mut lines = vec![
        format!("{}, hint {level} of {count}{kind}:", exercise.name),
        String::new(),
    ];
    lines.extend(
        hints::layout(text, 76).into_iter().map(
            |l| {
                if l.is_empty() { l } else { format!("  {l}") }
            },
        ),
    );
    Some(lines)
}
