//! Chapter 05: the epoll API, and an epoll backend for the chapters' one
//! multiplexer interface ([`ch03_select::poller::Poller`]).
//!
//! The scenarios in `main.rs` show the three calls and every `epoll_ctl`
//! error; this library is what later chapters reuse: [`EpollPoller`], the
//! backend the echo server of chapter 06 runs on.

pub mod backend;

pub use backend::EpollPoller;
