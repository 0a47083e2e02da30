//! Chapter 04: poll(2), an array instead of bitmaps.
//!
//! - [`poll_poller`]: [`PollPoller`], the poll backend of chapter 03's
//!   [`Poller`](ch03_select::Poller) interface.
//!
//! The echo server loop is chapter 03's [`EchoServer`](ch03_select::EchoServer),
//! unchanged: only the backend differs.

pub mod poll_poller;

pub use poll_poller::PollPoller;
