//! Rules about the text of each exercise as shipped: every test runs under
//! the watchdog, and every book section its "Read first:" paragraph names
//! exists.

use std::fs;

use super::{Problem, bless_note};
use crate::book;
use crate::manifest::{Shipped, exercise_path};
use crate::source;
use crate::workspace::Workspace;

/// Every `#[test]` function of an exercise has `within(` in its body: the
/// code it runs is under `lab_kit::watchdog::within`, so a wrong answer that
/// spins or blocks fails in seconds with a message that teaches, instead of
/// being stopped by the lab with only "still running".
pub fn watchdog(ws: &Workspace, shipped: &Shipped) -> Vec<Problem> {
    let Ok(exercises) = ws.exercises() else {
        return Vec::new(); // reported by `exercise_files`
    };
    let mut problems = Vec::new();
    for exercise in &exercises {
        let path = exercise_path(&exercise.name);
        let Some(text) = shipped.text(&path) else {
            continue;
        };
        let Some(section) = source::tests_section(&text) else {
            continue; // reported by `tests_sections`
        };
        let unwatched: Vec<String> = source::test_functions(section)
            .into_iter()
            .filter(|test| !test.code.contains("within("))
            .map(|test| test.name)
            .collect();
        if !unwatched.is_empty() {
            problems.push(Problem::new(
                format!(
                    "exercises/{path} {}: {} test{} without `within(` in {}: {}{}",
                    shipped.label(),
                    unwatched.len(),
                    if unwatched.len() == 1 { "" } else { "s" },
                    if unwatched.len() == 1 { "its body" } else { "their bodies" },
                    unwatched.join(", "),
                    bless_note(shipped, &path)
                ),
                "run the learner's code in each test through `lab_kit::watchdog::within(LIMIT, \"what should happen\", || ...)`, in the test's own body, so a spin or a block fails in seconds with a message",
            ));
        }
    }
    problems
}

/// Every section an exercise's "Read first:" paragraph names is a heading
/// of its chapter's book page. The paragraph is in the file's `//!` doc:
/// `Read first: the book's chapter 06 ("The loop" and "Backpressure"), ...`;
/// each name in double quotes inside the parentheses after `chapter NN`
/// must be the text of a heading (any level) of `book/src/chNN-*.md`
/// (backticks aside). Quotes outside such parentheses (man page sections)
/// are not checked.
pub fn read_first(ws: &Workspace, shipped: &Shipped) -> Vec<Problem> {
    let Ok(exercises) = ws.exercises() else {
        return Vec::new(); // reported by `exercise_files`
    };
    let format = "start a paragraph of the `//!` doc with `Read first: the book's chapter NN (\"Heading\" and \"Another heading\")`";
    let mut problems = Vec::new();
    for exercise in &exercises {
        let path = exercise_path(&exercise.name);
        let Some(text) = shipped.text(&path) else {
            continue;
        };
        let shown = format!("exercises/{path} {}", shipped.label());
        let note = bless_note(shipped, &path);
        let Some(paragraph) = source::read_first(&text) else {
            problems.push(Problem::new(
                format!("{shown} has no \"Read first:\" paragraph in its `//!` doc{note}"),
                format,
            ));
            continue;
        };
        if paragraph.sections.iter().all(|(_, names)| names.is_empty()) {
            problems.push(Problem::new(
                format!(
                    "{shown}:{}: \"Read first:\" names no book section in the form `chapter NN (\"Heading\")`{note}",
                    paragraph.line
                ),
                format,
            ));
            continue;
        }
        for (number, names) in &paragraph.sections {
            let id = format!("ch{number}");
            let page = ws.book_page(&id).ok().flatten();
            let Some(page) = page else {
                problems.push(Problem::new(
                    format!(
                        "{shown}:{}: \"Read first:\" points to chapter {number}, which has no book page book/src/{id}-*.md{note}",
                        paragraph.line
                    ),
                    "correct the chapter number",
                ));
                continue;
            };
            let headings = book::headings(&fs::read_to_string(&page).unwrap_or_default());
            let plain = |text: &str| text.replace('`', "").trim().to_string();
            let known: Vec<String> = headings.iter().map(|h| plain(h)).collect();
            for name in names {
                if !known.contains(&plain(name)) {
                    problems.push(Problem::new(
                        format!(
                            "{shown}:{}: \"Read first:\" names \"{name}\", which is not a heading of {}{note}\n\
                             its headings: {}",
                            paragraph.line,
                            ws.show(&page),
                            headings
                                .iter()
                                .skip(1)
                                .map(|h| format!("\"{h}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        "quote a heading exactly as the page writes it (or add that section to the page)",
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn a_test_without_the_watchdog_is_reported_by_name() {
        let s = healthy();
        let unwatched = "\n    #[test]\n    fn bare() {\n        // within( in a comment is not a call\n        assert_eq!(super::answer(), 42);\n    }\n}\n";
        let stub = stub().trim_end().strip_suffix('}').unwrap().to_string() + unwatched;
        s.write("exercises/src/ch99_fake.rs", &stub)
            .write(
                "solutions/src/ch99_fake.rs",
                &(solved().trim_end().strip_suffix('}').unwrap().to_string() + unwatched),
            )
            .bless();
        let problem = the_problem(
            watchdog(&s.ws(), &s.shipped()),
            &[
                "exercises/src/ch99_fake.rs",
                "1 test without `within(`",
                ": bare",
            ],
        );
        assert!(!problem.what.contains("answers"), "{problem}");
    }

    #[test]
    fn a_section_the_page_lacks_is_reported_with_the_headings_it_has() {
        let s = healthy();
        s.write(
            "exercises/src/ch99_fake.rs",
            &stub().replace("(\"The answer\")", "(\"The answer\" and \"The question\")"),
        )
        .bless();
        the_problem(
            read_first(&s.ws(), &s.shipped()),
            &[
                "names \"The question\"",
                "book/src/ch99-fake.md",
                "its headings: \"The answer\"",
            ],
        );
    }

    #[test]
    fn a_missing_or_empty_read_first_is_reported() {
        let s = healthy();
        s.write(
            "exercises/src/ch99_fake.rs",
            &stub().replace(
                "Read first: the book's chapter 99 (\"The answer\").",
                "Read the book.",
            ),
        )
        .bless();
        the_problem(
            read_first(&s.ws(), &s.shipped()),
            &["no \"Read first:\" paragraph"],
        );
        s.write(
            "exercises/src/ch99_fake.rs",
            &stub().replace("chapter 99 (\"The answer\")", "chapter 99"),
        )
        .bless();
        the_problem(
            read_first(&s.ws(), &s.shipped()),
            &["names no book section"],
        );
    }

    #[test]
    fn a_chapter_without_a_page_is_reported() {
        let s = healthy();
        s.write(
            "exercises/src/ch99_fake.rs",
            &stub().replace("chapter 99", "chapter 42"),
        )
        .bless();
        the_problem(
            read_first(&s.ws(), &s.shipped()),
            &["chapter 42, which has no book page"],
        );
    }

    #[test]
    fn backticks_do_not_matter() {
        let s = healthy();
        s.write("book/src/ch99-fake.md", "# Fake\n\n## The `answer`\n");
        assert!(read_first(&s.ws(), &s.shipped()).is_empty());
    }
}
