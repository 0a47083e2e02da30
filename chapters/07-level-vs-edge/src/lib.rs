//! Chapter 07: level-triggered vs edge-triggered epoll.
//!
//! The two read loops every edge-triggered program needs, written once and
//! used by the scenarios: [`drain`] (read until EAGAIN) and [`accept_all`]
//! (accept until EAGAIN). Both go through `lab_kit::trace`, so a scenario
//! shows every call they make, including the last one that returns EAGAIN.

use std::os::fd::{AsFd, OwnedFd};

use lab_kit::trace;
use nix::errno::Errno;

/// Level-triggered or edge-triggered: the one flag this chapter is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reported on every wait while the condition holds (the default):
    /// after a report, the wait puts the entry back on the ready list.
    Level,
    /// Reported after the file signals something new (`EPOLLET`), with the
    /// state at wait time; after a report the entry stays off the ready
    /// list until the file's next wake-up (or an ADD/MOD that finds it ready).
    Edge,
}

impl Mode {
    /// `flags`, plus `EPOLLET` in edge mode.
    pub fn flags(self, flags: nix::sys::epoll::EpollFlags) -> nix::sys::epoll::EpollFlags {
        match self {
            Mode::Level => flags,
            Mode::Edge => flags | nix::sys::epoll::EpollFlags::EPOLLET,
        }
    }
}

/// What [`drain`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Drained {
    /// Bytes read.
    pub bytes: usize,
    /// The peer closed its side (a read returned 0).
    pub eof: bool,
}

// ANCHOR: drain
/// Reads `fd` until EAGAIN (or end of file), `chunk` bytes at a time: the
/// read loop edge-triggered mode needs. Under EPOLLET the kernel reports
/// readiness once per new arrival; whatever is left unread gets no second
/// event, so stopping before EAGAIN stalls the connection.
///
/// `fd` must be non-blocking: the loop's last read is the one that finds
/// nothing, and on a blocking descriptor that read waits forever.
pub fn drain(fd: impl AsFd, chunk: usize, mut keep: impl FnMut(&[u8])) -> nix::Result<Drained> {
    let mut buf = vec![0u8; chunk];
    let mut drained = Drained::default();
    loop {
        match trace::read(&fd, &mut buf) {
            Ok(0) => {
                drained.eof = true;
                return Ok(drained);
            }
            Ok(n) => {
                drained.bytes += n;
                keep(&buf[..n]);
            }
            // Empty for now: the next new data will fire a new event.
            Err(Errno::EAGAIN) => return Ok(drained),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
// ANCHOR_END: drain

// ANCHOR: accept_all
/// Accepts every connection in the listener's queue, naming them
/// `conn-N`, until EAGAIN. Under EPOLLET three connections that arrived
/// before one wait make *one* event: accepting only one strands the others
/// until a fourth client comes.
pub fn accept_all(listener: impl AsFd, first_id: usize) -> nix::Result<Vec<OwnedFd>> {
    let mut accepted = Vec::new();
    loop {
        let name = format!("conn-{}", first_id + accepted.len());
        match trace::accept(&listener, &name) {
            Ok(conn) => accepted.push(conn),
            Err(Errno::EAGAIN) => return Ok(accepted),
            // The client gave up before we got to it: go on with the next.
            Err(Errno::ECONNABORTED) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
// ANCHOR_END: accept_all
