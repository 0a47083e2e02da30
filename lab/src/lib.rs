//! The lab tool's library: everything `cargo lab` does, shared with the
//! contract test (`lab/tests/contract.rs`) so that `cargo lab verify` and
//! `cargo test` check the same things the same way. One module per job:
//!
//! - [`workspace`]: where things are; the exercises from `exercises/info.toml`.
//! - [`manifest`] and [`git`]: the exercises as shipped (`exercises/shipped.toml`).
//! - [`source`]: an exercise file read as text (tests in order, "Read first:").
//! - [`gencrate`] and [`compile`]: the crate the lab builds the exercises in,
//!   leaving out those that do not compile.
//! - [`process`] and [`testrun`]: each test in its own process, with a time limit.
//! - [`results`], [`cache`] and [`evaluate`]: what is known about each
//!   exercise, saved between runs, checked again when its file changes.
//! - [`progress`]: solved or not, what is next, per chapter.
//! - [`hints`]: hints laid out for the terminal, code kept as code.
//! - [`contract`]: the maintainer's checks, each problem with its fix.
//! - [`commands`]: `cargo lab`, `check`, `hint`, `watch`, `reset`,
//!   `solution`, `verify`.
//! - [`book`], [`suggest`], [`error`]: the book's sources, "did you mean",
//!   the lab's own errors.

pub mod book;
pub mod cache;
pub mod commands;
pub mod compile;
pub mod contract;
pub mod error;
pub mod evaluate;
pub mod gencrate;
pub mod git;
pub mod hints;
pub mod manifest;
pub mod process;
pub mod progress;
pub mod results;
pub mod source;
pub mod suggest;
#[cfg(test)]
mod testing;
pub mod testrun;
pub mod workspace;

pub use error::LabError;
pub use workspace::Workspace;
