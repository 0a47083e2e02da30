//! The crates the lab generates under `target/lab/`, so that it can build
//! the exercises one by one in spirit: a crate whose `lib.rs` includes each
//! exercise file by `#[path]`, so an exercise that does not compile can be
//! left out and the others still built and tested.
//!
//! Its `Cargo.toml` has the dependencies of `exercises/Cargo.toml` with
//! `workspace = true` resolved against the workspace's
//! `[workspace.dependencies]` and relative paths made absolute, and an empty
//! `[workspace]` table: the crate is a workspace of its own, so the real
//! workspace needs no change to build it. The workspace's `Cargo.lock` is
//! copied beside it, so it builds with the same versions and no network.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::error::LabError;
use crate::workspace::{Workspace, write_if_changed};

/// One module of a generated crate: an exercise file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The module name: `ch02_try_read`.
    pub name: String,
    /// Where its file is (absolute).
    pub file: PathBuf,
    /// How messages name the file: `exercises/src/ch02_try_read.rs`.
    pub shown: String,
}

/// A crate to generate and build.
#[derive(Debug, Clone)]
pub struct CrateSpec {
    /// Its package name, unique among the lab's generated crates.
    pub package: String,
    /// What it holds, for messages: `the exercises`, `the solutions`.
    pub what: String,
    /// Its directory (under `target/lab`).
    pub dir: PathBuf,
    /// Its `Cargo.toml`.
    pub manifest: String,
    /// Its `lib.rs` without the modules (the crate's docs and attributes).
    pub lib_prelude: String,
    /// The modules it may include.
    pub modules: Vec<Module>,
    /// The workspace's `Cargo.lock`, copied beside it.
    pub lock_file: PathBuf,
}

impl CrateSpec {
    /// A crate named `package` in `target/lab/PACKAGE`, holding `what`, from
    /// the text of a crate's `Cargo.toml` and `lib.rs` (found in
    /// `crate_dir`, which relative paths in its manifest are relative to).
    /// The `pub mod` lines of `lib.rs` for every name in `exercises` are
    /// the lab's to write: one for each of the `modules` it includes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ws: &Workspace,
        package: &str,
        what: &str,
        crate_dir: &Path,
        cargo_toml: &str,
        lib_rs: &str,
        exercises: &[String],
        modules: Vec<Module>,
    ) -> Result<CrateSpec, LabError> {
        let root_manifest = ws.root().join("Cargo.toml");
        let root_text =
            fs::read_to_string(&root_manifest).map_err(|e| LabError::io(&root_manifest, e))?;
        // Workspaces share the lab's build directory, where cargo names a
        // crate's artifacts by its name and version (not its path): a name
        // of its own per workspace keeps one from overwriting another's.
        let root_id = crate::git::blob_id(ws.root().display().to_string().as_bytes());
        let unique = format!("{package}-{}", &root_id[..8]);
        let manifest = generated_manifest(&unique, ws.root(), &root_text, crate_dir, cargo_toml)
            .map_err(|problem| LabError::Toml {
                path: crate_dir.join("Cargo.toml"),
                problem,
            })?;
        let names: BTreeSet<&str> = exercises
            .iter()
            .map(String::as_str)
            .chain(modules.iter().map(|m| m.name.as_str()))
            .collect();
        Ok(CrateSpec {
            package: unique,
            what: what.to_string(),
            dir: ws.lab_dir().join(package),
            manifest,
            lib_prelude: lib_prelude(lib_rs, &names, &crate_dir.join("src")),
            modules,
            lock_file: ws.root().join("Cargo.lock"),
        })
    }

    /// The generated `lib.rs` path.
    pub fn lib_file(&self) -> PathBuf {
        self.dir.join("lib.rs")
    }

    /// Writes the crate with the modules named in `include`, and returns for
    /// each of them the line of `lib.rs` that declares it.
    pub fn write(&self, include: &BTreeSet<String>) -> Result<Vec<(usize, String)>, LabError> {
        write_if_changed(&self.dir.join("Cargo.toml"), self.manifest.as_bytes())?;
        // Copy the lock file only when the workspace's changed: cargo
        // rewrites the copy (it adds this crate and drops what it does not
        // use), and the copy's own changes need no new resolution.
        if let Ok(lock) = fs::read(&self.lock_file) {
            let seen = self.dir.join("Cargo.lock.from");
            let lock_id = crate::git::blob_id(&lock);
            if fs::read_to_string(&seen).ok().as_deref() != Some(lock_id.as_str()) {
                write_if_changed(&self.dir.join("Cargo.lock"), &lock)?;
                write_if_changed(&seen, lock_id.as_bytes())?;
            }
        }

        let mut lib = self.lib_prelude.clone();
        if !lib.ends_with('\n') {
            lib.push('\n');
        }
        let mut lines = Vec::new();
        for module in self.modules.iter().filter(|m| include.contains(&m.name)) {
            let path = module.file.display().to_string();
            let _ = writeln!(lib, "#[path = {path:?}]");
            lines.push((lib.lines().count() + 1, module.name.clone()));
            let _ = writeln!(lib, "pub mod {};", module.name);
        }
        write_if_changed(&self.lib_file(), lib.as_bytes())?;
        Ok(lines)
    }
}

/// `lib_rs` without the lines `pub mod NAME;` of the modules in `names`;
/// any other `mod X;` gets a `#[path]` to `src_dir/X.rs`, where it was.
fn lib_prelude(lib_rs: &str, names: &BTreeSet<&str>, src_dir: &Path) -> String {
    let mut prelude = String::new();
    for line in lib_rs.lines() {
        let trimmed = line.trim();
        let declared = trimmed
            .strip_prefix("pub mod ")
            .or_else(|| trimmed.strip_prefix("mod "))
            .and_then(|rest| rest.strip_suffix(';'))
            .map(str::trim);
        match declared {
            Some(name) if names.contains(name) => continue,
            Some(name) => {
                let path = src_dir.join(format!("{name}.rs")).display().to_string();
                let _ = writeln!(prelude, "#[path = {path:?}]");
            }
            None => {}
        }
        prelude.push_str(line);
        prelude.push('\n');
    }
    prelude
}

/// The `Cargo.toml` of a generated crate, from the workspace root's manifest
/// and the original crate's.
fn generated_manifest(
    package: &str,
    root: &Path,
    root_text: &str,
    crate_dir: &Path,
    crate_text: &str,
) -> Result<String, String> {
    let root_toml: Table = toml::from_str(root_text).map_err(|e| e.to_string())?;
    let crate_toml: Table = toml::from_str(crate_text).map_err(|e| e.to_string())?;
    let workspace = root_toml.get("workspace").and_then(Value::as_table);
    let shared = workspace
        .and_then(|w| w.get("dependencies"))
        .and_then(Value::as_table);
    let edition = workspace
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("edition"))
        .and_then(Value::as_str)
        .unwrap_or("2021");

    let mut out = Table::new();
    let mut package_table = Table::new();
    package_table.insert("name".into(), package.into());
    package_table.insert("version".into(), "0.0.0".into());
    package_table.insert("edition".into(), edition.into());
    package_table.insert("publish".into(), false.into());
    out.insert("package".into(), package_table.into());
    let mut lib = Table::new();
    lib.insert("path".into(), "lib.rs".into());
    lib.insert("doctest".into(), false.into());
    out.insert("lib".into(), lib.into());
    out.insert("workspace".into(), Table::new().into());

    for section in ["dependencies", "dev-dependencies"] {
        let Some(deps) = crate_toml.get(section).and_then(Value::as_table) else {
            continue;
        };
        let mut resolved = Table::new();
        for (name, spec) in deps {
            resolved.insert(
                name.clone(),
                resolve_dependency(name, spec, shared, root, crate_dir)?,
            );
        }
        out.insert(section.into(), resolved.into());
    }
    let text = toml::to_string(&out).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Generated by `cargo lab` from {}: do not edit.\n{text}",
        crate_dir.join("Cargo.toml").display()
    ))
}

/// One dependency with `workspace = true` replaced by the workspace's
/// entry (its features added) and any `path` made absolute.
fn resolve_dependency(
    name: &str,
    spec: &Value,
    shared: Option<&Table>,
    root: &Path,
    crate_dir: &Path,
) -> Result<Value, String> {
    let as_table = |value: &Value| match value {
        Value::String(version) => {
            let mut t = Table::new();
            t.insert("version".into(), version.clone().into());
            t
        }
        Value::Table(t) => t.clone(),
        _ => Table::new(),
    };
    let mut own = as_table(spec);
    let inherits = own.get("workspace").and_then(Value::as_bool) == Some(true);
    let (mut result, base_dir) = if inherits {
        let entry = shared.and_then(|s| s.get(name)).ok_or_else(|| {
            format!("`{name}.workspace = true`, but [workspace.dependencies] has no `{name}`")
        })?;
        (as_table(entry), root)
    } else {
        (Table::new(), crate_dir)
    };
    own.remove("workspace");
    for (key, value) in own {
        if key == "features" {
            let mut features: Vec<Value> = result
                .get("features")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for feature in value.as_array().cloned().unwrap_or_default() {
                if !features.contains(&feature) {
                    features.push(feature);
                }
            }
            result.insert(key, features.into());
        } else {
            result.insert(key, value);
        }
    }
    if let Some(path) = result.get("path").and_then(Value::as_str) {
        let absolute = base_dir.join(path).display().to_string();
        result.insert("path".into(), absolute.into());
    }
    Ok(result.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = r#"
[workspace]
members = ["exercises"]
[workspace.package]
edition = "2024"
[workspace.dependencies]
nix = { version = "0.31.3", features = ["event"] }
anyhow = "1.0"
lab-kit = { path = "chapters/kit" }
"#;

    const CRATE: &str = r#"
[package]
name = "exercises"
edition.workspace = true
[dependencies]
lab-kit.workspace = true
nix = { workspace = true, features = ["poll"] }
anyhow.workspace = true
local = { path = "../local" }
"#;

    #[test]
    fn dependencies_are_resolved_and_paths_absolute() {
        let text = generated_manifest(
            "lab-exercises",
            Path::new("/w"),
            ROOT,
            Path::new("/w/exercises"),
            CRATE,
        )
        .unwrap();
        let table: Table = toml::from_str(&text).unwrap();
        assert_eq!(table["package"]["name"].as_str(), Some("lab-exercises"));
        assert_eq!(table["package"]["edition"].as_str(), Some("2024"));
        assert!(table["workspace"].as_table().unwrap().is_empty());
        let deps = table["dependencies"].as_table().unwrap();
        assert_eq!(deps["lab-kit"]["path"].as_str(), Some("/w/chapters/kit"));
        assert_eq!(
            deps["local"]["path"].as_str(),
            Some("/w/exercises/../local")
        );
        assert_eq!(deps["anyhow"]["version"].as_str(), Some("1.0"));
        let features: Vec<&str> = deps["nix"]["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(features, ["event", "poll"]);
    }

    #[test]
    fn an_unknown_workspace_dependency_is_explained() {
        let err = generated_manifest(
            "x",
            Path::new("/w"),
            "[workspace]\n",
            Path::new("/w/e"),
            "[dependencies]\nfoo.workspace = true\n",
        )
        .unwrap_err();
        assert!(
            err.contains("[workspace.dependencies] has no `foo`"),
            "{err}"
        );
    }

    #[test]
    fn the_prelude_keeps_everything_but_the_modules() {
        let names: BTreeSet<&str> = ["ch02_a", "ch02_b"].into();
        let prelude = lib_prelude(
            "//! Docs.\n#![allow(unused)]\npub mod ch02_a;\n  pub mod ch02_b;\nmod helpers;\n",
            &names,
            Path::new("/w/exercises/src"),
        );
        assert_eq!(
            prelude,
            "//! Docs.\n#![allow(unused)]\n#[path = \"/w/exercises/src/helpers.rs\"]\nmod helpers;\n"
        );
    }
}
