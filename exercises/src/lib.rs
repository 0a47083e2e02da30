//! The exercises: one file per exercise, `chNN_topic.rs`, each with its
//! task on top, `// TODO:` where to edit, and its tests at the bottom.
//! Start with `cargo lab`; check one with `cargo lab check EXERCISE`.
//!
//! The stubs leave parameters, imports and helpers unused until you fill
//! them in, so those warnings are switched off here (and clippy's advice to
//! turn an untouched `&mut Vec` into a slice).
#![allow(
    unused_imports,
    unused_variables,
    unused_mut,
    dead_code,
    clippy::ptr_arg
)]
pub mod ch01_thread_per_client;
pub mod ch01_write_all;
pub mod ch02_set_nonblocking;
pub mod ch02_try_read;
pub mod ch03_fd_limit;
pub mod ch03_select_readable;
pub mod ch04_classify_revents;
pub mod ch04_poll_loop;
pub mod ch05_fdinfo;
pub mod ch05_registry;
pub mod ch05_wait_eintr;
pub mod ch06_connection;
pub mod ch07_accept_loop;
pub mod ch07_drain;
pub mod ch07_fair_reader;
pub mod ch08_accept_worker;
pub mod ch08_oneshot_pool;
pub mod ch09_nest_registry;
pub mod ch09_sub_loop;
pub mod ch10_conn_table;
pub mod ch10_spare_accept;
pub mod ch11_deadlines;
pub mod ch11_signals;
pub mod ch11_waker;
pub mod ch12_resp_parser;
pub mod ch12_timer_heap;
