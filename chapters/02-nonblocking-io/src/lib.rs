//! Chapter 02, non-blocking I/O: `O_NONBLOCK` set with `fcntl`, and a read
//! that says "nothing yet" (`EAGAIN`) instead of sleeping.
//!
//! Later chapters reuse [`set_nonblocking`] for every socket they watch and
//! [`try_read`] to tell "no data yet" from "the peer is gone". Both go
//! through [`lab_kit::trace`]: a scenario that enabled tracing shows each
//! call, a server that did not stays silent.

use std::os::fd::AsFd;

use lab_kit::trace;
use nix::errno::Errno;
use nix::fcntl::OFlag;

// ANCHOR: set_nonblocking
/// Turns on `O_NONBLOCK` for `fd` and keeps its other status flags
/// ([fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html),
/// "File status flags").
///
/// `F_SETFL` *replaces* the status flags (`O_APPEND`, `O_NONBLOCK`, ...), so
/// it is given the current flags, read with `F_GETFL`, plus `O_NONBLOCK`.
/// The flags live in the open file description, which every `dup` of this
/// descriptor (and a forked child's copy) shares.
pub fn set_nonblocking(fd: impl AsFd) -> nix::Result<()> {
    let flags = trace::get_flags(&fd)?;
    trace::set_flags(&fd, flags | OFlag::O_NONBLOCK)
}
// ANCHOR_END: set_nonblocking

// ANCHOR: try_read
/// What one read of a non-blocking descriptor found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes were read into the buffer (never 0).
    Data(usize),
    /// Nothing to read *yet* (`EAGAIN`): the peer may still send.
    WouldBlock,
    /// End of file: the peer closed or shut down its side; nothing will come.
    Closed,
}

/// Reads once from a non-blocking `fd`
/// ([read(2)](https://man7.org/linux/man-pages/man2/read.2.html)), telling
/// the three answers apart. `EAGAIN` is not an error and not end of file:
/// the kernel returns it instead of putting the caller to sleep on the
/// socket's wait queue. `EINTR` (a signal handler installed without
/// `SA_RESTART` interrupted the call) is retried; any other error is returned.
///
/// An empty `buf` would make read return 0 even with data queued, so
/// it must not be empty.
pub fn try_read(fd: impl AsFd, buf: &mut [u8]) -> nix::Result<ReadOutcome> {
    assert!(!buf.is_empty(), "try_read needs a non-empty buffer");
    loop {
        return match trace::read(&fd, buf) {
            Ok(0) => Ok(ReadOutcome::Closed),
            Ok(n) => Ok(ReadOutcome::Data(n)),
            // EWOULDBLOCK is the same number as EAGAIN on Linux.
            Err(Errno::EAGAIN) => Ok(ReadOutcome::WouldBlock),
            Err(Errno::EINTR) => continue,
            Err(e) => Err(e),
        };
    }
}
// ANCHOR_END: try_read
