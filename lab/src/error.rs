//! The ways the lab tool itself can fail (as opposed to an exercise failing
//! its tests, which is the normal state of things and not an error).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// An error of the lab tool, with enough context to act on it.
#[derive(Debug)]
pub enum LabError {
    /// A file or directory could not be read.
    Io { path: PathBuf, source: io::Error },
    /// `exercises/info.toml` is not valid TOML or not in the expected shape.
    Info {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// The nested `cargo test` could not be started.
    Spawn { command: String, source: io::Error },
    /// The nested `cargo test` ran longer than its limit and was stopped.
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
            LabError::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            LabError::Info { path, source } => write!(
                f,
                "{} is not in the expected shape: {source}\n\
                 Each exercise is a table:\n\
                 [[exercise]]\n\
                 name = \"ch02_set_nonblocking\"\n\
                 chapter = \"ch02\"\n\
                 hints = [\"a nudge\", \"the man page section\", \"a near-solution\"]",
                path.display()
            ),
            LabError::Spawn { command, source } => {
                write!(f, "could not start `{command}`: {source}")
            }
            LabError::TimedOut { command, limit } => write!(
                f,
                "`{command}` was still running after {}, so it was stopped.\n\
                 A test is probably blocked forever (a blocking read that never returns?).\n\
                 Run it yourself to see which one: {command}",
                if limit.as_secs() >= 120 {
                    format!("{} minutes", limit.as_secs() / 60)
                } else {
                    format!("{} seconds", limit.as_secs())
                }
            ),
        }
    }
}

impl std::error::Error for LabError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LabError::Io { source, .. } | LabError::Spawn { source, .. } => Some(source),
            LabError::Info { source, .. } => Some(source),
            LabError::TimedOut { .. } => None,
        }
    }
}
