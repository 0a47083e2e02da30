//! Where things are: the workspace root, the lab's own directories under
//! `target/`, the chapters, the exercises listed in `exercises/info.toml`,
//! and the book pages.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::LabError;

/// The marker line above the tests of an exercise and of its solution.
/// Everything from this line to the end must be the same in both files.
pub const TESTS_MARKER: &str = "// ===== Tests: don't change anything below this line. =====";

/// The epoll-lab workspace on disk.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    build_dir: PathBuf,
}

/// One exercise as `exercises/info.toml` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Exercise {
    /// The module name, e.g. `ch02_set_nonblocking`.
    pub name: String,
    /// The chapter, e.g. `ch02`.
    pub chapter: String,
    /// A nudge, the man page section, a near-solution.
    pub hints: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct InfoFile {
    #[serde(default)]
    exercise: Vec<Exercise>,
}

/// A chapter crate `chapters/NN-topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chapter {
    /// `ch02`.
    pub id: String,
    /// `02-nonblocking-io`.
    pub dir_name: String,
}

impl Chapter {
    /// The package (and binary) name: `ch02-nonblocking-io`.
    pub fn package(&self) -> String {
        format!("ch{}", self.dir_name)
    }
}

impl Workspace {
    /// The workspace this `lab` binary was built from, whatever the current
    /// directory is, or the one `LAB_WORKSPACE` names (the lab's own tests
    /// run it on scratch copies). The exercises are compiled in
    /// `$CARGO_TARGET_DIR/lab/build` if that variable is set, else in
    /// `target/lab/build`.
    pub fn locate() -> Workspace {
        let root = match std::env::var_os("LAB_WORKSPACE") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let lab_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
                lab_dir.parent().unwrap_or(lab_dir).to_path_buf()
            }
        };
        let mut ws = Workspace::at(root);
        if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
            let dir = std::env::current_dir().unwrap_or_default().join(dir);
            ws.build_dir = dir.join("lab/build");
        }
        ws
    }

    /// A workspace rooted at `root` (tests use temporary ones).
    pub fn at(root: impl Into<PathBuf>) -> Workspace {
        let root = root.into();
        let build_dir = root.join("target/lab/build");
        Workspace { root, build_dir }
    }

    /// The same workspace, compiling in `dir` (tests share one warm
    /// directory between scratch workspaces).
    pub fn with_build_dir(mut self, dir: impl Into<PathBuf>) -> Workspace {
        self.build_dir = dir.into();
        self
    }

    /// The root directory (where the workspace `Cargo.toml` is).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `target/lab`: the lab's generated crates and saved results.
    pub fn lab_dir(&self) -> PathBuf {
        self.root.join("target/lab")
    }

    /// The cargo target directory of the lab's builds.
    pub fn build_dir(&self) -> &Path {
        &self.build_dir
    }

    /// `path` relative to the root, for messages (`exercises/src/x.rs`).
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// `exercises/`.
    pub fn exercises_dir(&self) -> PathBuf {
        self.root.join("exercises")
    }

    /// `exercises/info.toml`.
    pub fn info_toml(&self) -> PathBuf {
        self.root.join("exercises/info.toml")
    }

    /// `exercises/src/NAME.rs`.
    pub fn exercise_file(&self, name: &str) -> PathBuf {
        self.root.join("exercises/src").join(format!("{name}.rs"))
    }

    /// `solutions/src/NAME.rs`.
    pub fn solution_file(&self, name: &str) -> PathBuf {
        self.root.join("solutions/src").join(format!("{name}.rs"))
    }

    /// `book/src`.
    pub fn book_src(&self) -> PathBuf {
        self.root.join("book/src")
    }

    /// The exercises in the order a learner meets them (info.toml's order).
    pub fn exercises(&self) -> Result<Vec<Exercise>, LabError> {
        let path = self.info_toml();
        let text = fs::read_to_string(&path).map_err(|e| LabError::io(&path, e))?;
        parse_info(&text).map_err(|source| LabError::Info { path, source })
    }

    /// The chapter crates (`chapters/NN-*`, not `kit`), by number.
    pub fn chapters(&self) -> Result<Vec<Chapter>, LabError> {
        let dir = self.root.join("chapters");
        let mut chapters: Vec<Chapter> = list_dir(&dir)?
            .into_iter()
            .filter(|path| path.is_dir())
            .filter_map(|path| {
                let dir_name = path.file_name()?.to_str()?.to_string();
                let number = chapter_number(&dir_name)?;
                Some(Chapter {
                    id: format!("ch{number}"),
                    dir_name,
                })
            })
            .collect();
        chapters.sort_by(|a, b| a.dir_name.cmp(&b.dir_name));
        Ok(chapters)
    }

    /// The book page of chapter `id` (`ch02` -> `book/src/ch02-nonblocking-io.md`),
    /// if there is one.
    pub fn book_page(&self, id: &str) -> Result<Option<PathBuf>, LabError> {
        let prefix = format!("{id}-");
        Ok(list_dir(&self.book_src())?.into_iter().find(|path| {
            path.extension().is_some_and(|ext| ext == "md")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        }))
    }
}

/// Parses the text of `exercises/info.toml`.
pub fn parse_info(text: &str) -> Result<Vec<Exercise>, toml::de::Error> {
    Ok(toml::from_str::<InfoFile>(text)?.exercise)
}

/// `02` for `02-nonblocking-io`; `None` for `kit` or anything not `NN-...`.
pub fn chapter_number(dir_name: &str) -> Option<&str> {
    let (number, rest) = dir_name.split_once('-')?;
    (number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty())
        .then_some(number)
}

/// The entries of `dir`, sorted; an empty list if it does not exist.
pub fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, LabError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io(dir, e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(|e| LabError::io(dir, e))?.path());
    }
    paths.sort();
    Ok(paths)
}

/// Writes `contents` to `path` unless it already holds exactly that (so
/// cargo, which looks at modification times, sees no change), creating
/// the directory if needed.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<(), LabError> {
    if fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    }
    fs::write(path, contents).map_err(|e| LabError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parses_in_order() {
        let text = r#"
            # comment
            [[exercise]]
            name = "ch02_b"
            chapter = "ch02"
            hints = ["1", "2", """
3
    code
"""]

            [[exercise]]
            name = "ch02_a"
            chapter = "ch02"
            hints = []
        "#;
        let exercises = parse_info(text).unwrap();
        let names: Vec<&str> = exercises.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ch02_b", "ch02_a"]);
        assert_eq!(exercises[0].hints.len(), 3);
        assert_eq!(exercises[0].hints[2], "3\n    code\n");
    }

    #[test]
    fn an_empty_info_has_no_exercises() {
        assert!(parse_info("# nothing yet\n").unwrap().is_empty());
    }

    #[test]
    fn a_missing_field_is_an_error() {
        assert!(parse_info("[[exercise]]\nname = \"ch02_a\"\nhints = []\n").is_err());
    }

    #[test]
    fn chapter_numbers() {
        assert_eq!(chapter_number("02-nonblocking-io"), Some("02"));
        assert_eq!(chapter_number("kit"), None);
        assert_eq!(chapter_number("2-x"), None);
        assert_eq!(chapter_number("02-"), None);
    }
}
