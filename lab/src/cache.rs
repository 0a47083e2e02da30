//! The results of earlier checks, saved in `target/lab/results.toml`, so
//! that `cargo lab` can show where a learner stands without building or
//! running anything when nothing changed.
//!
//! Each result is saved with the git blob id of the exercise file it was
//! found for, and the whole file with a fingerprint of everything else the
//! tests depend on (the chapter crates' sources, the manifests, the lab
//! itself): a change to the exercise file makes its result stale, a change
//! anywhere else makes every result stale.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::results::ExerciseResult;
use crate::workspace::{Workspace, list_dir};

/// Bumped when the saved format changes.
const VERSION: u32 = 1;

/// One saved result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The blob id of the exercise file the result is for.
    pub key: String,
    pub result: ExerciseResult,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    environment: String,
    #[serde(default)]
    exercise: BTreeMap<String, Entry>,
}

/// The saved results.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    file: CacheFile,
}

impl Cache {
    /// The saved results of `ws`, or none if they were saved for another
    /// environment (or cannot be read).
    pub fn load(ws: &Workspace) -> Cache {
        let path = ws.lab_dir().join("results.toml");
        let environment = environment(ws);
        let file = fs::read_to_string(&path)
            .ok()
            .and_then(|text| toml::from_str::<CacheFile>(&text).ok())
            .filter(|f| f.version == VERSION && f.environment == environment)
            .unwrap_or(CacheFile {
                version: VERSION,
                environment,
                exercise: BTreeMap::new(),
            });
        Cache { path, file }
    }

    /// The saved result of exercise `name` for the file with blob id `key`.
    pub fn get(&self, name: &str, key: &str) -> Option<&ExerciseResult> {
        self.file
            .exercise
            .get(name)
            .filter(|entry| entry.key == key)
            .map(|entry| &entry.result)
    }

    /// Remembers a result. Results that say nothing about the exercise
    /// (the build failed elsewhere) are not kept.
    pub fn put(&mut self, name: &str, key: &str, result: &ExerciseResult) {
        if matches!(result, ExerciseResult::NotBuilt { .. }) {
            self.file.exercise.remove(name);
            return;
        }
        let entry = Entry {
            key: key.to_string(),
            result: result.clone(),
        };
        self.file.exercise.insert(name.to_string(), entry);
    }

    /// Saves the results (a temporary file renamed over the old one, so a
    /// reader never sees half a file).
    pub fn save(&self) -> Result<(), LabError> {
        let text = toml::to_string(&self.file).map_err(|e| LabError::Toml {
            path: self.path.clone(),
            problem: e.to_string(),
        })?;
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
        }
        let temporary = self
            .path
            .with_extension(format!("toml.{}", std::process::id()));
        fs::write(&temporary, text).map_err(|e| LabError::io(&temporary, e))?;
        fs::rename(&temporary, &self.path).map_err(|e| LabError::io(&self.path, e))
    }
}

/// A fingerprint of everything but the exercise files that the results
/// depend on: size and modification time of the workspace manifests, the
/// exercises crate's manifest and `lib.rs`, every file of the chapter
/// crates but their tests, and the lab binary itself; and the time limit.
pub fn environment(ws: &Workspace) -> String {
    let root = ws.root();
    let mut files: Vec<PathBuf> = [
        "Cargo.toml",
        "Cargo.lock",
        "exercises/Cargo.toml",
        "exercises/src/lib.rs",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    for chapter in list_dir(&root.join("chapters")).unwrap_or_default() {
        files.push(chapter.join("Cargo.toml"));
        collect_files(&chapter.join("src"), &mut files);
    }
    if let Ok(exe) = std::env::current_exe() {
        files.push(exe);
    }
    let mut text = format!(
        "lab {} limit {:?}\n",
        env!("CARGO_PKG_VERSION"),
        crate::testrun::test_time_limit()
    );
    for file in files {
        let (len, modified) = fs::metadata(&file)
            .map(|m| {
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                (m.len(), modified)
            })
            .unwrap_or((0, 0));
        text.push_str(&format!("{} {len} {modified}\n", file.display()));
    }
    crate::git::blob_id(text.as_bytes())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for path in list_dir(dir).unwrap_or_default() {
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Outcome, TestResult};

    #[test]
    fn a_result_is_found_only_for_the_same_file() {
        let root = std::env::temp_dir().join(format!("lab-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let ws = Workspace::at(&root);
        let result = ExerciseResult::Tested {
            tests: vec![TestResult {
                name: "ch02_a::tests::x".into(),
                outcome: Outcome::Failed,
                message: Some("two\nlines".into()),
            }],
        };
        let mut cache = Cache::load(&ws);
        cache.put("ch02_a", "id1", &result);
        cache.put(
            "ch02_b",
            "id2",
            &ExerciseResult::NotBuilt {
                reason: "lab-kit does not compile".into(),
            },
        );
        cache.save().unwrap();

        let cache = Cache::load(&ws);
        assert_eq!(cache.get("ch02_a", "id1"), Some(&result));
        assert_eq!(cache.get("ch02_a", "other"), None);
        assert_eq!(cache.get("ch02_b", "id2"), None, "NotBuilt is not kept");

        // Another environment: nothing is found.
        fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
        assert_eq!(Cache::load(&ws).get("ch02_a", "id1"), None);
        let _ = fs::remove_dir_all(&root);
    }
}
