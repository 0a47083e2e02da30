//! The checks that the exercise files, their solutions, `info.toml`, the
//! manifest and both `lib.rs` agree with each other.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::{Problem, bless_note};
use crate::manifest::{self, Manifest, Shipped, exercise_path};
use crate::source::tests_section;
use crate::workspace::{TESTS_MARKER, Workspace, list_dir};

/// `info.toml`, the manifest, the exercise and solution files, and the two
/// `lib.rs` agree: every listed exercise is in the manifest and has a
/// solution, is declared `pub mod` in both crates, has exactly three hints
/// and its chapter; exercises are listed in chapter order; every exercise
/// and solution file is listed.
pub fn exercise_files(ws: &Workspace, shipped: &Shipped) -> Vec<Problem> {
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
    let exercises_lib = shipped.text("src/lib.rs");
    let solutions_lib_path = ws.root().join("solutions/src/lib.rs");
    let solutions_lib = fs::read_to_string(&solutions_lib_path).ok();
    let bless = "run `cargo lab verify --bless` (it checks the exercises in the working tree and records them)";

    let mut seen = BTreeSet::new();
    let mut latest_chapter: Option<(&str, &str)> = None;
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
        match latest_chapter {
            Some((chapter, before)) if exercise.chapter.as_str() < chapter => {
                problems.push(Problem::new(
                    format!(
                        "exercises/info.toml lists `{name}` ({}) after `{before}` ({chapter}), but the lab shows them, and picks the next one, in the order of the file",
                        exercise.chapter
                    ),
                    "list the exercises in book order: by chapter, then in the order the chapter page presents them",
                ));
            }
            _ => latest_chapter = Some((&exercise.chapter, name)),
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
        if let Some(near_solution) = exercise.hints.get(2)
            && !near_solution.trim().contains('\n')
            && near_solution.len() > 100
        {
            problems.push(Problem::new(
                format!("hint 3 of `{name}` (a near-solution) is one long line, so its code prints as a paragraph of prose"),
                "write it as a multi-line literal string ('''...''') with the code on lines indented by four spaces",
            ));
        }
        if let Some(level) = exercise.hints.iter().position(|h| h.trim().is_empty()) {
            problems.push(Problem::new(
                format!("hint {} of `{name}` is empty", level + 1),
                "write it, or the learner asking for it gets nothing",
            ));
        }

        let path = exercise_path(name);
        if !shipped.files.contains_key(&path) {
            problems.push(if shipped.candidate {
                Problem::new(
                    format!("exercises/{path} does not exist"),
                    format!("create it (an exercise and its solution have the same path), or remove `{name}` from exercises/info.toml"),
                )
            } else {
                Problem::new(
                    format!("{} has no entry for exercises/{path}", manifest::PATH),
                    bless,
                )
            });
        } else if shipped.candidate && shipped.text(&path).is_none() {
            problems.push(Problem::new(
                format!("exercises/{path} does not exist"),
                format!("create it (an exercise and its solution have the same path), or remove `{name}` from exercises/info.toml"),
            ));
        }
        let solution = ws.solution_file(name);
        if !solution.is_file() {
            problems.push(Problem::new(
                format!("{} does not exist", ws.show(&solution)),
                format!(
                    "create it (an exercise and its solution have the same path), or remove `{name}` from exercises/info.toml"
                ),
            ));
        }
        if let Some(lib) = &exercises_lib
            && !declares_module(lib, name)
        {
            problems.push(Problem::new(
                format!(
                    "exercises/src/lib.rs {} does not declare `pub mod {name};`{}",
                    shipped.label(),
                    bless_note(shipped, "src/lib.rs")
                ),
                format!("add the line `pub mod {name};` to exercises/src/lib.rs"),
            ));
        }
        if !solutions_lib
            .as_deref()
            .is_some_and(|lib| declares_module(lib, name))
        {
            problems.push(Problem::new(
                format!("solutions/src/lib.rs does not declare `pub mod {name};`"),
                format!("add the line `pub mod {name};` to solutions/src/lib.rs"),
            ));
        }
    }

    for required in ["Cargo.toml", "src/lib.rs"] {
        if !shipped.files.contains_key(required) {
            problems.push(Problem::new(
                format!("{} has no entry for exercises/{required}", manifest::PATH),
                bless,
            ));
        }
    }
    let wanted: BTreeSet<String> = Manifest::wanted_paths(&exercises).into_iter().collect();
    if shipped.candidate {
        for module in rust_modules(&ws.root().join("exercises/src")) {
            if !seen.contains(&module) {
                problems.push(unlisted("exercises", &module));
            }
        }
    } else {
        for path in shipped.files.keys().filter(|p| !wanted.contains(*p)) {
            problems.push(Problem::new(
                format!(
                    "{} lists exercises/{path}, which exercises/info.toml does not list",
                    manifest::PATH
                ),
                format!("add it to exercises/info.toml, or {bless}"),
            ));
        }
    }
    for module in rust_modules(&ws.root().join("solutions/src")) {
        if !seen.contains(&module) {
            problems.push(unlisted("solutions", &module));
        }
    }
    problems
}

fn unlisted(krate: &str, module: &str) -> Problem {
    Problem::new(
        format!("{krate}/src/{module}.rs is not listed in exercises/info.toml"),
        format!(
            "add an [[exercise]] with name = \"{module}\", its chapter and three hints (or delete the file)"
        ),
    )
}

/// From the tests marker to the end, each exercise (as shipped) and its
/// solution are byte-identical, and both have the marker.
pub fn tests_sections(ws: &Workspace, shipped: &Shipped) -> Vec<Problem> {
    let Ok(exercises) = ws.exercises() else {
        return Vec::new(); // reported by `exercise_files`
    };
    let mut problems = Vec::new();
    for exercise in &exercises {
        let name = &exercise.name;
        let path = exercise_path(name);
        let solution_path = ws.solution_file(name);
        let (Some(stub), Ok(solved)) = (shipped.text(&path), fs::read_to_string(&solution_path))
        else {
            continue; // a missing file is reported by `exercise_files`
        };
        let stub_shown = format!("exercises/{path} {}", shipped.label());
        let solved_shown = ws.show(&solution_path);
        let sections = [(&stub_shown, &stub), (&solved_shown, &solved)].map(|(shown, text)| {
            let section = tests_section(text);
            if section.is_none() {
                problems.push(Problem::new(
                    format!("{shown} has no line `{TESTS_MARKER}`"),
                    "put that line, alone, right above `#[cfg(test)] mod tests` in the exercise and in its solution",
                ));
            }
            section
        });
        if let [Some(a), Some(b)] = sections
            && a != b
        {
            let (line_a, line_b) = first_difference(&stub, a, &solved, b);
            problems.push(Problem::new(
                format!(
                    "the tests of {stub_shown} and {solved_shown} differ: first at line {line_a} of the exercise, line {line_b} of the solution{}",
                    bless_note(shipped, &path)
                ),
                "make everything below the tests marker the same in both files (copy the section of the one you meant to keep)",
            ));
        }
    }
    problems
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::render;
    use crate::testing::*;

    #[test]
    fn mismatched_tests_are_reported_with_the_line() {
        let s = healthy();
        let changed = solved().replace("42, ", "41, ");
        s.write("solutions/src/ch99_fake.rs", &changed);
        the_problem(
            tests_sections(&s.ws(), &s.shipped()),
            &[
                "exercises/src/ch99_fake.rs as shipped",
                "solutions/src/ch99_fake.rs",
                "line 18",
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
        )
        .bless();
        the_problem(
            tests_sections(&s.ws(), &s.shipped()),
            &["exercises/src/ch99_fake.rs", TESTS_MARKER],
        );
    }

    #[test]
    fn a_missing_solution_and_module_are_reported() {
        let s = healthy();
        s.remove("solutions/src/ch99_fake.rs").write(
            "solutions/src/lib.rs",
            "//! Solutions.\npub mod ch99_pair;\n",
        );
        let problems = exercise_files(&s.ws(), &s.shipped());
        let text = render(&problems);
        assert_eq!(problems.len(), 2, "{text}");
        assert!(
            text.contains("solutions/src/ch99_fake.rs does not exist"),
            "{text}"
        );
        assert!(text.contains("`pub mod ch99_fake;`"), "{text}");
    }

    #[test]
    fn an_unlisted_solution_and_wrong_hint_count_are_reported() {
        let s = healthy();
        s.write("solutions/src/ch99_other.rs", "//! new\n").write(
            "exercises/info.toml",
            &INFO.replace(", \"almost the answer\"", ""),
        );
        let problems = exercise_files(&s.ws(), &s.shipped());
        let text = render(&problems);
        assert_eq!(problems.len(), 2, "{text}");
        assert!(
            text.contains("solutions/src/ch99_other.rs is not listed"),
            "{text}"
        );
        assert!(text.contains("`ch99_fake` has 2 hints"), "{text}");
    }

    #[test]
    fn an_exercise_missing_from_the_manifest_is_reported() {
        let s = healthy();
        s.write(
            "exercises/shipped.toml",
            &fs::read_to_string(s.root.join("exercises/shipped.toml"))
                .unwrap()
                .lines()
                .filter(|l| !l.contains("ch99_fake"))
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
        );
        the_problem(
            exercise_files(&s.ws(), &s.shipped()),
            &["has no entry for exercises/src/ch99_fake.rs", "--bless"],
        );
    }

    #[test]
    fn a_candidate_exercise_file_not_listed_is_reported() {
        let s = healthy();
        s.write("exercises/src/ch99_other.rs", "//! new\n");
        let ws = s.ws();
        let candidate = Shipped::working_tree(&ws, &ws.exercises().unwrap());
        the_problem(
            exercise_files(&ws, &candidate),
            &["exercises/src/ch99_other.rs is not listed"],
        );
    }

    #[test]
    fn exercises_out_of_chapter_order_are_reported() {
        let s = healthy();
        s.write("chapters/98-early/src/lib.rs", "//! early\n")
            .write(
                "exercises/info.toml",
                &format!(
                    "{INFO}\n[[exercise]]\nname = \"ch98_early\"\nchapter = \"ch98\"\nhints = [\"a\", \"b\", \"c\"]\n"
                ),
            )
            .write("exercises/src/ch98_early.rs", &stub())
            .write("solutions/src/ch98_early.rs", &solved())
            .write(
                "exercises/src/lib.rs",
                "//! Exercises.\npub mod ch99_fake;\npub mod ch99_pair;\npub mod ch98_early;\n",
            )
            .write(
                "solutions/src/lib.rs",
                "//! Solutions.\npub mod ch99_fake;\npub mod ch99_pair;\npub mod ch98_early;\n",
            )
            .bless();
        the_problem(
            exercise_files(&s.ws(), &s.shipped()),
            &["`ch98_early` (ch98) after `ch99_pair` (ch99)", "book order"],
        );
    }

    #[test]
    fn a_near_solution_on_one_long_line_is_reported() {
        let s = healthy();
        let long = "let x = 1; ".repeat(12);
        s.write(
            "exercises/info.toml",
            &INFO.replace("almost the answer", &long),
        );
        the_problem(
            exercise_files(&s.ws(), &s.shipped()),
            &["hint 3 of `ch99_fake`", "one long line"],
        );
        let laid_out = format!("'''\n    {long}\n    {long}\n'''");
        s.write(
            "exercises/info.toml",
            &INFO.replace("\"almost the answer\"", &laid_out),
        );
        let problems = exercise_files(&s.ws(), &s.shipped());
        assert!(
            problems.is_empty(),
            "{}",
            crate::contract::render(&problems)
        );
    }

    #[test]
    fn a_broken_info_toml_is_reported() {
        let s = healthy();
        s.write(
            "exercises/info.toml",
            "[[exercise]]\nname = \"ch99_fake\"\n",
        );
        the_problem(
            exercise_files(&s.ws(), &s.shipped()),
            &["exercises/info.toml", "chapter"],
        );
    }
}
