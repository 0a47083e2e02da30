//! The solutions: the same files as `exercises/`, solved. The tests in each
//! file are the exercise's tests, word for word (`cargo test` checks that).
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
