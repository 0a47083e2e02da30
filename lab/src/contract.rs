//! The maintainer's contract: what must hold between the exercises, the
//! solutions, `info.toml`, the chapters and the book.
//!
//! Each check returns the problems it found, each saying what is wrong and
//! how to fix it. `cargo lab verify` prints them; `lab/tests/contract.rs`
//! fails `cargo test` on them. Only [`shipped_exercises_fail`] and
//! [`solutions_pass`] need a `cargo test` run ([`crate::testrun`]); every
//! other check only reads files.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::book::{self, Range};
use crate::testrun::{Outcome, TestRun};
use crate::workspace::{Exercise, TESTS_MARKER, Workspace, list_dir};

/// One thing that is wrong, and how to put it right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

impl Problem {
    fn new(what: impl Into<String>, fix: impl Into<String>) -> Problem {
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

/// A check that only reads files.
pub type FileCheck = fn(&Workspace) -> Vec<Problem>;

/// The checks that only read files, with the title a report gives each.
pub const FILE_CHECKS: [(&str, FileCheck); 5] = [
    (
        "exercises/info.toml, the exercise and solution files and both lib.rs agree",
        exercise_files,
    ),
    (
        "each exercise and its solution have the same tests section",
        tests_sections,
    ),
    ("every include in the book resolves", book_includes),
    (
        "every chapter has a book page, listed in SUMMARY.md",
        book_pages,
    ),
    ("no snapshot is waiting for review", pending_snapshots),
];

/// The target directory (under `target/`) of the contract's own
/// `cargo test` run, apart from the learner's and the outer cargo's.
pub const TARGET_SUBDIR: &str = "contract";

/// Runs the tests of `packages` (`exercises`, and `solutions` for
/// `cargo lab verify`) once, as shipped, for [`shipped_exercises_fail`] and
/// [`solutions_pass`].
pub fn run_shipped(ws: &Workspace, packages: &[&str]) -> Result<TestRun, crate::LabError> {
    crate::testrun::cargo_test(
        ws.root(),
        TARGET_SUBDIR,
        packages,
        &[],
        crate::testrun::time_limit(),
    )
}

/// `info.toml`, the exercise and solution files, and the two `lib.rs` agree:
/// every listed exercise has both files, declared `pub mod` in both crates,
/// with exactly three hints; every exercise file is listed.
pub fn exercise_files(ws: &Workspace) -> Vec<Problem> {
    let mut problems = Vec::new();
    let exercises = match ws.exercises() {
        Ok(exercises) => exercises,
        Err(e) => {
            return vec![Problem::new(
                e.to_string(),
                "correct exercises/info.toml (see CONTRIBUTING.md, \"Adding an exercise\")",
            )];
        }
    };
    let chapters: Vec<String> = match ws.chapters() {
        Ok(chapters) => chapters.into_iter().map(|c| c.id).collect(),
        Err(e) => return vec![Problem::new(e.to_string(), "check the chapters/ directory")],
    };
    let libs = ["exercises", "solutions"].map(|krate| {
        let path = ws.root().join(krate).join("src/lib.rs");
        let text = fs::read_to_string(&path).unwrap_or_default();
        (krate, path, text)
    });

    let mut seen = BTreeSet::new();
    for exercise in &exercises {
        let name = &exercise.name;
        if !seen.insert(name.clone()) {
            problems.push(Problem::new(
                format!("exercises/info.toml lists `{name}` twice"),
                "remove one of the two [[exercise]] entries",
            ));
            continue;
        }
        if !is_exercise_name(name) || !name.starts_with(&format!("{}_", exercise.chapter)) {
            problems.push(Problem::new(
                format!(
                    "exercise `{name}` (chapter = \"{}\"): a name is `chNN_topic` in snake case and starts with its chapter",
                    exercise.chapter
                ),
                format!(
                    "rename it, e.g. `{}_topic`, in info.toml and both files",
                    exercise.chapter
                ),
            ));
        }
        if !chapters.contains(&exercise.chapter) {
            problems.push(Problem::new(
                format!(
                    "exercise `{name}` belongs to chapter `{}`, which has no crate chapters/{}-*",
                    exercise.chapter,
                    exercise.chapter.trim_start_matches("ch")
                ),
                format!(
                    "set `chapter` to one of: {} (or add the chapter crate first)",
                    chapters.join(", ")
                ),
            ));
        }
        if exercise.hints.len() != 3 {
            problems.push(Problem::new(
                format!(
                    "exercise `{name}` has {} hints in exercises/info.toml",
                    exercise.hints.len()
                ),
                "give it exactly three: a nudge, the man page section, a near-solution",
            ));
        }
        if let Some(level) = exercise.hints.iter().position(|h| h.trim().is_empty()) {
            problems.push(Problem::new(
                format!("hint {} of `{name}` is empty", level + 1),
                "write it, or the learner asking for it gets nothing",
            ));
        }
        for (krate, lib_path, lib_text) in &libs {
            let file = ws.root().join(krate).join("src").join(format!("{name}.rs"));
            if !file.is_file() {
                problems.push(Problem::new(
                    format!("{} does not exist", ws.show(&file)),
                    format!(
                        "create it (an exercise and its solution have the same path), or remove `{name}` from exercises/info.toml"
                    ),
                ));
            }
            if !declares_module(lib_text, name) {
                problems.push(Problem::new(
                    format!("{} does not declare `pub mod {name};`", ws.show(lib_path)),
                    format!("add the line `pub mod {name};` to {}", ws.show(lib_path)),
                ));
            }
        }
    }

    for krate in ["exercises", "solutions"] {
        let dir = ws.root().join(krate).join("src");
        for module in rust_modules(&dir) {
            if !seen.contains(&module) {
                problems.push(Problem::new(
                    format!("{krate}/src/{module}.rs is not listed in exercises/info.toml"),
                    format!(
                        "add an [[exercise]] with name = \"{module}\", its chapter and three hints (or delete the file)"
                    ),
                ));
            }
        }
    }
    problems
}

/// From the tests marker to the end, each exercise and its solution are
/// byte-identical, and both have the marker.
pub fn tests_sections(ws: &Workspace) -> Vec<Problem> {
    let Ok(exercises) = ws.exercises() else {
        return Vec::new(); // reported by `exercise_files`
    };
    let mut problems = Vec::new();
    for exercise in &exercises {
        let name = &exercise.name;
        let files = [ws.exercise_file(name), ws.solution_file(name)];
        let (Ok(stub), Ok(solved)) = (fs::read_to_string(&files[0]), fs::read_to_string(&files[1]))
        else {
            continue; // a missing file is reported by `exercise_files`
        };
        let mut sections = Vec::new();
        for (path, text) in files.iter().zip([&stub, &solved]) {
            match tests_section(text) {
                Some(section) => sections.push((path, text, section)),
                None => problems.push(Problem::new(
                    format!("{} has no line `{TESTS_MARKER}`", ws.show(path)),
                    "put that line, alone, right above `#[cfg(test)] mod tests` in the exercise and in its solution",
                )),
            }
        }
        if let [(stub_path, stub_text, a), (solved_path, solved_text, b)] = sections[..]
            && a != b
        {
            let (line_a, line_b) = first_difference(stub_text, a, solved_text, b);
            problems.push(Problem::new(
                format!(
                    "the tests of {} and {} differ: first at line {line_a} of the exercise, line {line_b} of the solution",
                    ws.show(stub_path),
                    ws.show(solved_path)
                ),
                "make everything below the tests marker the same in both files (copy the section of the one you meant to keep)",
            ));
        }
    }
    problems
}

/// Every include of every book page resolves: the file exists, the anchor
/// is marked in it, the lines exist; a snapshot is included from line 5
/// (after insta's 4-line header) to the end.
pub fn book_includes(ws: &Workspace) -> Vec<Problem> {
    let mut problems = Vec::new();
    for page in markdown_files(&ws.book_src()) {
        let Ok(text) = fs::read_to_string(&page) else {
            problems.push(Problem::new(
                format!("cannot read {}", ws.show(&page)),
                "check its permissions and encoding (UTF-8)",
            ));
            continue;
        };
        let dir = page.parent().unwrap_or(Path::new("."));
        for include in book::includes(&text) {
            let at = format!("{}:{}: {}", ws.show(&page), include.line, include.text);
            let target = dir.join(&include.path);
            let Ok(content) = fs::read_to_string(&target) else {
                problems.push(Problem::new(
                    format!(
                        "{at}: the file {} does not exist",
                        ws.show(&normalize(&target))
                    ),
                    "correct the path: it is relative to the page's own directory",
                ));
                continue;
            };
            let lines = content.lines().count();
            if include.path.ends_with(".snap") {
                if include.range != Range::Lines(Some(5), None) {
                    problems.push(Problem::new(
                        format!("{at}: a snapshot must be included from line 5 to the end, or the book shows insta's header or drops transcript lines"),
                        format!("write {{{{#include {}:5:}}}}", include.path),
                    ));
                }
                if !has_insta_header(&content) || lines < 5 {
                    problems.push(Problem::new(
                        format!("{at}: the first four lines of {} are not insta's header (`---`, `source: ...`, `expression: ...`, `---`) followed by the transcript", ws.show(&normalize(&target))),
                        "re-create the snapshot with the chapter's tests (no `description`, `info` or other metadata) and accept it with `cargo insta review`",
                    ));
                }
                continue;
            }
            match &include.range {
                Range::All => {}
                Range::Anchor(anchor) => {
                    let (start, end) = book::has_anchor(&content, anchor);
                    if !start || !end {
                        let missing = match (start, end) {
                            (false, false) => {
                                format!("`ANCHOR: {anchor}` and `ANCHOR_END: {anchor}`")
                            }
                            (false, true) => format!("`ANCHOR: {anchor}`"),
                            _ => format!("`ANCHOR_END: {anchor}`"),
                        };
                        problems.push(Problem::new(
                            format!("{at}: {} has no {missing}", ws.show(&normalize(&target))),
                            format!("mark the region with `// ANCHOR: {anchor}` and `// ANCHOR_END: {anchor}`, or correct the anchor name"),
                        ));
                    }
                }
                Range::Lines(start, end) => {
                    let first = start.unwrap_or(1);
                    if first == 0 || first > lines || end.is_some_and(|e| e < first || e > lines) {
                        problems.push(Problem::new(
                            format!("{at}: {} has {lines} lines, so that range shows nothing or not what it names", ws.show(&normalize(&target))),
                            "include by anchor (`FILE:name`) instead of line numbers, which go stale when the file changes",
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// Every chapter crate has a book page listed in `SUMMARY.md`, and every
/// link of `SUMMARY.md` points to an existing page.
pub fn book_pages(ws: &Workspace) -> Vec<Problem> {
    let summary_path = ws.book_src().join("SUMMARY.md");
    let Ok(summary) = fs::read_to_string(&summary_path) else {
        return vec![Problem::new(
            "book/src/SUMMARY.md does not exist",
            "create it: it is the book's table of contents",
        )];
    };
    let links = book::summary_links(&summary);
    let mut problems = Vec::new();
    for (line, title, target) in &links {
        let file = target.split('#').next().unwrap_or(target);
        if !ws.book_src().join(file).is_file() {
            problems.push(Problem::new(
                format!("book/src/SUMMARY.md:{line}: [{title}]({target}) points to a page that does not exist"),
                format!("create book/src/{file}, or correct the link"),
            ));
        }
    }
    let chapters = match ws.chapters() {
        Ok(chapters) => chapters,
        Err(e) => return vec![Problem::new(e.to_string(), "check the chapters/ directory")],
    };
    for chapter in chapters {
        let wanted = format!("{}.md", chapter.package());
        match ws.book_page(&chapter.id) {
            Ok(Some(page)) => {
                let name = page
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !links
                    .iter()
                    .any(|(_, _, target)| target.split('#').next() == Some(&name))
                {
                    problems.push(Problem::new(
                        format!(
                            "book/src/{name} (chapter {}) is not listed in book/src/SUMMARY.md",
                            chapter.id
                        ),
                        format!(
                            "add `- [{}. TITLE]({name})` in chapter order",
                            &chapter.id[2..]
                        ),
                    ));
                }
            }
            Ok(None) => problems.push(Problem::new(
                format!(
                    "chapters/{} has no book page book/src/{}-*.md",
                    chapter.dir_name, chapter.id
                ),
                format!("create book/src/{wanted} and list it in book/src/SUMMARY.md"),
            )),
            Err(e) => problems.push(Problem::new(e.to_string(), "check book/src")),
        }
    }
    problems
}

/// No snapshot waits for review: no `.snap.new` or `.pending-snap` file
/// anywhere (outside `target/` and `.git/`).
pub fn pending_snapshots(ws: &Workspace) -> Vec<Problem> {
    let mut found = Vec::new();
    walk(ws.root(), &mut |path| {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if name.ends_with(".snap.new") || name.ends_with(".pending-snap") {
            found.push(path.to_path_buf());
        }
    });
    found
        .into_iter()
        .map(|path| {
            Problem::new(
                format!("{} is a snapshot waiting for review", ws.show(&path)),
                "read it; accept or reject it with `cargo insta review` (or delete it if it is stale)",
            )
        })
        .collect()
}

/// Every exercise as shipped has at least one test and fails at least one,
/// judged from one `cargo test -p exercises` run.
pub fn shipped_exercises_fail(exercises: &[Exercise], run: &TestRun) -> Vec<Problem> {
    if exercises.is_empty() {
        return Vec::new();
    }
    if run.build_failed() {
        return vec![build_problem(run, "exercises")];
    }
    let mut problems = Vec::new();
    for exercise in exercises {
        let name = &exercise.name;
        let results: Vec<_> = run.of("exercises", name).collect();
        let failed = results
            .iter()
            .filter(|r| r.outcome == Outcome::Failed)
            .count();
        if results.is_empty() {
            problems.push(Problem::new(
                format!("exercises/src/{name}.rs has no test (no `{name}::...` test ran in `{}`)", run.command),
                "add `#[cfg(test)] mod tests` with at least one #[test] below the tests marker, in the exercise and its solution",
            ));
        } else if failed == 0 {
            problems.push(Problem::new(
                format!(
                    "exercises/src/{name}.rs as shipped passes all its {} tests, so it is solved by doing nothing",
                    results.len()
                ),
                "leave the stub's bodies as `todo!(\"...\")`, or add a test that the stub as written fails",
            ));
        }
    }
    problems
}

/// Every solution passes all its tests (and has some), judged from a run
/// that included `-p solutions`.
pub fn solutions_pass(exercises: &[Exercise], run: &TestRun) -> Vec<Problem> {
    if exercises.is_empty() {
        return Vec::new();
    }
    if run.build_failed() {
        return vec![build_problem(run, "solutions")];
    }
    let mut problems = Vec::new();
    for exercise in exercises {
        let name = &exercise.name;
        let results: Vec<_> = run.of("solutions", name).collect();
        if results.is_empty() {
            problems.push(Problem::new(
                format!("solutions/src/{name}.rs: no test ran"),
                "copy the tests section of the exercise into the solution",
            ));
        }
        for result in results.iter().filter(|r| r.outcome == Outcome::Failed) {
            let message = result.message.as_deref().unwrap_or("(no message)");
            problems.push(Problem::new(
                format!(
                    "solutions/src/{name}.rs fails {}:\n{}",
                    result.name,
                    indent(message, "    ")
                ),
                "fix the solution (or the test): every solution passes its tests",
            ));
        }
    }
    problems
}

fn build_problem(run: &TestRun, krate: &str) -> Problem {
    let messages = run.compiler_messages();
    let shown: Vec<&str> = messages.lines().take(30).collect();
    Problem::new(
        format!(
            "`{}` did not run any test (the build failed?):\n{}",
            run.command,
            indent(&shown.join("\n"), "    ")
        ),
        format!(
            "make the {krate} crate compile: a stub keeps its signatures and has `todo!()` bodies"
        ),
    )
}

/// The text from the tests marker (at the start of a line) to the end.
pub fn tests_section(text: &str) -> Option<&str> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == TESTS_MARKER {
            return Some(&text[offset..]);
        }
        offset += line.len();
    }
    None
}

/// The 1-based lines, in each whole file, where two sections first differ.
fn first_difference(text_a: &str, a: &str, text_b: &str, b: &str) -> (usize, usize) {
    let before = |text: &str, section: &str| text[..text.len() - section.len()].lines().count();
    let same = a
        .split_inclusive('\n')
        .zip(b.split_inclusive('\n'))
        .take_while(|(x, y)| x == y)
        .count();
    (before(text_a, a) + same + 1, before(text_b, b) + same + 1)
}

fn has_insta_header(content: &str) -> bool {
    let lines: Vec<&str> = content.lines().take(4).collect();
    matches!(
        lines[..],
        [first, source, expression, last]
            if first == "---"
                && source.starts_with("source: ")
                && expression.starts_with("expression: ")
                && last == "---"
    )
}

fn is_exercise_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 5
        && name.starts_with("ch")
        && bytes[2].is_ascii_digit()
        && bytes[3].is_ascii_digit()
        && bytes[4] == b'_'
        && bytes[5..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

fn declares_module(lib: &str, name: &str) -> bool {
    let wanted = format!("pub mod {name};");
    lib.lines().any(|line| line.trim() == wanted)
}

/// The `NAME` of every `NAME.rs` in `dir` but `lib.rs`.
fn rust_modules(dir: &Path) -> Vec<String> {
    list_dir(dir)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_string))
        .filter(|stem| stem != "lib")
        .collect()
}

fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut pages = Vec::new();
    walk(dir, &mut |path| {
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path.to_path_buf());
        }
    });
    pages.sort();
    pages
}

/// Calls `visit` on every file under `dir`, skipping `target`, `.git` and
/// the built book (`book/book`).
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    for path in list_dir(dir).unwrap_or_default() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if path.is_dir() {
            let built_book = name == "book" && dir.file_name().is_some_and(|d| d == "book");
            if name != "target" && name != ".git" && !built_book {
                walk(&path, visit);
            }
        } else {
            visit(&path);
        }
    }
}

/// `a/b/../c` as `a/c`, for messages.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|line| format!("{prefix}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    //! Each check run on a small, healthy workspace in a temporary directory,
    //! then on the same workspace with one thing broken: the check must name
    //! exactly that thing.

    use super::*;
    use crate::testrun::parse_results;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A temporary directory, removed when dropped.
    struct Scratch {
        root: PathBuf,
    }

    impl Scratch {
        fn new() -> Scratch {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let root = std::env::temp_dir().join(format!(
                "lab-contract-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(&root).unwrap();
            Scratch { root }
        }

        fn write(&self, path: &str, text: &str) -> &Scratch {
            let path = self.root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
            self
        }

        fn remove(&self, path: &str) -> &Scratch {
            fs::remove_file(self.root.join(path)).unwrap();
            self
        }

        fn ws(&self) -> Workspace {
            Workspace::at(&self.root)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    const INFO: &str = r#"
[[exercise]]
name = "ch99_fake"
chapter = "ch99"
hints = ["a nudge", "man 2 read", "almost the answer"]
"#;

    const TESTS: &str = "// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    #[test]
    fn answers() {
        assert_eq!(super::answer(), 42, \"the answer is 42\");
    }
}
";

    const SNAP: &str = "---\nsource: chapters/99-fake/tests/transcripts.rs\nexpression: transcript\n---\n$ cargo run -p ch99-fake -- demo\nread(a, 4) -> 0 (end of file)\n";

    fn healthy() -> Scratch {
        let s = Scratch::new();
        s.write("exercises/info.toml", INFO)
            .write("exercises/src/lib.rs", "//! Exercises.\npub mod ch99_fake;\n")
            .write("solutions/src/lib.rs", "//! Solutions.\npub mod ch99_fake;\n")
            .write(
                "exercises/src/ch99_fake.rs",
                &format!("//! Fake.\npub fn answer() -> u32 {{\n    todo!(\"ch99\")\n}}\n\n{TESTS}"),
            )
            .write(
                "solutions/src/ch99_fake.rs",
                &format!("//! Fake.\npub fn answer() -> u32 {{\n    42\n}}\n\n{TESTS}"),
            )
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
                "# Fake\n\n```rust\n{{#include ../../chapters/99-fake/src/lib.rs:answer}}\n```\n\n```text\n{{#include ../../chapters/99-fake/tests/snapshots/transcripts__demo.snap:5:}}\n```\n",
            );
        s
    }

    fn all_static(ws: &Workspace) -> Vec<Problem> {
        [
            exercise_files(ws),
            tests_sections(ws),
            book_includes(ws),
            book_pages(ws),
            pending_snapshots(ws),
        ]
        .concat()
    }

    /// The one problem found, whose text must contain every one of `words`.
    fn the_problem(problems: Vec<Problem>, words: &[&str]) -> Problem {
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

    #[test]
    fn a_healthy_workspace_has_no_problems() {
        let s = healthy();
        let problems = all_static(&s.ws());
        assert!(problems.is_empty(), "{}", render(&problems));
    }

    #[test]
    fn no_exercises_is_fine() {
        let s = healthy();
        s.write("exercises/info.toml", "# none yet\n")
            .write("exercises/src/lib.rs", "//! none\n")
            .write("solutions/src/lib.rs", "//! none\n")
            .remove("exercises/src/ch99_fake.rs")
            .remove("solutions/src/ch99_fake.rs");
        let problems = all_static(&s.ws());
        assert!(problems.is_empty(), "{}", render(&problems));
    }

    #[test]
    fn mismatched_tests_are_reported_with_the_line() {
        let s = healthy();
        let changed = TESTS.replace("42, ", "41, ");
        s.write(
            "solutions/src/ch99_fake.rs",
            &format!("//! Fake.\npub fn answer() -> u32 {{\n    42\n}}\n\n{changed}"),
        );
        the_problem(
            tests_sections(&s.ws()),
            &[
                "exercises/src/ch99_fake.rs",
                "solutions/src/ch99_fake.rs",
                "line 12",
                "differ",
            ],
        );
    }

    #[test]
    fn a_missing_tests_marker_is_reported() {
        let s = healthy();
        s.write(
            "exercises/src/ch99_fake.rs",
            "pub fn answer() -> u32 { todo!() }\n#[cfg(test)]\nmod tests {}\n",
        );
        the_problem(
            tests_sections(&s.ws()),
            &["exercises/src/ch99_fake.rs", TESTS_MARKER],
        );
    }

    #[test]
    fn a_missing_solution_and_module_are_reported() {
        let s = healthy();
        s.remove("solutions/src/ch99_fake.rs")
            .write("solutions/src/lib.rs", "//! Solutions.\n");
        let problems = exercise_files(&s.ws());
        let text = render(&problems);
        assert_eq!(problems.len(), 2, "{text}");
        assert!(
            text.contains("solutions/src/ch99_fake.rs does not exist"),
            "{text}"
        );
        assert!(text.contains("`pub mod ch99_fake;`"), "{text}");
    }

    #[test]
    fn an_unlisted_exercise_and_wrong_hint_count_are_reported() {
        let s = healthy();
        s.write("exercises/src/ch99_other.rs", "//! new\n").write(
            "exercises/info.toml",
            &INFO.replace(", \"almost the answer\"", ""),
        );
        let problems = exercise_files(&s.ws());
        let text = render(&problems);
        assert_eq!(problems.len(), 2, "{text}");
        assert!(
            text.contains("exercises/src/ch99_other.rs is not listed"),
            "{text}"
        );
        assert!(text.contains("`ch99_fake` has 2 hints"), "{text}");
    }

    #[test]
    fn a_broken_info_toml_is_reported() {
        let s = healthy();
        s.write(
            "exercises/info.toml",
            "[[exercise]]\nname = \"ch99_fake\"\n",
        );
        the_problem(exercise_files(&s.ws()), &["exercises/info.toml", "chapter"]);
    }

    #[test]
    fn a_missing_anchor_is_reported() {
        let s = healthy();
        s.write(
            "chapters/99-fake/src/lib.rs",
            "//! fake\n// ANCHOR: answer\npub fn answer() {}\n",
        );
        the_problem(
            book_includes(&s.ws()),
            &[
                "book/src/ch99-fake.md:4",
                "chapters/99-fake/src/lib.rs",
                "`ANCHOR_END: answer`",
            ],
        );
    }

    #[test]
    fn a_missing_included_file_is_reported() {
        let s = healthy();
        s.remove("chapters/99-fake/src/lib.rs");
        the_problem(
            book_includes(&s.ws()),
            &["book/src/ch99-fake.md:4", "does not exist"],
        );
    }

    #[test]
    fn a_snapshot_included_with_its_header_is_reported() {
        let s = healthy();
        for wrong in ["", ":4:", ":5:9", ":6:"] {
            s.write(
                "book/src/ch99-fake.md",
                &format!("{{{{#include ../../chapters/99-fake/tests/snapshots/transcripts__demo.snap{wrong}}}}}\n"),
            );
            the_problem(
                book_includes(&s.ws()),
                &["line 5", "transcripts__demo.snap:5:}}"],
            );
        }
    }

    #[test]
    fn a_snapshot_with_extra_metadata_is_reported() {
        let s = healthy();
        s.write(
            "chapters/99-fake/tests/snapshots/transcripts__demo.snap",
            &SNAP.replace("---\n$", "description: extra\n---\n$"),
        );
        the_problem(book_includes(&s.ws()), &["insta's header"]);
    }

    #[test]
    fn a_chapter_without_a_page_and_a_dead_link_are_reported() {
        let s = healthy();
        s.write("chapters/98-other/src/lib.rs", "//! other\n").write(
            "book/src/SUMMARY.md",
            "# Summary\n\n[Introduction](introduction.md)\n\n- [99. Fake](ch99-fake.md)\n- [Gone](gone.md)\n",
        );
        let problems = book_pages(&s.ws());
        let text = render(&problems);
        assert_eq!(problems.len(), 2, "{text}");
        assert!(text.contains("SUMMARY.md:6: [Gone](gone.md)"), "{text}");
        assert!(
            text.contains("chapters/98-other has no book page"),
            "{text}"
        );
    }

    #[test]
    fn a_page_missing_from_the_summary_is_reported() {
        let s = healthy();
        s.write(
            "book/src/SUMMARY.md",
            "# Summary\n\n[Introduction](introduction.md)\n",
        );
        the_problem(book_pages(&s.ws()), &["ch99-fake.md", "not listed"]);
    }

    #[test]
    fn a_pending_snapshot_is_reported() {
        let s = healthy();
        s.write(
            "chapters/99-fake/tests/snapshots/transcripts__demo.snap.new",
            SNAP,
        )
        .write("target/debug/ignored.snap.new", SNAP);
        the_problem(
            pending_snapshots(&s.ws()),
            &[
                "chapters/99-fake/tests/snapshots/transcripts__demo.snap.new",
                "cargo insta review",
            ],
        );
    }

    fn exercises() -> Vec<Exercise> {
        crate::workspace::parse_info(INFO).unwrap()
    }

    fn run(output: &str) -> TestRun {
        TestRun {
            command: "cargo test -p exercises".into(),
            success: !output.contains("FAILED"),
            results: parse_results(output),
            output: output.into(),
        }
    }

    const RUNNING: &str =
        "     Running unittests src/lib.rs (target/contract/debug/deps/exercises-00ff)\n";

    #[test]
    fn a_stub_that_fails_is_what_we_want() {
        let output = format!("{RUNNING}test ch99_fake::tests::answers ... FAILED\n");
        assert!(shipped_exercises_fail(&exercises(), &run(&output)).is_empty());
    }

    #[test]
    fn a_stub_that_passes_is_reported() {
        let output = format!("{RUNNING}test ch99_fake::tests::answers ... ok\n");
        the_problem(
            shipped_exercises_fail(&exercises(), &run(&output)),
            &["ch99_fake", "solved by doing nothing"],
        );
    }

    #[test]
    fn an_exercise_without_tests_is_reported() {
        let output = format!("{RUNNING}test ch99_other::tests::x ... FAILED\n");
        the_problem(
            shipped_exercises_fail(&exercises(), &run(&output)),
            &["ch99_fake.rs has no test"],
        );
    }

    #[test]
    fn a_stub_that_does_not_compile_is_reported() {
        let output = "error[E0425]: cannot find value `x`\n  --> exercises/src/ch99_fake.rs:3:5\n";
        let mut failed = run(output);
        failed.success = false;
        the_problem(
            shipped_exercises_fail(&exercises(), &failed),
            &["E0425", "compile"],
        );
    }

    #[test]
    fn a_failing_solution_is_reported_with_its_message() {
        let output = "     Running unittests src/lib.rs (target/contract/debug/deps/solutions-00ff)\n\
                      test ch99_fake::tests::answers ... FAILED\n\nfailures:\n\n\
                      ---- ch99_fake::tests::answers stdout ----\nthe answer is 42\n\nfailures:\n";
        the_problem(
            solutions_pass(&exercises(), &run(output)),
            &["the answer is 42"],
        );
    }
}
