//! The checks that build and run tests: every exercise as shipped fails its
//! own tests (so none is solved by doing nothing), every solution passes;
//! and, in CI, the working tree's exercises are the shipped ones.
//!
//! The shipped files are written out to `target/lab/shipped-exercises/` and
//! built there as a crate of their own (with the lab's generated-crate
//! machinery: one that does not compile is reported by name and the others
//! still run), whatever state the learner's `exercises/` is in.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use super::Problem;
use crate::error::LabError;
use crate::evaluate::{Say, check_crate};
use crate::gencrate::{CrateSpec, Module};
use crate::manifest::{self, Shipped, exercise_path};
use crate::results::{ExerciseResult, Outcome};
use crate::workspace::{Exercise, Workspace, write_if_changed};

/// The package name of the crate the shipped exercises are built in.
pub const SHIPPED_PACKAGE: &str = "shipped-exercises";
/// The package name of the crate the solutions are built in.
pub const SOLUTIONS_PACKAGE: &str = "lab-solutions";

/// In CI: every file of the exercises crate in the working tree is the
/// version the manifest names.
pub fn tree_is_shipped(shipped: &Shipped) -> Vec<Problem> {
    shipped
        .changed_in_working_tree()
        .into_iter()
        .map(|path| {
            let restore = match path.strip_prefix("src/").and_then(|p| p.strip_suffix(".rs")) {
                Some(name) if name != "lib" => format!("`cargo lab reset {name}`"),
                _ => format!("`git checkout -- exercises/{path}`"),
            };
            Problem::new(
                format!(
                    "exercises/{path} is not the version {} names as shipped",
                    manifest::PATH
                ),
                format!(
                    "if you changed the exercise on purpose, run `cargo lab verify --bless` (it checks the new version and records it); if not, restore it with {restore}"
                ),
            )
        })
        .collect()
}

/// Builds the exercises as shipped and runs their tests: each must have
/// tests, fail at least one, and have none that the lab had to stop.
pub fn shipped_exercises_fail(
    ws: &Workspace,
    shipped: &Shipped,
    say: Say,
) -> Result<Vec<Problem>, LabError> {
    let exercises = ws.exercises()?;
    let available: Vec<&Exercise> = exercises
        .iter()
        .filter(|e| shipped.exercise(&e.name).is_some())
        .collect();
    if available.is_empty() {
        return Ok(Vec::new());
    }
    let (Some(cargo_toml), Some(lib_rs)) = (shipped.text("Cargo.toml"), shipped.text("src/lib.rs"))
    else {
        return Ok(Vec::new()); // reported by `exercise_files` or in a note
    };

    // Write the shipped files where the generated crate can include them.
    let dir = ws.lab_dir().join(SHIPPED_PACKAGE).join("src");
    let mut modules = Vec::new();
    let mut texts = BTreeMap::new();
    for exercise in &available {
        let path = exercise_path(&exercise.name);
        let file = &shipped.files[&path];
        let bytes = file.bytes.as_deref().unwrap_or_default();
        let written = dir.join(format!("{}.rs", exercise.name));
        write_if_changed(&written, bytes)?;
        modules.push(Module {
            name: exercise.name.clone(),
            file: written,
            shown: format!("exercises/{path} ({})", shipped.label()),
        });
        texts.insert(
            exercise.name.clone(),
            String::from_utf8_lossy(bytes).into_owned(),
        );
    }
    let what = format!("the exercises {}", shipped.label());
    let spec = CrateSpec::new(
        ws,
        SHIPPED_PACKAGE,
        &what,
        &ws.exercises_dir(),
        &cargo_toml,
        &lib_rs,
        &exercises.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        modules,
    )?;
    let names: Vec<String> = available.iter().map(|e| e.name.clone()).collect();
    let results = check_crate(
        ws,
        &spec,
        &names,
        &BTreeSet::new(),
        &texts,
        &ws.exercises_dir(),
        say,
    )?;
    Ok(judge_shipped(shipped, &results))
}

/// The problems of the shipped exercises' results.
pub fn judge_shipped(
    shipped: &Shipped,
    results: &BTreeMap<String, ExerciseResult>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, result) in results {
        let shown = format!("exercises/src/{name}.rs {}", shipped.label());
        match result {
            ExerciseResult::DoesNotCompile { messages, .. } => problems.push(Problem::new(
                format!("{shown} does not compile:\n{}", indent(messages)),
                "a stub keeps every signature and has `todo!(\"...\")` bodies: it compiles, and fails its tests",
            )),
            ExerciseResult::NotBuilt { reason } => problems.push(Problem::new(
                format!("the exercises {} could not be built:\n{}", shipped.label(), indent(reason)),
                "make the exercises crate's dependencies compile",
            )),
            ExerciseResult::Missing => {} // reported by `exercise_files`
            ExerciseResult::Tested { tests } => {
                let counted: Vec<_> = tests.iter().filter(|t| t.outcome != Outcome::Ignored).collect();
                if counted.is_empty() {
                    problems.push(Problem::new(
                        format!("{shown} has no test (no `{name}::...` test ran)"),
                        "add `#[cfg(test)] mod tests` with at least one #[test] below the tests marker, in the exercise and its solution",
                    ));
                } else if counted.iter().all(|t| t.outcome == Outcome::Passed) {
                    problems.push(Problem::new(
                        format!(
                            "{shown} passes all its {} tests, so it is solved by doing nothing",
                            counted.len()
                        ),
                        "leave the stub's bodies as `todo!(\"...\")`, or add a test that the stub as written fails",
                    ));
                }
                for stuck in counted.iter().filter(|t| t.outcome == Outcome::TimedOut) {
                    problems.push(Problem::new(
                        format!(
                            "{shown}: {} is still running after {} s, so a learner who runs it first waits and gets no message",
                            stuck.short_name(),
                            crate::testrun::test_time_limit().as_secs()
                        ),
                        "a stub fails at once (`todo!()`); run the code under test through `lab_kit::watchdog::within`",
                    ));
                }
            }
        }
    }
    problems
}

/// Builds the solutions and runs their tests: each must have tests and
/// pass them all.
pub fn solutions_pass(ws: &Workspace, say: Say) -> Result<Vec<Problem>, LabError> {
    let exercises = ws.exercises()?;
    let dir = ws.root().join("solutions");
    let read = |path: &Path| fs::read_to_string(path).map_err(|e| LabError::io(path, e));
    let mut modules = Vec::new();
    let mut texts = BTreeMap::new();
    for exercise in &exercises {
        let file = ws.solution_file(&exercise.name);
        if let Ok(text) = fs::read_to_string(&file) {
            texts.insert(exercise.name.clone(), text);
            modules.push(Module {
                name: exercise.name.clone(),
                shown: ws.show(&file),
                file,
            });
        }
    }
    if modules.is_empty() {
        return Ok(Vec::new());
    }
    let spec = CrateSpec::new(
        ws,
        SOLUTIONS_PACKAGE,
        "the solutions",
        &dir,
        &read(&dir.join("Cargo.toml"))?,
        &read(&dir.join("src/lib.rs"))?,
        &exercises.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        modules,
    )?;
    let names: Vec<String> = texts.keys().cloned().collect();
    let results = check_crate(ws, &spec, &names, &BTreeSet::new(), &texts, &dir, say)?;
    Ok(judge_solutions(&results))
}

/// The problems of the solutions' results.
pub fn judge_solutions(results: &BTreeMap<String, ExerciseResult>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, result) in results {
        let shown = format!("solutions/src/{name}.rs");
        match result {
            ExerciseResult::DoesNotCompile { messages, .. } => problems.push(Problem::new(
                format!("{shown} does not compile:\n{}", indent(messages)),
                "make it compile: a solution passes its tests",
            )),
            ExerciseResult::NotBuilt { reason } => problems.push(Problem::new(
                format!("the solutions could not be built:\n{}", indent(reason)),
                "make the solutions crate's dependencies compile",
            )),
            ExerciseResult::Missing => {}
            ExerciseResult::Tested { tests } if tests.is_empty() => problems.push(Problem::new(
                format!("{shown}: no test ran"),
                "copy the tests section of the exercise into the solution",
            )),
            ExerciseResult::Tested { tests } => {
                for test in tests
                    .iter()
                    .filter(|t| matches!(t.outcome, Outcome::Failed | Outcome::TimedOut))
                {
                    let message = test.message.as_deref().unwrap_or("(no message)");
                    problems.push(Problem::new(
                        format!("{shown} fails {}:\n{}", test.short_name(), indent(message)),
                        "fix the solution (or the test): every solution passes its tests",
                    ));
                }
            }
        }
    }
    problems
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::TestResult;
    use crate::testing::*;

    fn tested(outcomes: &[Outcome]) -> ExerciseResult {
        ExerciseResult::Tested {
            tests: outcomes
                .iter()
                .enumerate()
                .map(|(i, outcome)| TestResult {
                    name: format!("ch99_fake::tests::t{i}"),
                    outcome: *outcome,
                    message: Some("the answer is 42".into()),
                })
                .collect(),
        }
    }

    fn one(result: ExerciseResult) -> BTreeMap<String, ExerciseResult> {
        [("ch99_fake".to_string(), result)].into()
    }

    #[test]
    fn a_stub_that_fails_is_what_we_want() {
        let s = healthy();
        let results = one(tested(&[Outcome::Passed, Outcome::Failed]));
        assert!(judge_shipped(&s.shipped(), &results).is_empty());
    }

    #[test]
    fn a_stub_that_passes_is_reported() {
        let s = healthy();
        let results = one(tested(&[Outcome::Passed, Outcome::Ignored]));
        the_problem(
            judge_shipped(&s.shipped(), &results),
            &["ch99_fake.rs as shipped", "solved by doing nothing"],
        );
    }

    #[test]
    fn a_stub_without_tests_is_reported() {
        let s = healthy();
        the_problem(
            judge_shipped(&s.shipped(), &one(tested(&[]))),
            &["ch99_fake.rs as shipped has no test"],
        );
    }

    #[test]
    fn a_stub_that_does_not_compile_is_reported() {
        let s = healthy();
        let results = one(ExerciseResult::DoesNotCompile {
            location: None,
            messages: "error[E0425]: cannot find value `x`".into(),
        });
        the_problem(
            judge_shipped(&s.shipped(), &results),
            &["E0425", "does not compile"],
        );
    }

    #[test]
    fn a_stub_that_hangs_is_reported() {
        let s = healthy();
        let results = one(tested(&[Outcome::Failed, Outcome::TimedOut]));
        the_problem(
            judge_shipped(&s.shipped(), &results),
            &["t1 is still running"],
        );
    }

    #[test]
    fn a_failing_solution_is_reported_with_its_message() {
        let results = one(tested(&[Outcome::Passed, Outcome::Failed]));
        the_problem(judge_solutions(&results), &["fails t1", "the answer is 42"]);
        assert!(judge_solutions(&one(tested(&[Outcome::Passed]))).is_empty());
    }

    /// Every check of the contract that `cargo test` runs (all but CI's
    /// tree check), on `s` as shipped.
    fn the_whole_contract(s: &Scratch) -> (Vec<Problem>, Vec<String>) {
        let shipped = s.shipped();
        let mut problems = all_file_checks(s);
        problems.extend(shipped_exercises_fail(&s.ws(), &shipped, &|_| {}).unwrap());
        (problems, crate::contract::notes(&shipped))
    }

    /// Defect 1 of issue 8: whatever a learner does to `exercises/`, the
    /// contract sees the shipped exercises and holds.
    #[test]
    fn the_contract_holds_whatever_the_learner_did_to_the_working_tree() {
        let s = healthy();
        s.git_commit();
        let (problems, notes) = the_whole_contract(&s);
        assert!(
            problems.is_empty(),
            "as shipped:\n{}",
            crate::contract::render(&problems)
        );
        assert!(notes.is_empty(), "{notes:?}");

        let learner_states = [
            ("solved", solved(), pair("1", "2")),
            (
                "half-solved",
                stub().replace("    todo!", "    // thinking...\n    todo!"),
                pair("1", "todo!()"),
            ),
            (
                "not compiling",
                stub().replace("todo!(\"ch99\")", "let x: u32 = \"no\"; x"),
                pair("1 +", "2"),
            ),
            (
                "tests and docs rewritten",
                "pub fn answer() -> u32 { 42 }\n".to_string(),
                String::new(),
            ),
        ];
        for (what, fake, pair_text) in learner_states {
            s.write("exercises/src/ch99_fake.rs", &fake)
                .write("exercises/src/ch99_pair.rs", &pair_text);
            let (problems, notes) = the_whole_contract(&s);
            assert!(
                problems.is_empty(),
                "{what}:\n{}",
                crate::contract::render(&problems)
            );
            assert!(notes.is_empty(), "{what}: {notes:?}");
            // CI alone requires the shipped versions in the working tree.
            assert_eq!(tree_is_shipped(&s.shipped()).len(), 2, "{what}");
        }

        // Outside a git checkout the changed files cannot be checked as
        // shipped: the contract still holds, and says what it skipped.
        fs::remove_dir_all(s.root.join(".git")).unwrap();
        let (problems, notes) = the_whole_contract(&s);
        assert!(
            problems.is_empty(),
            "no git:\n{}",
            crate::contract::render(&problems)
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("not a git checkout"), "{notes:?}");
    }

    #[test]
    fn a_shipped_stub_that_passes_or_does_not_compile_fails_the_contract() {
        let s = healthy();
        s.write("exercises/src/ch99_fake.rs", &solved())
            .write("exercises/src/ch99_pair.rs", &pair("1 +", "2"))
            .bless();
        let (problems, _) = the_whole_contract(&s);
        let text = crate::contract::render(&problems);
        assert_eq!(problems.len(), 2, "{text}");
        assert!(text.contains("exercises/src/ch99_fake.rs as shipped passes all its 1 tests, so it is solved by doing nothing"), "{text}");
        assert!(
            text.contains("exercises/src/ch99_pair.rs as shipped does not compile"),
            "{text}"
        );
        assert!(
            text.contains("--> exercises/src/ch99_pair.rs (as shipped):"),
            "{text}"
        );
    }

    #[test]
    fn a_working_tree_that_is_not_shipped_is_reported() {
        let s = healthy();
        assert!(tree_is_shipped(&s.shipped()).is_empty());
        s.write("exercises/src/ch99_fake.rs", &solved());
        the_problem(
            tree_is_shipped(&s.shipped()),
            &[
                "exercises/src/ch99_fake.rs is not the version exercises/shipped.toml names",
                "cargo lab verify --bless",
                "cargo lab reset ch99_fake",
            ],
        );
    }
}
