//! Chapter 03: select(2), the first multiplexer.
//!
//! - [`poller`]: the [`Poller`](poller::Poller) interface every backend
//!   implements (select here, poll in chapter 04, epoll in chapter 05).
//! - [`select_poller`]: [`SelectPoller`], the select backend.
//! - [`echo`]: [`EchoServer`], the echo server loop written once against
//!   `Poller`, reused unchanged by chapters 04 and 06.
//! - [`traced`]: Poller calls that print a transcript line, for scenarios.

pub mod echo;
pub mod poller;
pub mod select_poller;
pub mod traced;

pub use echo::EchoServer;
pub use poller::{Event, Interest, Poller, Token, TokenMap};
pub use select_poller::{FdTooHigh, SelectPoller};
