//! `exercises/shipped.toml`: the exercises crate as shipped, file by file,
//! as git blob ids. The learner's working copy changes as they solve
//! things (and they may even commit it), so the contract and
//! `cargo lab reset` never take the shipped files from the working tree or
//! from `HEAD`: they take them from this manifest.
//!
//! A file whose working copy still hashes to its id *is* the shipped file,
//! so it is read from disk; any other is read from git's object store
//! (`git cat-file blob ID`). Outside a git checkout only the first way
//! works, and the files the learner changed are reported as unavailable.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::git;
use crate::workspace::{Exercise, Workspace};

/// Where the manifest is, relative to the workspace root.
pub const PATH: &str = "exercises/shipped.toml";

const HEADER: &str = "\
# The exercises as shipped: each file of the exercises crate with its git
# blob id (what `git hash-object FILE` prints). The contract (`cargo test`)
# checks these versions, not your working copy, and `cargo lab reset`
# restores them. Maintainers: after changing an exercise, run
# `cargo lab verify --bless`, which checks the new versions and rewrites
# this file. Do not edit it by hand.
";

/// The manifest: paths relative to `exercises/` -> blob ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, String>,
}

/// The manifest path of an exercise: `src/ch02_try_read.rs`.
pub fn exercise_path(name: &str) -> String {
    format!("src/{name}.rs")
}

impl Manifest {
    /// Reads `exercises/shipped.toml`; `None` if there is none.
    pub fn load(ws: &Workspace) -> Result<Option<Manifest>, LabError> {
        let path = ws.root().join(PATH);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LabError::io(&path, e)),
        };
        toml::from_str(&text).map(Some).map_err(|e| LabError::Toml {
            path,
            problem: e.to_string(),
        })
    }

    /// The files a manifest must list for these exercises: the crate's
    /// `Cargo.toml`, `src/lib.rs` and one file per exercise.
    pub fn wanted_paths(exercises: &[Exercise]) -> Vec<String> {
        let mut paths = vec!["Cargo.toml".to_string(), "src/lib.rs".to_string()];
        paths.extend(exercises.iter().map(|e| exercise_path(&e.name)));
        paths
    }

    /// The manifest of the working tree as it is now (what `--bless` writes).
    pub fn of_working_tree(ws: &Workspace, exercises: &[Exercise]) -> Result<Manifest, LabError> {
        let mut files = BTreeMap::new();
        for path in Manifest::wanted_paths(exercises) {
            let file = ws.exercises_dir().join(&path);
            let bytes = fs::read(&file).map_err(|e| LabError::io(&file, e))?;
            files.insert(path, git::blob_id(&bytes));
        }
        Ok(Manifest { files })
    }

    /// The manifest as the text of `exercises/shipped.toml`.
    pub fn to_text(&self) -> String {
        let table = toml::to_string(self).unwrap_or_default();
        format!("{HEADER}\n{table}")
    }

    /// Writes `exercises/shipped.toml`.
    pub fn save(&self, ws: &Workspace) -> Result<(), LabError> {
        let path = ws.root().join(PATH);
        fs::write(&path, self.to_text()).map_err(|e| LabError::io(&path, e))
    }
}

/// One file of the crate as shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedFile {
    /// Its blob id.
    pub id: String,
    /// Its bytes, if they could be found.
    pub bytes: Result<Vec<u8>, String>,
    /// Whether the working copy is exactly this file.
    pub same_as_working: bool,
}

impl ShippedFile {
    /// The file as text (invalid UTF-8 replaced), if it was found.
    pub fn text(&self) -> Option<String> {
        self.bytes
            .as_ref()
            .ok()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// The files of the exercises crate in one version: as shipped (from the
/// manifest), or the working tree as a candidate (for `--bless`).
#[derive(Debug, Clone, Default)]
pub struct Shipped {
    /// Paths relative to `exercises/`.
    pub files: BTreeMap<String, ShippedFile>,
    /// Whether these are the working tree's files (the candidate for a new
    /// manifest) rather than the manifest's.
    pub candidate: bool,
}

impl Shipped {
    /// The files the manifest names, found on disk or in git.
    pub fn from_manifest(ws: &Workspace, manifest: &Manifest) -> Shipped {
        let mut checkout: Option<Result<(), String>> = None;
        let files = manifest
            .files
            .iter()
            .map(|(path, id)| {
                let working = fs::read(ws.exercises_dir().join(path)).ok();
                let same_as_working = working.as_deref().map(git::blob_id).as_ref() == Some(id);
                let bytes = match working {
                    Some(bytes) if same_as_working => Ok(bytes),
                    _ => {
                        let checkout = checkout.get_or_insert_with(|| git::is_checkout(ws.root()));
                        match checkout {
                            Ok(()) => git::blob(ws.root(), id),
                            Err(why) => Err(format!(
                                "{why}, and the working copy is not the shipped version"
                            )),
                        }
                    }
                };
                let file = ShippedFile {
                    id: id.clone(),
                    bytes,
                    same_as_working,
                };
                (path.clone(), file)
            })
            .collect();
        Shipped {
            files,
            candidate: false,
        }
    }

    /// The working tree's files, as the candidate for a new manifest.
    pub fn working_tree(ws: &Workspace, exercises: &[Exercise]) -> Shipped {
        let files = Manifest::wanted_paths(exercises)
            .into_iter()
            .map(|path| {
                let file = ws.exercises_dir().join(&path);
                let bytes = fs::read(&file).map_err(|e| format!("cannot read it: {e}"));
                let id = bytes.as_deref().map(git::blob_id).unwrap_or_default();
                let file = ShippedFile {
                    id,
                    bytes,
                    same_as_working: true,
                };
                (path, file)
            })
            .collect();
        Shipped {
            files,
            candidate: true,
        }
    }

    /// The text of `exercises/PATH` in this version.
    pub fn text(&self, path: &str) -> Option<String> {
        self.files.get(path).and_then(ShippedFile::text)
    }

    /// The text of exercise `name` in this version.
    pub fn exercise(&self, name: &str) -> Option<String> {
        self.text(&exercise_path(name))
    }

    /// The paths whose working copy differs from this version.
    pub fn changed_in_working_tree(&self) -> Vec<&str> {
        self.files
            .iter()
            .filter(|(_, f)| !f.same_as_working)
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// The files that could not be found, with why.
    pub fn unavailable(&self) -> Vec<(&str, &str)> {
        self.files
            .iter()
            .filter_map(|(p, f)| f.bytes.as_ref().err().map(|why| (p.as_str(), why.as_str())))
            .collect()
    }

    /// How to name this version in messages.
    pub fn label(&self) -> &'static str {
        if self.candidate {
            "as in your working tree"
        } else {
            "as shipped"
        }
    }
}
