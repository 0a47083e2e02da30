//! `ch12-reactor`: a small reactor of our own (epoll, tokens from a
//! generation slab, handlers, timers, a waker, signalfd shutdown) and a
//! Redis-protocol key-value server on it.

pub mod reactor;
pub mod server;
pub mod standin;
