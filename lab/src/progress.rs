//! A learner's progress: which exercises are solved (all their tests
//! pass), which one comes next, and what a name on the command line means.

use std::fs;

use crate::suggest;
use crate::testrun::{Outcome, TestResult, TestRun};
use crate::workspace::{Chapter, Exercise, Workspace};

/// Where one exercise stands after a test run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Every test passes.
    Solved { tests: usize },
    /// Some tests fail.
    Unsolved { failed: usize, tests: usize },
    /// No test of it ran (it has none, or it was not in the run).
    NoTests,
    /// The exercises did not compile, so nothing is known.
    Unknown,
}

impl State {
    /// How the state reads in a listing: `solved`, `2 of 3 tests fail`.
    pub fn describe(&self) -> String {
        match self {
            State::Solved { tests: 1 } => "solved (its test passes)".to_string(),
            State::Solved { tests } => format!("solved ({tests} tests pass)"),
            State::Unsolved { failed, tests } if failed == tests && *tests == 1 => {
                "its test fails".to_string()
            }
            State::Unsolved { failed, tests } if failed == tests => {
                format!("all {tests} tests fail")
            }
            State::Unsolved { failed, tests } => format!("{failed} of {tests} tests fail"),
            State::NoTests => "no test ran".to_string(),
            State::Unknown => "not tested: the exercises do not compile".to_string(),
        }
    }

    pub fn is_solved(&self) -> bool {
        matches!(self, State::Solved { .. })
    }
}

/// The state of `exercise` according to `run`.
pub fn state_of(exercise: &Exercise, run: &TestRun) -> State {
    if run.build_failed() {
        return State::Unknown;
    }
    let results: Vec<&TestResult> = run
        .of("exercises", &exercise.name)
        .filter(|r| r.outcome != Outcome::Ignored)
        .collect();
    let failed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .count();
    match (results.len(), failed) {
        (0, _) => State::NoTests,
        (tests, 0) => State::Solved { tests },
        (tests, failed) => State::Unsolved { failed, tests },
    }
}

/// What a name on the command line (`cargo lab check NAME`) refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Chapter(Chapter),
    Exercise(Exercise),
}

/// A name that is neither an exercise nor a chapter; its `Display` lists
/// the valid names and suggests the closest.
#[derive(Debug, Clone)]
pub struct UnknownName {
    pub typed: String,
    pub exercises: Vec<String>,
    pub chapters: Vec<String>,
}

impl std::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "There is no exercise or chapter named `{}`.", self.typed)?;
        let candidates: Vec<&str> = self
            .exercises
            .iter()
            .chain(&self.chapters)
            .map(String::as_str)
            .collect();
        if let Some(guess) = suggest::closest(&self.typed, &candidates) {
            writeln!(f, "Did you mean `{guess}`?")?;
        }
        writeln!(f)?;
        writeln!(f, "Chapters:  {}", self.chapters.join(", "))?;
        if self.exercises.is_empty() {
            write!(f, "Exercises: none yet")
        } else {
            write!(f, "Exercises: {}", self.exercises.join("\n           "))
        }
    }
}

/// Resolves `typed` to a chapter (`ch02`) or an exercise (`ch02_set_nonblocking`).
pub fn resolve(
    typed: &str,
    exercises: &[Exercise],
    chapters: &[Chapter],
) -> Result<Target, UnknownName> {
    if let Some(exercise) = exercises.iter().find(|e| e.name == typed) {
        return Ok(Target::Exercise(exercise.clone()));
    }
    if let Some(chapter) = chapters.iter().find(|c| c.id == typed) {
        return Ok(Target::Chapter(chapter.clone()));
    }
    Err(UnknownName {
        typed: typed.to_string(),
        exercises: exercises.iter().map(|e| e.name.clone()).collect(),
        chapters: chapters.iter().map(|c| c.id.clone()).collect(),
    })
}

/// The title of a chapter as the book's table of contents gives it
/// (`Non-blocking I/O`), or its directory name if the book has none yet.
pub fn chapter_title(ws: &Workspace, chapter: &Chapter) -> String {
    let summary = fs::read_to_string(ws.book_src().join("SUMMARY.md")).unwrap_or_default();
    let page_prefix = format!("{}-", chapter.id);
    crate::book::summary_links(&summary)
        .into_iter()
        .find(|(_, _, target)| target.starts_with(&page_prefix))
        .map(|(_, title, _)| {
            let number = &chapter.id[2..];
            title
                .strip_prefix(&format!("{number}. "))
                .unwrap_or(&title)
                .to_string()
        })
        .unwrap_or_else(|| chapter.dir_name.clone())
}

/// The lines telling the learner what to do about `exercise`:
/// the page to read, the file to edit, the command to run.
pub fn next_steps(ws: &Workspace, exercise: &Exercise) -> String {
    let page = ws
        .book_page(&exercise.chapter)
        .ok()
        .flatten()
        .map(|p| ws.show(&p))
        .unwrap_or_else(|| "book/src/SUMMARY.md".to_string());
    let file = ws.show(&ws.exercise_file(&exercise.name));
    format!(
        "Next: {name}\n  \
         read   {page}\n  \
         edit   {file}\n  \
         run    cargo lab check {name}\n\
         Stuck? cargo lab hint {name}",
        name = exercise.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testrun::parse_results;
    use crate::workspace::parse_info;

    fn exercises() -> Vec<Exercise> {
        parse_info(
            "[[exercise]]\nname = \"ch02_a\"\nchapter = \"ch02\"\nhints = []\n\
             [[exercise]]\nname = \"ch02_b\"\nchapter = \"ch02\"\nhints = []\n\
             [[exercise]]\nname = \"ch03_c\"\nchapter = \"ch03\"\nhints = []\n",
        )
        .unwrap()
    }

    fn run(output: &str, success: bool) -> TestRun {
        TestRun {
            command: String::new(),
            success,
            results: parse_results(output),
            output: output.to_string(),
        }
    }

    #[test]
    fn states_from_a_run() {
        let output = "     Running unittests src/lib.rs (target/lab/debug/deps/exercises-1)\n\
                      test ch02_a::tests::x ... ok\n\
                      test ch02_a::tests::y ... ignored\n\
                      test ch02_b::tests::x ... ok\n\
                      test ch02_b::tests::y ... FAILED\n";
        let run = run(output, false);
        let states: Vec<State> = exercises().iter().map(|e| state_of(e, &run)).collect();
        assert_eq!(
            states,
            [
                State::Solved { tests: 1 },
                State::Unsolved {
                    failed: 1,
                    tests: 2
                },
                State::NoTests,
            ]
        );
        assert_eq!(states[1].describe(), "1 of 2 tests fail");
    }

    #[test]
    fn nothing_is_known_when_the_build_fails() {
        let run = run("error[E0308]: mismatched types\n", false);
        assert_eq!(state_of(&exercises()[0], &run), State::Unknown);
    }

    #[test]
    fn resolves_names_and_explains_unknown_ones() {
        let chapters = vec![Chapter {
            id: "ch02".into(),
            dir_name: "02-nonblocking-io".into(),
        }];
        assert!(matches!(
            resolve("ch02_b", &exercises(), &chapters),
            Ok(Target::Exercise(e)) if e.name == "ch02_b"
        ));
        assert!(matches!(
            resolve("ch02", &exercises(), &chapters),
            Ok(Target::Chapter(c)) if c.id == "ch02"
        ));
        let unknown = resolve("ch3_c", &exercises(), &chapters).unwrap_err();
        let text = unknown.to_string();
        assert!(
            text.contains("no exercise or chapter named `ch3_c`"),
            "{text}"
        );
        assert!(text.contains("Did you mean `ch03_c`?"), "{text}");
        assert!(text.contains("Chapters:  ch02"), "{text}");
    }
}
