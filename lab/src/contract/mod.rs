//! The maintainer's contract: what must hold between the exercises, the
//! solutions, `info.toml`, the chapters and the book.
//!
//! The exercises are checked **as shipped**: the versions
//! `exercises/shipped.toml` names (see [`crate::manifest`]), never the
//! learner's working copy, so `cargo test` stays green whatever a learner
//! did to `exercises/`. Only with `CI=true` must the working tree be the
//! shipped version too (a maintainer who changed an exercise is told to
//! run `cargo lab verify --bless`).
//!
//! Each check returns the problems it found, each saying what is wrong and
//! how to fix it. `cargo lab verify` prints them; `lab/tests/contract.rs`
//! fails `cargo test` on them. The checks in [`files`], [`rules`] and
//! [`pages`] only read files; those in [`runs`] build and run tests.

pub mod files;
pub mod pages;
pub mod rules;
pub mod runs;

use std::fmt;

use crate::manifest::{self, Manifest, Shipped};
use crate::workspace::Workspace;

/// One thing that is wrong, and how to put it right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

impl Problem {
    pub fn new(what: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem {
            what: what.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n  fix: {}", self.what, self.fix)
    }
}

/// Renders problems as a numbered list, for a failing test or a report.
pub fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let what = p.what.replace('\n', "\n   ");
            format!("{}. {what}\n   fix: {}", i + 1, p.fix)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A check that only reads files: the workspace, and the exercises crate
/// in the version being checked.
pub type FileCheck = fn(&Workspace, &Shipped) -> Vec<Problem>;

/// The checks that only read files, with the title a report gives each.
pub const FILE_CHECKS: [(&str, FileCheck); 7] = [
    (
        "exercises/info.toml, exercises/shipped.toml, the exercise and solution files and both lib.rs agree",
        files::exercise_files,
    ),
    (
        "each exercise and its solution have the same tests section",
        files::tests_sections,
    ),
    (
        "every exercise test runs under lab_kit::watchdog::within",
        rules::watchdog,
    ),
    (
        "every book section an exercise's \"Read first:\" names exists",
        rules::read_first,
    ),
    ("every include in the book resolves", pages::book_includes),
    (
        "every chapter has a book page, listed in SUMMARY.md",
        pages::book_pages,
    ),
    (
        "no snapshot is waiting for review",
        pages::pending_snapshots,
    ),
];

/// The exercises crate as shipped, from `exercises/shipped.toml`; a problem
/// if there is no manifest or it cannot be read.
pub fn shipped(ws: &Workspace) -> Result<Shipped, Problem> {
    match Manifest::load(ws) {
        Ok(Some(manifest)) => Ok(Shipped::from_manifest(ws, &manifest)),
        Ok(None) => Err(Problem::new(
            format!(
                "{} does not exist, so nothing says which exercises are shipped",
                manifest::PATH
            ),
            "run `cargo lab verify --bless`: it checks the exercises in the working tree and writes the manifest",
        )),
        Err(e) => Err(Problem::new(
            e.to_string(),
            format!(
                "run `cargo lab verify --bless` to write {} anew",
                manifest::PATH
            ),
        )),
    }
}

/// What could not be checked, said out loud: the shipped files that could
/// not be read (outside a git checkout, for files the learner changed).
pub fn notes(shipped: &Shipped) -> Vec<String> {
    shipped
        .unavailable()
        .into_iter()
        .map(|(path, why)| {
            format!("exercises/{path}: its shipped version cannot be read ({why}); the checks skipped it")
        })
        .collect()
}

/// Whether `CI` says this is a CI run (`CI=true`, as .ci/run sets it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The fix for a problem found in an exercise whose working copy differs
/// from the shipped version: the maintainer may have forgotten to bless.
pub(crate) fn bless_note(shipped: &Shipped, path: &str) -> String {
    let changed = shipped
        .files
        .get(path)
        .is_some_and(|f| !f.same_as_working && !shipped.candidate);
    if changed {
        format!(
            " (this is the shipped version; exercises/{path} in your working tree differs: if you changed the exercise, run `cargo lab verify --bless`)"
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn a_healthy_workspace_has_no_problems() {
        let s = healthy();
        let problems = all_file_checks(&s);
        assert!(problems.is_empty(), "{}", render(&problems));
        assert!(notes(&s.shipped()).is_empty());
    }

    #[test]
    fn no_exercises_is_fine() {
        let s = healthy();
        s.write("exercises/info.toml", "# none yet\n")
            .write("exercises/src/lib.rs", "//! none\n")
            .write("solutions/src/lib.rs", "//! none\n")
            .remove("exercises/src/ch99_fake.rs")
            .remove("solutions/src/ch99_fake.rs")
            .remove("exercises/src/ch99_pair.rs")
            .remove("solutions/src/ch99_pair.rs")
            .bless();
        let problems = all_file_checks(&s);
        assert!(problems.is_empty(), "{}", render(&problems));
    }

    #[test]
    fn a_missing_manifest_is_a_problem_that_says_how_to_make_one() {
        let s = healthy();
        s.remove("exercises/shipped.toml");
        let problem = shipped(&s.ws()).unwrap_err();
        assert!(
            problem
                .what
                .contains("exercises/shipped.toml does not exist")
        );
        assert!(problem.fix.contains("cargo lab verify --bless"));
    }

    #[test]
    fn in_git_the_shipped_version_is_read_from_git() {
        let s = healthy();
        s.git_commit();
        s.write(
            "exercises/src/ch99_fake.rs",
            "pub fn answer() -> u32 { 42 }\n// no tests, no doc\n",
        );
        let shipped = s.shipped();
        assert_eq!(shipped.exercise("ch99_fake"), Some(stub()));
        assert_eq!(shipped.changed_in_working_tree(), ["src/ch99_fake.rs"]);
        let problems = all_file_checks(&s);
        assert!(problems.is_empty(), "{}", render(&problems));
        assert!(notes(&shipped).is_empty());
    }

    #[test]
    fn outside_git_a_changed_file_is_skipped_with_a_note() {
        let s = healthy();
        // A learner solved the exercise and rewrote its tests and doc: the
        // file checks still see the shipped stub and find nothing wrong.
        s.write(
            "exercises/src/ch99_fake.rs",
            "pub fn answer() -> u32 { 42 }\n// no tests, no doc\n",
        );
        let problems = all_file_checks(&s);
        assert!(problems.is_empty(), "{}", render(&problems));
        // Outside a git checkout the shipped version of a changed file cannot
        // be read: said in a note, not silently.
        let notes = notes(&s.shipped());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("exercises/src/ch99_fake.rs"), "{notes:?}");
        assert!(notes[0].contains("not a git checkout"), "{notes:?}");
    }
}
