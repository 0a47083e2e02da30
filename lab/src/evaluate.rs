//! Finds out where every exercise stands: the saved result of each
//! exercise whose file did not change, and for the others a build of the
//! exercises (those that do not compile left out) and a run of their
//! tests, each test in its own process with its own time limit.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crate::cache::Cache;
use crate::compile;
use crate::error::LabError;
use crate::gencrate::{CrateSpec, Module};
use crate::git;
use crate::results::ExerciseResult;
use crate::source;
use crate::testrun;
use crate::workspace::{Exercise, Workspace};

/// Where messages about the work in progress go (`cargo lab` prints them
/// on stderr; tests drop them).
pub type Say<'a> = &'a (dyn Fn(&str) + Sync);

/// The package name of the crate the learner's exercises are built in.
pub const LEARNER_PACKAGE: &str = "lab-exercises";

/// The result of every exercise, in the order of `exercises`. Saved results
/// are used where the exercise file did not change, except for the
/// exercises named in `fresh`, which are always checked again.
pub fn results(
    ws: &Workspace,
    exercises: &[Exercise],
    fresh: &BTreeSet<String>,
    say: Say,
) -> Result<Vec<ExerciseResult>, LabError> {
    let mut cache = Cache::load(ws);
    let mut known: BTreeMap<String, ExerciseResult> = BTreeMap::new();
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    let mut to_check: Vec<String> = Vec::new();
    for exercise in exercises {
        let name = &exercise.name;
        let Ok(bytes) = fs::read(ws.exercise_file(name)) else {
            known.insert(name.clone(), ExerciseResult::Missing);
            continue;
        };
        let key = git::blob_id(&bytes);
        texts.insert(name.clone(), String::from_utf8_lossy(&bytes).into_owned());
        match cache.get(name, &key) {
            Some(saved) if !fresh.contains(name) => {
                known.insert(name.clone(), saved.clone());
            }
            _ => to_check.push(name.clone()),
        }
        keys.insert(name.clone(), key);
    }

    if !to_check.is_empty() {
        // Every exercise goes into the build, so the generated crate stays
        // the same from one run to the next (and cargo has nothing to redo),
        // except those known not to compile and not asked for.
        let skip: BTreeSet<String> = known
            .iter()
            .filter(|(_, r)| matches!(r, ExerciseResult::DoesNotCompile { .. }))
            .map(|(name, _)| name.clone())
            .collect();
        let modules: Vec<Module> = exercises
            .iter()
            .filter(|e| texts.contains_key(&e.name))
            .map(|e| Module {
                name: e.name.clone(),
                file: ws.exercise_file(&e.name),
                shown: ws.show(&ws.exercise_file(&e.name)),
            })
            .collect();
        let names: Vec<String> = exercises.iter().map(|e| e.name.clone()).collect();
        let spec = learner_crate(ws, &names, modules)?;
        let checked = check_crate(
            ws,
            &spec,
            &to_check,
            &skip,
            &texts,
            &ws.exercises_dir(),
            say,
        )?;
        for (name, result) in checked {
            cache.put(&name, &keys[&name], &result);
            known.insert(name, result);
        }
        // A result that cannot be saved is still right; the next run
        // just checks again.
        let _ = cache.save();
    }
    Ok(exercises
        .iter()
        .map(|e| known.remove(&e.name).unwrap_or(ExerciseResult::Missing))
        .collect())
}

/// The generated crate for the learner's exercise files.
pub(crate) fn learner_crate(
    ws: &Workspace,
    exercises: &[String],
    modules: Vec<Module>,
) -> Result<CrateSpec, LabError> {
    let dir = ws.exercises_dir();
    let read = |path: &Path| fs::read_to_string(path).map_err(|e| LabError::io(path, e));
    let cargo_toml = read(&dir.join("Cargo.toml"))?;
    let lib_rs = read(&dir.join("src/lib.rs"))?;
    CrateSpec::new(
        ws,
        LEARNER_PACKAGE,
        "the exercises",
        &dir,
        &cargo_toml,
        &lib_rs,
        exercises,
        modules,
    )
}

/// Builds `spec` (leaving out `skip` and whatever does not compile) and
/// runs the tests of the modules in `check`, from the directory `cwd`.
/// `texts` has each module's source, to list its tests in the order they
/// are written.
pub fn check_crate(
    ws: &Workspace,
    spec: &CrateSpec,
    check: &[String],
    skip: &BTreeSet<String>,
    texts: &BTreeMap<String, String>,
    cwd: &Path,
    say: Say,
) -> Result<BTreeMap<String, ExerciseResult>, LabError> {
    let first_build = !ws.build_dir().exists();
    let told = std::sync::atomic::AtomicBool::new(false);
    let progress = |line: &str| {
        if !told.swap(true, std::sync::atomic::Ordering::Relaxed) {
            if first_build {
                say(FIRST_BUILD);
            } else {
                say(&format!("Compiling {}...", spec.what));
            }
        }
        if first_build {
            say(&format!("  {line}"));
        }
    };
    let built = compile::build(spec, ws.build_dir(), skip, &progress)?;

    let mut results = BTreeMap::new();
    let mut to_run: Vec<&String> = Vec::new();
    for name in check {
        if let Some(error) = built.broken.get(name) {
            results.insert(
                name.clone(),
                ExerciseResult::DoesNotCompile {
                    location: error.location.clone(),
                    messages: error.messages.clone(),
                },
            );
        } else if let Some(reason) = &built.failure {
            results.insert(
                name.clone(),
                ExerciseResult::NotBuilt {
                    reason: reason.clone(),
                },
            );
        } else {
            to_run.push(name);
        }
    }
    let Some(built_executable) = built.executable.filter(|_| !to_run.is_empty()) else {
        return Ok(results);
    };
    let copy = PrivateCopy::of(&built_executable, &ws.lab_dir().join("run"))?;
    let executable = copy.0.as_path();

    let all_tests = testrun::list(executable)?;
    let mut names: Vec<String> = Vec::new();
    for module in &to_run {
        let prefix = format!("{module}::");
        names.extend(all_tests.iter().filter(|t| t.starts_with(&prefix)).cloned());
    }
    let limit = testrun::test_time_limit();
    if !names.is_empty() {
        say(&format!(
            "Running {} test{} ({} s at most each)...",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            limit.as_secs()
        ));
    }
    let root = format!("{}/", ws.root().display());
    let show = |text: &str| {
        let mut text = text.replace(&root, "");
        for module in &spec.modules {
            text = text.replace(&module.file.display().to_string(), &module.shown);
        }
        text
    };
    let ran = testrun::run(executable, cwd, &names, limit, testrun::jobs(), &show);
    for module in to_run {
        let order: Vec<String> = texts
            .get(module)
            .and_then(|text| source::tests_section(text))
            .map(|section| {
                source::test_functions(section)
                    .into_iter()
                    .map(|t| t.name)
                    .collect()
            })
            .unwrap_or_default();
        let mut tests: Vec<_> = ran
            .iter()
            .filter(|r| r.module() == module.as_str())
            .cloned()
            .collect();
        // The order the author wrote them in (most instructive first);
        // any the text does not show (nested modules) after, by name.
        tests.sort_by_key(|t| {
            let position = order.iter().position(|name| name == t.function());
            (position.unwrap_or(usize::MAX), t.name.clone())
        });
        results.insert(module.clone(), ExerciseResult::Tested { tests });
    }
    Ok(results)
}

/// A copy of a test binary for this process alone, removed when dropped:
/// another `cargo lab` (a `watch` in another terminal) may rebuild the
/// original while these tests run.
struct PrivateCopy(std::path::PathBuf);

impl PrivateCopy {
    fn of(executable: &Path, dir: &Path) -> Result<PrivateCopy, LabError> {
        fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
        let name = executable.file_name().unwrap_or_default().to_string_lossy();
        let copy = dir.join(format!("{name}-{}", std::process::id()));
        // A hard link when possible: nothing is written, so no descriptor
        // open for writing can leak into a child another thread forks
        // (exec would then fail with ETXTBSY). The linker writes a new
        // file for a rebuilt binary, so the link keeps this version.
        let _ = fs::remove_file(&copy);
        if fs::hard_link(executable, &copy).is_err() {
            fs::copy(executable, &copy).map_err(|e| LabError::io(&copy, e))?;
        }
        Ok(PrivateCopy(copy))
    }
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// What the lab says before its first build.
pub const FIRST_BUILD: &str = "Compiling the exercises and the crates they use: the first time takes \
     about half a minute; later checks take a second or two.";

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::progress::State;
    use crate::results::Outcome;
    use crate::testing::*;

    /// Runs `results` on `s`, returning the states and what was said.
    fn check(s: &Scratch, fresh: &[&str]) -> (Vec<State>, Vec<ExerciseResult>, String) {
        let said = Mutex::new(String::new());
        let say = |line: &str| said.lock().unwrap().push_str(&format!("{line}\n"));
        let ws = s.ws();
        let fresh = fresh.iter().map(|s| s.to_string()).collect();
        let results = results(&ws, &ws.exercises().unwrap(), &fresh, &say).unwrap();
        let states = results.iter().map(State::of).collect();
        (states, results, said.into_inner().unwrap())
    }

    #[test]
    fn results_follow_the_files_and_are_saved_between_runs() {
        let s = healthy();
        let (states, _, said) = check(&s, &[]);
        assert!(
            matches!(states[0], State::Unsolved { failed: 1, .. }),
            "{states:?}"
        );
        assert!(
            matches!(states[1], State::Unsolved { failed: 2, .. }),
            "{states:?}"
        );
        assert!(said.contains("Running 3 tests"), "{said}");

        // Nothing changed: nothing is built or run.
        let (again, _, said) = check(&s, &[]);
        assert_eq!(again, states);
        assert_eq!(said, "");

        // One exercise solved, the other half solved and then broken: each
        // is known for what it is, and the broken one stops nothing.
        s.write("exercises/src/ch99_fake.rs", &solved());
        s.write("exercises/src/ch99_pair.rs", &pair("1", "todo!()"));
        let (states, _, _) = check(&s, &[]);
        assert_eq!(states[0], State::Solved { tests: 1 });
        assert!(
            matches!(
                states[1],
                State::Unsolved {
                    failed: 1,
                    tests: 2,
                    ..
                }
            ),
            "{states:?}"
        );

        s.write(
            "exercises/src/ch99_pair.rs",
            &pair("1", "let x: u32 = \"two\"; x"),
        );
        let (states, results, said) = check(&s, &[]);
        assert_eq!(states[0], State::Solved { tests: 1 }, "{said}");
        let ExerciseResult::DoesNotCompile { location, messages } = &results[1] else {
            panic!("{:?}", results[1]);
        };
        assert_eq!(location.as_deref(), Some("exercises/src/ch99_pair.rs:9:18"));
        assert!(
            messages.contains("error[E0308]: mismatched types"),
            "{messages}"
        );
        assert!(
            messages.contains("--> exercises/src/ch99_pair.rs:9:18"),
            "{messages}"
        );
        assert!(
            !said.contains("Running"),
            "the solved one was not run again: {said}"
        );

        // Asked for afresh, a saved result is checked again.
        let (_, _, said) = check(&s, &["ch99_fake"]);
        assert!(said.contains("Running 1 test"), "{said}");
    }

    #[test]
    fn tests_are_listed_in_the_order_they_are_written() {
        let s = healthy();
        let zebra_first = solved().replace(
            "    #[test]\n    fn answers()",
            "    #[test]\n    fn zebra() {\n        within(5, \"z\", || ());\n    }\n\n    #[test]\n    fn answers()",
        );
        s.write("exercises/src/ch99_fake.rs", &zebra_first);
        let (_, results, _) = check(&s, &[]);
        let ExerciseResult::Tested { tests } = &results[0] else {
            panic!("{:?}", results[0]);
        };
        let names: Vec<&str> = tests.iter().map(|t| t.short_name()).collect();
        assert_eq!(names, ["zebra", "answers"]);
        assert!(tests.iter().all(|t| t.outcome == Outcome::Passed));
    }
}
