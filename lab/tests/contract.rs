//! The maintainer's contract, run by `cargo test` on this workspace (the
//! same checks as `cargo lab verify`).
//!
//! The exercises are checked as shipped (the versions
//! `exercises/shipped.toml` names), never the learner's working copy, so
//! these tests stay green whatever state `exercises/` is in. Only with
//! `CI=true` must the working tree be the shipped version. The solutions
//! passing is proved by `cargo test` running the `solutions` package
//! itself. That each check does catch what it looks for is tested in the
//! lab library on small broken workspaces (`cargo test -p lab --lib`).

use std::io::Write;

use lab::Workspace;
use lab::contract::{self, FILE_CHECKS, Problem, runs};
use lab::manifest::Shipped;

fn assert_none(title: &str, problems: Vec<Problem>) {
    assert!(
        problems.is_empty(),
        "The contract does not hold: {title}.\n\n{}\n",
        contract::render(&problems)
    );
}

/// The exercises as shipped. What could not be read is said on stderr
/// directly, so that it shows even when the test passes.
fn shipped(ws: &Workspace) -> Shipped {
    let shipped = contract::shipped(ws).unwrap_or_else(|problem| panic!("{problem}"));
    for note in contract::notes(&shipped) {
        let _ = writeln!(std::io::stderr(), "note (lab contract): {note}");
    }
    shipped
}

/// The file check with this title.
fn file_check(title_starts: &str) {
    let ws = Workspace::locate();
    let shipped = shipped(&ws);
    let (title, check) = FILE_CHECKS
        .iter()
        .find(|(title, _)| title.starts_with(title_starts))
        .unwrap_or_else(|| panic!("no check titled {title_starts:?}"));
    assert_none(title, check(&ws, &shipped));
}

/// The workspace is found, and it is this one: a wrong root would make
/// every check pass on nothing.
#[test]
fn the_workspace_is_found() {
    let ws = Workspace::locate();
    assert!(
        ws.root().join("lab/tests/contract.rs").is_file(),
        "the lab crate did not find its workspace at {}",
        ws.root().display()
    );
    assert!(ws.info_toml().is_file(), "exercises/info.toml is missing");
    assert!(
        ws.book_src().join("SUMMARY.md").is_file(),
        "book/src/SUMMARY.md is missing"
    );
    let chapters = ws.chapters().expect("the chapters/ directory is readable");
    assert!(
        chapters.iter().any(|c| c.id == "ch01"),
        "no chapters/01-* crate found"
    );
}

#[test]
fn exercise_files_agree() {
    file_check("exercises/info.toml, exercises/shipped.toml");
}

#[test]
fn tests_sections_are_identical() {
    file_check("each exercise and its solution");
}

#[test]
fn every_exercise_test_runs_under_the_watchdog() {
    file_check("every exercise test runs under");
}

#[test]
fn every_read_first_section_exists() {
    file_check("every book section an exercise's");
}

#[test]
fn book_includes_resolve() {
    file_check("every include in the book");
}

#[test]
fn every_chapter_has_a_book_page() {
    file_check("every chapter has a book page");
}

#[test]
fn no_snapshot_is_pending() {
    file_check("no snapshot is waiting");
}

/// In CI the working tree is the shipped version: a maintainer who changed
/// an exercise without recording it is told to run `cargo lab verify
/// --bless`. Outside CI a changed exercise is the learner's business.
#[test]
fn in_ci_the_working_tree_is_the_shipped_version() {
    if !contract::in_ci() {
        return;
    }
    let ws = Workspace::locate();
    assert_none(
        "the working tree's exercises are the shipped ones (CI)",
        runs::tree_is_shipped(&shipped(&ws)),
    );
}

/// The one check that builds: every exercise as shipped fails its tests.
#[test]
fn every_exercise_as_shipped_fails_its_tests() {
    let ws = Workspace::locate();
    let shipped = shipped(&ws);
    let problems =
        runs::shipped_exercises_fail(&ws, &shipped, &|_| {}).unwrap_or_else(|e| panic!("{e}"));
    assert_none("every exercise as shipped fails its tests", problems);
}
