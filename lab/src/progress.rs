//! A learner's progress: which exercises are solved (all their tests
//! pass), which one comes next, how far each chapter is, and what a name
//! on the command line means.
//!
//! "Next" has one definition, used by every command: the first exercise,
//! in the order of `exercises/info.toml` (the book's order), that is not
//! solved. Exercises can be solved in any order; "all done" means all.

use std::fs;

use crate::results::{ExerciseResult, Outcome};
use crate::suggest;
use crate::workspace::{Chapter, Exercise, Workspace};

/// Where one exercise stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Every test passes.
    Solved { tests: usize },
    /// Some tests fail, or were stopped (`stuck`, by name).
    Unsolved {
        failed: usize,
        stuck: Vec<String>,
        tests: usize,
    },
    /// It has no test (or none ran).
    NoTests,
    /// Its file does not compile.
    DoesNotCompile { location: Option<String> },
    /// Its file is not there.
    Missing,
    /// Nothing could be built, for a reason outside the exercise files.
    NotTested,
}

impl State {
    /// The state a result shows.
    pub fn of(result: &ExerciseResult) -> State {
        match result {
            ExerciseResult::Tested { tests } => {
                let counted: Vec<_> = tests
                    .iter()
                    .filter(|t| t.outcome != Outcome::Ignored)
                    .collect();
                let failed = counted
                    .iter()
                    .filter(|t| t.outcome != Outcome::Passed)
                    .count();
                let stuck: Vec<String> = counted
                    .iter()
                    .filter(|t| t.outcome == Outcome::TimedOut)
                    .map(|t| t.short_name().to_string())
                    .collect();
                match (counted.len(), failed) {
                    (0, _) => State::NoTests,
                    (tests, 0) => State::Solved { tests },
                    (tests, failed) => State::Unsolved {
                        failed,
                        stuck,
                        tests,
                    },
                }
            }
            ExerciseResult::DoesNotCompile { location, .. } => State::DoesNotCompile {
                location: location.clone(),
            },
            ExerciseResult::Missing => State::Missing,
            ExerciseResult::NotBuilt { .. } => State::NotTested,
        }
    }

    /// How the state reads in a listing: `solved (3 tests pass)`,
    /// `2 of 3 tests fail`, `does not compile (exercises/src/x.rs:3:5)`.
    pub fn describe(&self) -> String {
        match self {
            State::Solved { tests: 1 } => "solved (its test passes)".to_string(),
            State::Solved { tests } => format!("solved ({tests} tests pass)"),
            State::Unsolved {
                failed,
                stuck,
                tests,
            } => {
                let failing = match (failed, tests) {
                    (1, 1) => "its test fails".to_string(),
                    (f, t) if f == t => format!("all {t} tests fail"),
                    (f, t) => format!("{f} of {t} tests fail"),
                };
                let limit = crate::testrun::test_time_limit().as_secs();
                match &stuck[..] {
                    [] => failing,
                    [one] => format!(
                        "{failing}; `{one}` still running after {limit} s (spinning or blocked)"
                    ),
                    many => format!(
                        "{failing}; {} still running after {limit} s (spinning or blocked)",
                        many.len()
                    ),
                }
            }
            State::NoTests => "no test ran".to_string(),
            State::DoesNotCompile {
                location: Some(location),
            } => format!("does not compile ({location})"),
            State::DoesNotCompile { location: None } => "does not compile".to_string(),
            State::Missing => "its file is missing".to_string(),
            State::NotTested => "not tested: the exercises could not be built".to_string(),
        }
    }

    pub fn is_solved(&self) -> bool {
        matches!(self, State::Solved { .. })
    }
}

/// The index of the next exercise: the first, in `exercises`' order (the
/// book's), that is not solved. `None` when every one is.
pub fn next(states: &[State]) -> Option<usize> {
    states.iter().position(|s| !s.is_solved())
}

/// How many of a chapter's exercises are solved: `(solved, total)`.
pub fn chapter_progress(chapter: &str, exercises: &[Exercise], states: &[State]) -> (usize, usize) {
    let mine: Vec<&State> = exercises
        .iter()
        .zip(states)
        .filter(|(e, _)| e.chapter == chapter)
        .map(|(_, s)| s)
        .collect();
    (mine.iter().filter(|s| s.is_solved()).count(), mine.len())
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
         run    cargo lab check {name}   (or `cargo lab watch`: it checks on every save)\n\
         Stuck? cargo lab hint {name}",
        name = exercise.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::TestResult;
    use crate::workspace::parse_info;

    fn exercises() -> Vec<Exercise> {
        parse_info(
            "[[exercise]]\nname = \"ch02_a\"\nchapter = \"ch02\"\nhints = []\n\
             [[exercise]]\nname = \"ch02_b\"\nchapter = \"ch02\"\nhints = []\n\
             [[exercise]]\nname = \"ch03_c\"\nchapter = \"ch03\"\nhints = []\n",
        )
        .unwrap()
    }

    fn test(name: &str, outcome: Outcome) -> TestResult {
        TestResult {
            name: name.into(),
            outcome,
            message: None,
        }
    }

    #[test]
    fn states_from_results() {
        let solved = ExerciseResult::Tested {
            tests: vec![
                test("ch02_a::tests::x", Outcome::Passed),
                test("ch02_a::tests::y", Outcome::Ignored),
            ],
        };
        let unsolved = ExerciseResult::Tested {
            tests: vec![
                test("ch02_b::tests::x", Outcome::Passed),
                test("ch02_b::tests::y", Outcome::Failed),
                test("ch02_b::tests::z", Outcome::TimedOut),
            ],
        };
        assert_eq!(State::of(&solved), State::Solved { tests: 1 });
        let state = State::of(&unsolved);
        assert_eq!(
            state,
            State::Unsolved {
                failed: 2,
                stuck: vec!["z".into()],
                tests: 3
            }
        );
        assert_eq!(
            state.describe(),
            "2 of 3 tests fail; `z` still running after 5 s (spinning or blocked)"
        );
        assert_eq!(
            State::of(&ExerciseResult::Tested { tests: vec![] }),
            State::NoTests
        );
        let broken = ExerciseResult::DoesNotCompile {
            location: Some("exercises/src/ch02_a.rs:3:5".into()),
            messages: "error".into(),
        };
        assert_eq!(
            State::of(&broken).describe(),
            "does not compile (exercises/src/ch02_a.rs:3:5)"
        );
    }

    #[test]
    fn next_is_the_first_unsolved_in_book_order() {
        let solved = State::Solved { tests: 1 };
        let broken = State::DoesNotCompile { location: None };
        assert_eq!(
            next(&[solved.clone(), broken.clone(), State::NoTests]),
            Some(1)
        );
        assert_eq!(next(&[broken, solved.clone()]), Some(0));
        assert_eq!(next(&[solved.clone(), solved]), None);
        assert_eq!(next(&[]), None);
    }

    #[test]
    fn chapters_count_their_solved_exercises() {
        let states = [
            State::Solved { tests: 1 },
            State::NoTests,
            State::Solved { tests: 2 },
        ];
        assert_eq!(chapter_progress("ch02", &exercises(), &states), (1, 2));
        assert_eq!(chapter_progress("ch03", &exercises(), &states), (1, 1));
        assert_eq!(chapter_progress("ch04", &exercises(), &states), (0, 0));
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
