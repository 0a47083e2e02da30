//! lab-kit: the toolkit every chapter of epoll-lab shares.
//!
//! - [`names`]: descriptors by name, so transcripts say `conn-1`, not `7`.
//! - [`trace`]: system calls that print one transcript line each, built from
//!   the real arguments and the real result, and count themselves.
//! - [`fixtures`]: socketpairs, pipes, a loopback listener, a regular file.
//! - [`watchdog`]: run something with a deadline; fail with a message that
//!   teaches instead of hanging.
//! - [`clients`]: echo clients for the servers' tests (many at once,
//!   half-close, reset).
//! - [`proc`]: the system call another thread sleeps in, from `/proc`, to act
//!   only once it really sleeps.
//! - [`cli`]: what every chapter's command line does alike (usage errors,
//!   `--addr`, bind errors with a hint, no backtraces).
//! - [`special`]: eventfd, timerfd and signalfd calls (and the signal
//!   calls around signalfd), tracing the values they read and write.
//! - [`transcript`] and [`server`]: helpers for the chapters' tests (run a
//!   scenario binary and format its output; start a `serve` process).
//!
//! Nothing chapter-specific lives here: a chapter's own ideas live in its crate.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "epoll-lab teaches Linux system calls (epoll, eventfd, /proc) and builds only on Linux. \
     WSL2 and Linux containers are fine."
);

pub mod cli;
pub mod clients;
pub mod epoll;
pub mod fixtures;
pub mod names;
pub mod proc;
pub mod server;
pub mod special;
pub mod trace;
pub mod transcript;
pub mod watchdog;

pub use names::{name, name_of};
pub use trace::note;
