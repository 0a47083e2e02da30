//! The lab tool's library: everything `cargo lab` does, shared with the
//! contract test (`lab/tests/contract.rs`) so that `cargo lab verify` and
//! `cargo test` check the same things the same way.
//!
//! - [`workspace`]: where things are; the exercises from `exercises/info.toml`.
//! - [`testrun`]: one nested `cargo test` run and the result of every test.
//! - [`book`]: the book's include directives and table of contents.
//! - [`contract`]: the maintainer's checks, each problem with its fix.
//! - [`progress`]: what a learner has solved, what comes next.
//! - [`suggest`]: "did you mean ...?" for mistyped names.

pub mod book;
pub mod contract;
pub mod error;
pub mod progress;
pub mod suggest;
pub mod testrun;
pub mod workspace;

pub use error::LabError;
pub use workspace::Workspace;
