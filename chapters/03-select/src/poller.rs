//! One multiplexer interface, many backends (like Redis's `ae.c` over
//! `ae_select.c`, `ae_poll.c`, `ae_epoll.c`).
//!
//! The echo server loop is written once against [`Poller`]; chapter 03 gives
//! it a `select` backend, chapter 04 a `poll` backend, chapter 05 an `epoll`
//! backend. Only the backend changes, so the cost of each call is the only
//! difference a benchmark can see.
//!
//! A registration is a raw descriptor number plus a [`Token`]. As with the C
//! calls, the caller keeps the descriptor open until it has called
//! [`Poller::delete`]: a backend may keep the number and hand it to the
//! kernel on every wait.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// What the caller calls a registered descriptor (a connection id, an index
/// into a slab). Events carry the token, never the raw fd, so a number the
/// kernel reuses cannot be mistaken for the old connection (like mio's
/// `Token`, and like the `data` field of `struct epoll_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub usize);

/// A map from [`Token`]s to what they stand for, e.g. the server's
/// connections. A hash map finds an entry in a few steps however many there
/// are (a `BTreeMap` makes about ten comparisons per lookup among 1,000, on
/// every event).
pub type TokenMap<V> = HashMap<Token, V, BuildHasherDefault<TokenHasher>>;

/// The hasher of a [`TokenMap`]. Tokens are numbers the program hands out
/// itself, never keys chosen by a client, so the standard hasher's defence
/// against chosen keys (SipHash) buys nothing here. One multiplication by
/// 2^64 / golden ratio spreads consecutive numbers over the table
/// (Fibonacci hashing).
#[derive(Default)]
pub struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    /// Anything but a `usize` (not used by `Token`): byte by byte.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

/// Which readiness a registration asks about.
///
/// Every backend here is level-triggered: a condition asked for is reported
/// on every wait for as long as it is true. So ask only for what you will
/// act on now. A registration whose condition stays true while the caller
/// ignores it (READABLE on a connection it has stopped reading, WRITABLE
/// with nothing to send) wakes the loop on every wait: 100% CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
}

impl Interest {
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };
    pub const BOTH: Interest = Interest {
        readable: true,
        writable: true,
    };
    /// Registered, but asking for nothing: only hang-ups and errors, which
    /// poll and epoll report unasked (a server uses it to stop accepting
    /// while it is out of descriptors).
    pub const NONE: Interest = Interest {
        readable: false,
        writable: false,
    };
}

/// One ready descriptor, as a backend reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub token: Token,
    /// A read will not block: data, end of file, or a pending connection.
    pub readable: bool,
    /// A write will not block.
    pub writable: bool,
    /// The peer hung up (POLLHUP / EPOLLHUP). select has no such set: there,
    /// a hang-up shows as `readable` and the read returns 0.
    pub hangup: bool,
    /// An error is pending on the socket (POLLERR / EPOLLERR).
    pub error: bool,
}

// ANCHOR: trait
/// The interface every backend implements: add, modify, delete, wait.
pub trait Poller {
    /// Starts watching `fd` for `interest`; its events will carry `token`.
    fn add(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Changes what a registered `fd` is watched for (and its token).
    fn modify(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Stops watching `fd`. Call it before closing `fd`.
    fn delete(&mut self, fd: RawFd) -> io::Result<()>;

    /// Waits until at least one registration is ready or `timeout` passes
    /// (`None`: no limit), then replaces the contents of `events` with the
    /// ready ones. An interrupted wait (EINTR) returns an error of kind
    /// `Interrupted`; the caller decides whether to retry.
    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>;

    /// The backend's name for logs and benchmarks: `select`, `poll`, `epoll`.
    fn name(&self) -> &'static str;
}
// ANCHOR_END: trait
