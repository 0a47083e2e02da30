//! What the lab found out about an exercise: the result of each of its
//! tests, or why none ran. These are saved between runs (see
//! [`crate::cache`]), so they are plain data.

use serde::{Deserialize, Serialize};

/// The result of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Passed,
    Failed,
    Ignored,
    /// Still running after the lab's time limit: stopped.
    TimedOut,
}

/// One test, e.g. `ch02_set_nonblocking::tests::keeps_the_access_mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// The full test path.
    pub name: String,
    pub outcome: Outcome,
    /// For a failed or stopped test: what it printed and its panic message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl TestResult {
    /// The first segment of the test path: the exercise module.
    pub fn module(&self) -> &str {
        self.name.split("::").next().unwrap_or(&self.name)
    }

    /// The test path without the module and `tests::`: `keeps_the_access_mode`.
    pub fn short_name(&self) -> &str {
        let rest = self
            .name
            .split_once("::")
            .map_or(self.name.as_str(), |(_, rest)| rest);
        rest.strip_prefix("tests::").unwrap_or(rest)
    }

    /// The function name: the last segment of the path.
    pub fn function(&self) -> &str {
        self.name.rsplit("::").next().unwrap_or(&self.name)
    }
}

/// Everything the lab knows about one exercise after a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ExerciseResult {
    /// Built and run: each test's result, in the order the file has them.
    Tested { tests: Vec<TestResult> },
    /// The exercise's file does not compile (the others were still built).
    DoesNotCompile {
        /// `exercises/src/ch02_try_read.rs:36:18`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<String>,
        /// The compiler's messages about this file.
        messages: String,
    },
    /// The exercise's file is not there.
    Missing,
    /// Nothing could be built, for a reason outside the exercise files (a
    /// dependency that does not compile, cargo failing): the words.
    NotBuilt { reason: String },
}
