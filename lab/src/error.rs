//! The ways the lab tool itself can fail (as opposed to an exercise failing
//! its tests, or not compiling, which is the normal state of things and not
//! an error).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// An error of the lab tool, with enough context to act on it.
#[derive(Debug)]
pub enum LabError {
    /// A file or directory could not be read or written.
    Io { path: PathBuf, source: io::Error },
    /// `exercises/info.toml` is not valid TOML or not in the expected shape.
    Info {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// A TOML file the lab reads (`Cargo.toml`, `exercises/shipped.toml`)
    /// is not in the expected shape.
    Toml { path: PathBuf, problem: String },
    /// A command (cargo, a test binary, git) could not be started.
    Spawn { command: String, source: io::Error },
    /// A command ran longer than its limit and was stopped.
    TimedOut { command: String, limit: Duration },
}

impl LabError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> LabError {
        LabError::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::Io { path, source } => write!(f, "cannot use {}: {source}", path.display()),
            LabError::Info { path, source } => write!(
                f,
                "{} is not in the expected shape: {source}\n\
                 Each exercise is a table:\n\
                 [[exercise]]\n\
                 name = \"ch02_set_nonblocking\"\n\
                 chapter = \"ch02\"\n\
                 hints = [\"a nudge\", \"the man page section\", \"\"\"\n\
                 a near-solution; lines indented by 4 spaces are code\n\
                 \"\"\"]",
                path.display()
            ),
            LabError::Toml { path, problem } => {
                write!(
                    f,
                    "{} is not in the expected shape: {problem}",
                    path.display()
                )
            }
            LabError::Spawn { command, source } => {
                write!(f, "could not start `{command}`: {source}")
            }
            LabError::TimedOut { command, limit } => write!(
                f,
                "`{command}` was still running after {} s, so it was stopped.\n\
                 Is another cargo holding the lock of the lab's target directory?",
                limit.as_secs()
            ),
        }
    }
}

impl std::error::Error for LabError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LabError::Io { source, .. } | LabError::Spawn { source, .. } => Some(source),
            LabError::Info { source, .. } => Some(source),
            LabError::Toml { .. } | LabError::TimedOut { .. } => None,
        }
    }
}
