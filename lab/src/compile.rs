//! Builds a generated crate's test binary (`cargo test --no-run`), leaving
//! out the modules that do not compile: cargo's JSON messages say which
//! file each error is in, the module of that file is dropped from `lib.rs`,
//! and the build is tried again, until the rest compiles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::error::LabError;
use crate::gencrate::CrateSpec;
use crate::process;

/// How long one build may take (a cold one compiles every dependency).
pub const BUILD_TIME_LIMIT: Duration = Duration::from_secs(15 * 60);

/// A module that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Where the first error is: `exercises/src/ch02_try_read.rs:36:18`.
    pub location: Option<String>,
    /// The compiler's messages about this file, as it prints them.
    pub messages: String,
}

/// What a build produced.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// The test binary, if the build succeeded (with some modules left out,
    /// maybe).
    pub executable: Option<PathBuf>,
    /// The modules left out, and why.
    pub broken: BTreeMap<String, CompileError>,
    /// The build failed for a reason in no module's file (a dependency,
    /// the manifest): cargo's and the compiler's words.
    pub failure: Option<String>,
}

/// Builds `spec` in `build_dir` with every module but those in `skip`,
/// leaving out the ones that do not compile. `progress` gets cargo's
/// `Compiling CRATE` lines.
pub fn build(
    spec: &CrateSpec,
    build_dir: &Path,
    skip: &BTreeSet<String>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Built, LabError> {
    let mut built = Built::default();
    let mut include: BTreeSet<String> = spec
        .modules
        .iter()
        .map(|m| m.name.clone())
        .filter(|name| !skip.contains(name))
        .collect();
    loop {
        let lines = spec.write(&include)?;
        let round = cargo_no_run(spec, build_dir, progress)?;
        let mut blamed: BTreeMap<String, CompileError> = BTreeMap::new();
        let mut unblamed = Vec::new();
        for error in &round.errors {
            let shown = show_paths(spec, &error.rendered);
            match blame(spec, &lines, error) {
                Some(module) => {
                    let entry = blamed.entry(module).or_insert_with(|| CompileError {
                        location: error.location.clone().map(|l| show_paths(spec, &l)),
                        messages: String::new(),
                    });
                    entry.messages.push_str(&shown);
                }
                None => unblamed.push(shown),
            }
        }
        if round.success && round.errors.is_empty() {
            built.executable = round.executable;
            if built.executable.is_none() {
                built.failure = Some("cargo built no test binary".to_string());
            }
            return Ok(built);
        }
        if blamed.is_empty() {
            let mut words = unblamed.join("\n");
            if words.trim().is_empty() {
                words = round.cargo_errors;
            }
            built.failure = Some(words.trim().to_string());
            return Ok(built);
        }
        for (module, error) in blamed {
            include.remove(&module);
            let mut error = error;
            error.messages = error.messages.trim_end().to_string();
            built.broken.insert(module, error);
        }
    }
}

/// One compiler error, as cargo's JSON message gives it.
#[derive(Debug, Clone)]
struct Diagnostic {
    /// The files its spans are in, the primary ones (and the macro call
    /// sites they came from) first.
    files: Vec<(PathBuf, usize)>,
    location: Option<String>,
    rendered: String,
}

/// What one `cargo test --no-run` said.
#[derive(Debug, Default)]
struct Round {
    success: bool,
    executable: Option<PathBuf>,
    errors: Vec<Diagnostic>,
    /// cargo's own `error:` lines (a broken manifest, a missing crate).
    cargo_errors: String,
}

fn cargo_no_run(
    spec: &CrateSpec,
    build_dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Round, LabError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(&cargo);
    command
        .args([
            "test",
            "--no-run",
            "--lib",
            "--message-format=json",
            "--color",
            "never",
        ])
        .current_dir(&spec.dir)
        .env("CARGO_TARGET_DIR", build_dir)
        .stdin(Stdio::null());
    let shown = format!(
        "cargo test --no-run (in {}, CARGO_TARGET_DIR={})",
        spec.dir.display(),
        build_dir.display()
    );
    let mut cargo_errors = String::new();
    let mut on_stderr = |line: &str| {
        let trimmed = line.trim_start();
        if trimmed.starts_with("Compiling ") {
            progress(trimmed);
        } else if trimmed.starts_with("error") || !cargo_errors.is_empty() {
            cargo_errors.push_str(line);
            cargo_errors.push('\n');
        }
    };
    let mut round = Round::default();
    let mut on_stdout = |line: &str| read_message(line, &mut round);
    let status = process::run_streaming(command, BUILD_TIME_LIMIT, &mut on_stdout, &mut on_stderr)
        .map_err(|e| e.into_lab_error(&shown, BUILD_TIME_LIMIT))?;
    round.success = status.success();
    round.cargo_errors = cargo_errors;
    Ok(round)
}

/// Reads one line of cargo's JSON output into `round`.
fn read_message(line: &str, round: &mut Round) {
    let Ok(message) = serde_json::from_str::<Value>(line) else {
        return;
    };
    match message["reason"].as_str() {
        Some("compiler-artifact") => {
            let is_test = message["profile"]["test"].as_bool() == Some(true);
            if let (true, Some(exe)) = (is_test, message["executable"].as_str()) {
                round.executable = Some(PathBuf::from(exe));
            }
        }
        Some("compiler-message") => {
            let diagnostic = &message["message"];
            let level = diagnostic["level"].as_str().unwrap_or("");
            if !level.starts_with("error") {
                return;
            }
            let spans = diagnostic["spans"].as_array().cloned().unwrap_or_default();
            if spans.is_empty() && !level.contains("internal") {
                return; // "aborting due to N previous errors" and the like
            }
            let mut files = Vec::new();
            let primary = spans
                .iter()
                .filter(|s| s["is_primary"].as_bool() == Some(true));
            let others = spans
                .iter()
                .filter(|s| s["is_primary"].as_bool() != Some(true));
            for span in primary.chain(others) {
                // A span inside a macro: also its call sites.
                let mut at = Some(span);
                while let Some(span) = at {
                    if let Some(file) = span["file_name"].as_str() {
                        let line = span["line_start"].as_u64().unwrap_or(0) as usize;
                        files.push((PathBuf::from(file), line));
                    }
                    at = span["expansion"]["span"]
                        .as_object()
                        .map(|_| &span["expansion"]["span"]);
                }
            }
            let location = spans
                .iter()
                .find(|s| s["is_primary"].as_bool() == Some(true))
                .map(|s| {
                    format!(
                        "{}:{}:{}",
                        s["file_name"].as_str().unwrap_or("?"),
                        s["line_start"],
                        s["column_start"]
                    )
                });
            round.errors.push(Diagnostic {
                files,
                location,
                rendered: diagnostic["rendered"].as_str().unwrap_or("").to_string(),
            });
        }
        _ => {}
    }
}

/// The module an error belongs to: the first of its files that is a
/// module's, or the `pub mod` line of `lib.rs` it points at (a file that
/// cannot be read or is not UTF-8).
fn blame(spec: &CrateSpec, lines: &[(usize, String)], error: &Diagnostic) -> Option<String> {
    let lib = spec.lib_file();
    for (file, line) in &error.files {
        let absolute = if file.is_absolute() {
            file.clone()
        } else {
            spec.dir.join(file)
        };
        if let Some(module) = spec.modules.iter().find(|m| m.file == absolute) {
            return Some(module.name.clone());
        }
        if absolute == lib
            && let Some((_, module)) = lines.iter().find(|(l, _)| l == line || *l == line + 1)
        {
            return Some(module.clone());
        }
    }
    None
}

/// `text` with each module's absolute path replaced by how messages show it.
fn show_paths(spec: &CrateSpec, text: &str) -> String {
    let mut text = text.to_string();
    for module in &spec.modules {
        text = text.replace(&module.file.display().to_string(), &module.shown);
    }
    text.replace(
        &spec.lib_file().display().to_string(),
        "lib.rs (generated by the lab)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_errors_with_their_files_and_the_executable() {
        let mut round = Round::default();
        let error = r#"{"reason":"compiler-message","message":{"level":"error","message":"mismatched types","spans":[{"file_name":"/w/exercises/src/ch02_a.rs","line_start":36,"column_start":18,"is_primary":true,"expansion":null}],"rendered":"error[E0308]: mismatched types\n  --> /w/exercises/src/ch02_a.rs:36:18\n"}}"#;
        let abort = r#"{"reason":"compiler-message","message":{"level":"error","message":"aborting due to 1 previous error","spans":[],"rendered":"error: aborting\n"}}"#;
        let warning = r#"{"reason":"compiler-message","message":{"level":"warning","message":"unused","spans":[{"file_name":"/w/x.rs","line_start":1,"column_start":1,"is_primary":true}],"rendered":"warning"}}"#;
        let artifact = r#"{"reason":"compiler-artifact","profile":{"test":true},"executable":"/t/deps/lab_exercises-1"}"#;
        for line in [error, abort, warning, artifact, "not json"] {
            read_message(line, &mut round);
        }
        assert_eq!(round.errors.len(), 1);
        assert_eq!(
            round.errors[0].files,
            [(PathBuf::from("/w/exercises/src/ch02_a.rs"), 36)]
        );
        assert_eq!(
            round.errors[0].location.as_deref(),
            Some("/w/exercises/src/ch02_a.rs:36:18")
        );
        assert_eq!(
            round.executable,
            Some(PathBuf::from("/t/deps/lab_exercises-1"))
        );
    }

    #[test]
    fn a_macro_error_is_blamed_on_the_call_site() {
        let mut round = Round::default();
        let error = r#"{"reason":"compiler-message","message":{"level":"error","message":"x","spans":[{"file_name":"/kit/src/lib.rs","line_start":3,"column_start":1,"is_primary":true,"expansion":{"span":{"file_name":"/w/exercises/src/ch02_b.rs","line_start":9,"column_start":5,"expansion":null}}}],"rendered":"error"}}"#;
        read_message(error, &mut round);
        assert_eq!(
            round.errors[0].files,
            [
                (PathBuf::from("/kit/src/lib.rs"), 3),
                (PathBuf::from("/w/exercises/src/ch02_b.rs"), 9)
            ]
        );
    }
}

#[cfg(test)]
mod builds {
    //! Real builds of a fake exercises crate.

    use super::*;
    use crate::evaluate::learner_crate;
    use crate::gencrate::Module;
    use crate::testing::*;

    fn build_scratch(s: &Scratch) -> Built {
        let ws = s.ws();
        let modules = ["ch99_fake", "ch99_pair"]
            .map(|name| Module {
                name: name.into(),
                file: ws.exercise_file(name),
                shown: format!("exercises/src/{name}.rs"),
            })
            .to_vec();
        let names = ["ch99_fake".to_string(), "ch99_pair".to_string()];
        let spec = learner_crate(&ws, &names, modules).unwrap();
        build(&spec, ws.build_dir(), &BTreeSet::new(), &|_| {}).unwrap()
    }

    #[test]
    fn broken_modules_are_left_out_and_named_and_the_rest_builds() {
        let s = healthy();
        // A syntax error stops rustc before it looks at types, so the type
        // error in the other file only shows once the first is left out.
        s.write(
            "exercises/src/ch99_fake.rs",
            &stub().replace("todo!(\"ch99\")", "let x: u32 = \"no\"; x"),
        );
        s.write("exercises/src/ch99_pair.rs", &pair("1 +", "2"));
        let built = build_scratch(&s);
        assert!(built.executable.is_some(), "{built:?}");
        assert_eq!(built.failure, None);
        let names: Vec<&String> = built.broken.keys().collect();
        assert_eq!(names, ["ch99_fake", "ch99_pair"]);
        let fake = &built.broken["ch99_fake"];
        assert_eq!(
            fake.location.as_deref(),
            Some("exercises/src/ch99_fake.rs:5:18")
        );
        assert!(
            fake.messages.contains("mismatched types"),
            "{}",
            fake.messages
        );
        assert!(
            !fake.messages.contains(s.root.to_str().unwrap()),
            "{}",
            fake.messages
        );
        let broken_pair = &built.broken["ch99_pair"];
        assert!(
            broken_pair
                .location
                .as_deref()
                .unwrap()
                .starts_with("exercises/src/ch99_pair.rs:"),
            "{broken_pair:?}"
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_blamed_on_its_module() {
        let s = healthy();
        std::fs::write(
            s.root.join("exercises/src/ch99_pair.rs"),
            b"pub fn f() {}\n\xff\xfe\n",
        )
        .unwrap();
        let built = build_scratch(&s);
        assert!(built.executable.is_some(), "{built:?}");
        assert_eq!(built.broken.keys().collect::<Vec<_>>(), ["ch99_pair"]);
    }

    #[test]
    fn a_problem_outside_the_exercises_is_a_failure_of_the_build() {
        let s = healthy();
        s.write("exercises/src/lib.rs", "//! Exercises.\ncompile_error!(\"the prelude is broken\");\npub mod ch99_fake;\npub mod ch99_pair;\n");
        let built = build_scratch(&s);
        assert!(built.executable.is_none());
        assert!(built.broken.is_empty(), "{built:?}");
        assert!(built.failure.unwrap().contains("the prelude is broken"));
    }
}
