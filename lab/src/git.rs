//! The two things the lab asks git: is this workspace a git checkout, and
//! what are the bytes of a blob (a file as some commit had it).

use std::path::Path;
use std::process::{Command, Stdio};

/// The git blob id of `bytes`: what `git hash-object FILE` prints, the
/// SHA-1 of `blob LEN\0` followed by the bytes.
pub fn blob_id(bytes: &[u8]) -> String {
    let mut hasher = sha1_smol::Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hasher.digest().to_string()
}

/// Whether `root` is the top directory of a git checkout (and not merely
/// a directory inside some other repository), with git installed.
pub fn is_checkout(root: &Path) -> Result<(), String> {
    let output = Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("git could not be started ({e})"))?;
    if !output.status.success() {
        return Err("this is not a git checkout".to_string());
    }
    let top = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(Path::new(&top), root) {
        Ok(())
    } else {
        Err(format!(
            "this is not a git checkout of its own (git's top directory is {top})"
        ))
    }
}

/// The bytes of blob `id` from the repository at `root`.
pub fn blob(root: &Path, id: &str) -> Result<Vec<u8>, String> {
    let output = Command::new("git")
        .args(["cat-file", "blob", id])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("git could not be started ({e})"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!(
            "git has no blob {id} ({})",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_are_gits() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // The empty blob, well known to git.
        assert_eq!(blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }

    #[test]
    fn a_temporary_directory_is_not_a_checkout() {
        let dir = std::env::temp_dir().join(format!("lab-git-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(is_checkout(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
