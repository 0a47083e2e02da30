//! The select backend of [`Poller`]: [`SelectPoller`].
//!
//! select(2) takes three bitmaps (`fd_set`s: read, write, except) and the
//! number of bits to look at, `nfds`. It *overwrites* the bitmaps with the
//! answer, so the backend keeps its registrations in its own table and
//! rebuilds the bitmaps from it before every call.
//! See [select(2)](https://man7.org/linux/man-pages/man2/select.2.html) and
//! [select_tut(2)](https://man7.org/linux/man-pages/man2/select_tut.2.html).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::select::{FD_SETSIZE, FdSet};

use crate::poller::{Event, Interest, Poller, Token};

/// The error for a descriptor that an `fd_set` has no bit for: `fd` is
/// `FD_SETSIZE` (1024) or more.
///
/// `FD_SETSIZE` is the size of the C library's `fd_set` type (and of nix's
/// `FdSet`), not a limit of the kernel: select(2), BUGS, "The Linux kernel
/// imposes no fixed limit, but the glibc implementation makes fd_set a
/// fixed-size type". Setting bit 1024 of a 1024-bit set would write past its
/// end, which is why nix's `FdSet::insert` panics on it; code that can meet
/// such numbers (any server) checks first and returns this error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdTooHigh {
    /// The descriptor number that was refused.
    pub fd: RawFd,
}

impl fmt::Display for FdTooHigh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fd {} is not below FD_SETSIZE ({FD_SETSIZE}): the fd_set type has no bit for it \
             (poll and epoll take any descriptor number)",
            self.fd
        )
    }
}

impl std::error::Error for FdTooHigh {}

impl From<FdTooHigh> for io::Error {
    fn from(e: FdTooHigh) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// Checks that `fd` has a bit in an `fd_set` (`0 <= fd < FD_SETSIZE`).
pub fn check_fd(fd: RawFd) -> Result<(), FdTooHigh> {
    match usize::try_from(fd) {
        Ok(n) if n < FD_SETSIZE => Ok(()),
        _ => Err(FdTooHigh { fd }),
    }
}

/// A [`Poller`] over [select(2)](https://man7.org/linux/man-pages/man2/select.2.html).
///
/// Its registrations live in a table (descriptor number -> token, interest);
/// every [`wait`](Poller::wait) builds a read set and a write set from that
/// table, computes `nfds`, calls select, and turns the bits the kernel left
/// set into [`Event`]s.
#[derive(Debug, Default)]
pub struct SelectPoller {
    registered: BTreeMap<RawFd, (Token, Interest)>,
}

impl SelectPoller {
    /// An empty poller. select keeps no state in the kernel between calls,
    /// so unlike epoll there is nothing to create.
    pub fn new() -> SelectPoller {
        SelectPoller::default()
    }
}

impl Poller for SelectPoller {
    // ANCHOR: add
    fn add(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        // Refuse here, where the caller can still close the descriptor and
        // go on; nix's FdSet::insert would panic later, inside wait.
        check_fd(fd)?;
        if self.registered.contains_key(&fd) {
            // Like epoll_ctl's EEXIST, so every backend fails the same way.
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        self.registered.insert(fd, (token, interest));
        Ok(())
    }
    // ANCHOR_END: add

    fn modify(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        match self.registered.get_mut(&fd) {
            Some(entry) => {
                *entry = (token, interest);
                Ok(())
            }
            None => Err(not_registered(fd)),
        }
    }

    fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        match self.registered.remove(&fd) {
            Some(_) => Ok(()),
            None => Err(not_registered(fd)),
        }
    }

    // ANCHOR: wait
    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // select overwrites the sets it is given with its answer, so they
        // are built afresh from the table on every call. A descriptor goes
        // only into the sets the caller asked for now: select reports the
        // state at the time of the call, so a descriptor left in a set whose
        // condition the caller ignores would end every select at once.
        let mut read = FdSet::new();
        let mut write = FdSet::new();
        let mut highest = -1;
        for (&fd, &(_, interest)) in &self.registered {
            // SAFETY: the Poller contract: a registered descriptor stays open
            // until the caller has called `delete`, and these borrows end
            // with this call.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            if interest.readable {
                read.insert(borrowed);
            }
            if interest.writable {
                write.insert(borrowed);
            }
            if interest.readable || interest.writable {
                highest = highest.max(fd);
            }
        }
        // nfds is a count of bits, not a descriptor: the kernel looks at
        // bits 0..nfds, so the highest descriptor needs nfds = highest + 1.
        let nfds = highest + 1;
        match lab_kit::trace::select(nfds, Some(&mut read), Some(&mut write), timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Err(io::Error::from(Errno::EINTR)),
            Err(e) => return Err(e.into()),
        }
        // The kernel cleared every bit that is not ready. select has no
        // hang-up or error set: a hang-up or an error makes the descriptor
        // readable (the read returns 0 or the error), so `hangup` and
        // `error` stay false here.
        for (&fd, &(token, _)) in &self.registered {
            if fd > highest {
                continue;
            }
            // SAFETY: as above, the descriptor is registered, hence open.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            let readable = read.contains(borrowed);
            let writable = write.contains(borrowed);
            if readable || writable {
                events.push(Event {
                    token,
                    readable,
                    writable,
                    hangup: false,
                    error: false,
                });
            }
        }
        Ok(())
    }
    // ANCHOR_END: wait

    fn name(&self) -> &'static str {
        "select"
    }
}

fn not_registered(fd: RawFd) -> io::Error {
    // Like epoll_ctl's ENOENT.
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}
