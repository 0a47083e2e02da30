//! Chapter 13: scaling, measured. Does the cost of a wait depend on how many
//! descriptors are watched, or on how many are ready?
//!
//! - [`waitbench`]: one `select`, `poll` and `epoll_wait` call with exactly
//!   one of N watched descriptors ready, as N grows, against two yardsticks
//!   (`epoll_ctl` ADD+DEL, and `getppid` as the floor); [`watched`] makes
//!   the N descriptors, with their peers kept in a helper process.
//! - [`dispatch`]: libevent's `bench.c` chain of tokens, on chapters 03-05's
//!   backends: the time per dispatched event of an event loop.
//! - [`results`] and [`chart`]: a run as a Markdown table and an SVG chart.
//! - [`compare`]: the same run next to the C measurement in perf-reference.
//! - [`machine`]: the CPU, cores, kernel, date and load a run states.

pub mod chart;
pub mod compare;
pub mod dispatch;
pub mod machine;
pub mod results;
pub mod waitbench;
pub mod watched;
