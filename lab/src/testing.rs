//! For the unit tests: a small, healthy workspace in a temporary directory
//! (one fake chapter, two exercises with their solutions, a book page),
//! which a test breaks in one place, expecting exactly that place reported.
//! It builds without dependencies (its tests bring their own `within`), so
//! the checks that build and run tests can run on it too, in a second or
//! two.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::contract::{FILE_CHECKS, Problem, render};
use crate::manifest::{Manifest, Shipped};
use crate::workspace::Workspace;

/// A temporary directory, removed when dropped.
pub struct Scratch {
    pub root: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "lab-unit-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        Scratch { root }
    }

    pub fn write(&self, path: &str, text: &str) -> &Scratch {
        let path = self.root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        self
    }

    pub fn remove(&self, path: &str) -> &Scratch {
        fs::remove_file(self.root.join(path)).unwrap();
        self
    }

    pub fn ws(&self) -> Workspace {
        Workspace::at(&self.root)
    }

    /// The exercises as shipped: what the manifest names.
    pub fn shipped(&self) -> Shipped {
        let ws = self.ws();
        let manifest = Manifest::load(&ws).unwrap().unwrap();
        Shipped::from_manifest(&ws, &manifest)
    }

    /// Records the exercise files as they are now as the shipped ones.
    pub fn bless(&self) -> &Scratch {
        let ws = self.ws();
        let exercises = ws.exercises().unwrap();
        Manifest::of_working_tree(&ws, &exercises)
            .unwrap()
            .save(&ws)
            .unwrap();
        self
    }

    /// Makes the directory a git repository with everything committed.
    pub fn git_commit(&self) -> &Scratch {
        let git = |args: &[&str]| {
            let status = Command::new("git")
                .args(["-c", "user.name=lab", "-c", "user.email=lab@localhost"])
                .args(args)
                .current_dir(&self.root)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "git {args:?}");
        };
        git(&["init", "--quiet"]);
        git(&["add", "-A"]);
        git(&["commit", "--quiet", "-m", "shipped"]);
        self
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

pub const INFO: &str = r#"
[[exercise]]
name = "ch99_fake"
chapter = "ch99"
hints = ["a nudge", "man 2 read", "almost the answer"]

[[exercise]]
name = "ch99_pair"
chapter = "ch99"
hints = ["a nudge", "man 2 write", "almost the pair"]
"#;

/// The tests of `ch99_fake`, with a `within` of their own (the contract
/// only looks for the call; the fake crate has no lab-kit).
pub const TESTS: &str = "// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    fn within<T>(_limit: u64, _expected: &str, f: impl FnOnce() -> T) -> T {
        f()
    }

    #[test]
    fn answers() {
        within(5, \"an answer\", || assert_eq!(super::answer(), 42, \"the answer is 42\"));
    }
}
";

const PAIR_TESTS: &str = "// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    fn within<T>(_limit: u64, _expected: &str, f: impl FnOnce() -> T) -> T {
        f()
    }

    #[test]
    fn first_is_one() {
        within(5, \"1\", || assert_eq!(super::first(), 1, \"first is 1\"));
    }

    #[test]
    fn second_is_two() {
        within(5, \"2\", || assert_eq!(super::second(), 2, \"second is 2\"));
    }
}
";

pub const DOC: &str = "//! Fake.\n//!\n//! Read first: the book's chapter 99 (\"The answer\").\n";

pub const SNAP: &str = "---\nsource: chapters/99-fake/tests/transcripts.rs\nexpression: transcript\n---\n$ cargo run -p ch99-fake -- demo\nread(a, 4) -> 0 (end of file)\n";

/// `ch99_fake` as shipped.
pub fn stub() -> String {
    format!("{DOC}pub fn answer() -> u32 {{\n    todo!(\"ch99\")\n}}\n\n{TESTS}")
}

/// `ch99_fake` solved.
pub fn solved() -> String {
    format!("{DOC}pub fn answer() -> u32 {{\n    42\n}}\n\n{TESTS}")
}

/// `ch99_pair` with its two functions as given.
pub fn pair(first: &str, second: &str) -> String {
    format!(
        "{DOC}pub fn first() -> u32 {{\n    {first}\n}}\n\npub fn second() -> u32 {{\n    {second}\n}}\n\n{PAIR_TESTS}"
    )
}

pub fn healthy() -> Scratch {
    let s = Scratch::new();
    let package = |name: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition.workspace = true\n")
    };
    let libs = "pub mod ch99_fake;\npub mod ch99_pair;\n";
    s.write(
        "Cargo.toml",
        "[workspace]\nresolver = \"3\"\nmembers = [\"exercises\", \"solutions\"]\n\n[workspace.package]\nedition = \"2024\"\n",
    )
    .write("exercises/info.toml", INFO)
    .write("exercises/Cargo.toml", &package("exercises"))
    .write("solutions/Cargo.toml", &package("solutions"))
    .write("exercises/src/lib.rs", &format!("//! Exercises.\n{libs}"))
    .write("solutions/src/lib.rs", &format!("//! Solutions.\n{libs}"))
    .write("exercises/src/ch99_fake.rs", &stub())
    .write("solutions/src/ch99_fake.rs", &solved())
    .write(
        "exercises/src/ch99_pair.rs",
        &pair("todo!(\"ch99: first\")", "todo!(\"ch99: second\")"),
    )
    .write("solutions/src/ch99_pair.rs", &pair("1", "2"))
    .write("chapters/kit/src/lib.rs", "//! kit\n")
    .write(
        "chapters/99-fake/src/lib.rs",
        "//! fake\n// ANCHOR: answer\npub fn answer() {}\n// ANCHOR_END: answer\n",
    )
    .write("chapters/99-fake/tests/snapshots/transcripts__demo.snap", SNAP)
    .write(
        "book/src/SUMMARY.md",
        "# Summary\n\n[Introduction](introduction.md)\n\n- [99. Fake](ch99-fake.md)\n",
    )
    .write("book/src/introduction.md", "# Introduction\n")
    .write(
        "book/src/ch99-fake.md",
        "# Fake\n\n## The answer\n\n```rust\n{{#include ../../chapters/99-fake/src/lib.rs:answer}}\n```\n\n```text\n{{#include ../../chapters/99-fake/tests/snapshots/transcripts__demo.snap:5:}}\n```\n",
    );
    s.bless();
    s
}

/// Every file check on `s`, as shipped.
pub fn all_file_checks(s: &Scratch) -> Vec<Problem> {
    let shipped = s.shipped();
    FILE_CHECKS
        .iter()
        .flat_map(|(_, check)| check(&s.ws(), &shipped))
        .collect()
}

/// The one problem found, whose text must contain every one of `words`.
pub fn the_problem(problems: Vec<Problem>, words: &[&str]) -> Problem {
    assert_eq!(
        problems.len(),
        1,
        "expected one problem, got:\n{}",
        render(&problems)
    );
    let problem = problems.into_iter().next().unwrap();
    for word in words {
        assert!(
            problem.to_string().contains(word),
            "{word:?} missing from:\n{problem}"
        );
    }
    problem
}
