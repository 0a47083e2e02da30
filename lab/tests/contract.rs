//! The maintainer's contract, run by `cargo test` on this workspace (the
//! same checks as `cargo lab verify`).
//!
//! The file checks are one test each. The exercises' own tests run once, in
//! one nested `cargo test -p exercises` (target dir `target/contract`), to
//! prove that every exercise as shipped fails. The solutions passing is
//! already proved by `cargo test` running the `solutions` package itself.
//! That the checks do catch what they look for is tested in the lab library
//! on small broken workspaces (`cargo test -p lab --lib`).

use lab::Workspace;
use lab::contract::{self, Problem};

fn assert_none(title: &str, problems: Vec<Problem>) {
    assert!(
        problems.is_empty(),
        "The contract does not hold: {title}.\n\n{}\n",
        contract::render(&problems)
    );
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
    let (title, check) = contract::FILE_CHECKS[0];
    assert_none(title, check(&Workspace::locate()));
}

#[test]
fn tests_sections_are_identical() {
    let (title, check) = contract::FILE_CHECKS[1];
    assert_none(title, check(&Workspace::locate()));
}

#[test]
fn book_includes_resolve() {
    let (title, check) = contract::FILE_CHECKS[2];
    assert_none(title, check(&Workspace::locate()));
}

#[test]
fn every_chapter_has_a_book_page() {
    let (title, check) = contract::FILE_CHECKS[3];
    assert_none(title, check(&Workspace::locate()));
}

#[test]
fn no_snapshot_is_pending() {
    let (title, check) = contract::FILE_CHECKS[4];
    assert_none(title, check(&Workspace::locate()));
}

/// The one nested `cargo test` of the contract.
#[test]
fn every_exercise_as_shipped_fails_its_tests() {
    let ws = Workspace::locate();
    let exercises = ws
        .exercises()
        .unwrap_or_else(|e| panic!("exercises/info.toml: {e}"));
    if exercises.is_empty() {
        // Nothing to run yet; `exercise_files` still checks that no
        // exercise file exists without an entry.
        return;
    }
    let run = contract::run_shipped(&ws, &["exercises"]).unwrap_or_else(|e| panic!("{e}"));
    assert_none(
        "every exercise as shipped fails its tests",
        contract::shipped_exercises_fail(&exercises, &run),
    );
}
