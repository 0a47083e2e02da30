//! `ch12-reactor`: a small reactor of our own (epoll, tokens from a
//! generation slab, handlers, timers, a waker, signalfd shutdown) and a
//! Redis-protocol key-value server on it: the engine (`resp`, `store`,
//! `session`: the protocol and the commands, no system calls) and the
//! server (`server`: every system call and the clock).

pub mod reactor;
pub mod resp;
pub mod server;
pub mod session;
pub mod store;

#[cfg(test)]
mod alloc_tests;
