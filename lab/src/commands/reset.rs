//! `cargo lab reset EXERCISE`: puts the exercise file back as shipped (the
//! version `exercises/shipped.toml` names, from git), keeping the learner's
//! file as a numbered backup in `exercises/backups/`.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::Lab;
use crate::manifest::{self, Manifest, Shipped, exercise_path};
use crate::workspace::Workspace;

pub fn run(lab: &Lab, name: &str) -> Result<ExitCode> {
    let exercise = match lab.exercise(name, "reset") {
        Ok(exercise) => exercise,
        Err(code) => return Ok(code),
    };
    let ws = &lab.ws;
    let Some(manifest) = Manifest::load(ws)? else {
        bail!(
            "{} is missing, so the lab does not know the shipped version",
            manifest::PATH
        );
    };
    let path = exercise_path(&exercise.name);
    let Some(id) = manifest.files.get(&path) else {
        bail!("{} has no entry for exercises/{path}", manifest::PATH);
    };
    let only = Manifest {
        files: [(path.clone(), id.clone())].into(),
    };
    let shipped = Shipped::from_manifest(ws, &only);
    let file = &shipped.files[&path];
    let target = ws.exercise_file(&exercise.name);
    if file.same_as_working {
        println!("{} is already as shipped: nothing to do.", ws.show(&target));
        return Ok(ExitCode::SUCCESS);
    }
    let bytes = match &file.bytes {
        Ok(bytes) => bytes,
        Err(why) => {
            eprintln!("Cannot restore {}: {why}.", ws.show(&target));
            eprintln!(
                "Your file is untouched. The shipped version is the file of that name in epoll-lab as you downloaded it."
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let backup = match fs::read(&target) {
        Ok(mine) => {
            let backup = backup_path(ws, &exercise.name);
            fs::create_dir_all(backup.parent().expect("has a parent"))
                .with_context(|| format!("creating {}", ws.show(&backup)))?;
            fs::write(&backup, mine).with_context(|| format!("writing {}", ws.show(&backup)))?;
            Some(backup)
        }
        Err(_) => None, // the file was deleted: nothing to keep
    };
    fs::write(&target, bytes).with_context(|| format!("writing {}", ws.show(&target)))?;
    println!("Restored {} as shipped.", ws.show(&target));
    if let Some(backup) = backup {
        println!("Your version is kept in {}.", ws.show(&backup));
    }
    println!("Start again with: cargo lab check {}", exercise.name);
    Ok(ExitCode::SUCCESS)
}

/// `exercises/backups/NAME-N.rs` with the first N not taken.
fn backup_path(ws: &Workspace, name: &str) -> PathBuf {
    let dir = ws.exercises_dir().join("backups");
    (1..)
        .map(|n| dir.join(format!("{name}-{n}.rs")))
        .find(|p| !p.exists())
        .expect("some number is free")
}
