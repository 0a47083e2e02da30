//! The checks of the book: every include resolves, every chapter has a
//! page listed in `SUMMARY.md`, and no snapshot waits for review.

use std::fs;
use std::path::{Path, PathBuf};

use super::Problem;
use crate::book::{self, Range};
use crate::manifest::Shipped;
use crate::workspace::{Workspace, list_dir};

/// Every include of every book page resolves: the file exists, the anchor
/// is marked in it, the lines exist; a snapshot is included from line 5
/// (after insta's 4-line header) to the end.
pub fn book_includes(ws: &Workspace, _: &Shipped) -> Vec<Problem> {
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
pub fn book_pages(ws: &Workspace, _: &Shipped) -> Vec<Problem> {
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
pub fn pending_snapshots(ws: &Workspace, _: &Shipped) -> Vec<Problem> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::render;
    use crate::testing::*;

    #[test]
    fn a_missing_anchor_is_reported() {
        let s = healthy();
        s.write(
            "chapters/99-fake/src/lib.rs",
            "//! fake\n// ANCHOR: answer\npub fn answer() {}\n",
        );
        the_problem(
            book_includes(&s.ws(), &s.shipped()),
            &[
                "book/src/ch99-fake.md:6",
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
            book_includes(&s.ws(), &s.shipped()),
            &["book/src/ch99-fake.md:6", "does not exist"],
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
                book_includes(&s.ws(), &s.shipped()),
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
        the_problem(book_includes(&s.ws(), &s.shipped()), &["insta's header"]);
    }

    #[test]
    fn a_chapter_without_a_page_and_a_dead_link_are_reported() {
        let s = healthy();
        s.write("chapters/98-other/src/lib.rs", "//! other\n").write(
            "book/src/SUMMARY.md",
            "# Summary\n\n[Introduction](introduction.md)\n\n- [99. Fake](ch99-fake.md)\n- [Gone](gone.md)\n",
        );
        let problems = book_pages(&s.ws(), &s.shipped());
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
        the_problem(
            book_pages(&s.ws(), &s.shipped()),
            &["ch99-fake.md", "not listed"],
        );
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
            pending_snapshots(&s.ws(), &s.shipped()),
            &[
                "chapters/99-fake/tests/snapshots/transcripts__demo.snap.new",
                "cargo insta review",
            ],
        );
    }
}
