//! # Chapter 03, exercise 1: a read watcher that survives select
//!
//! Read first: the book's chapter 03 ("What select copies in and out" and
//! "Pitfalls"), the DESCRIPTION of
//! [select(2)](https://man7.org/linux/man-pages/man2/select.2.html) (nfds,
//! and how each set is modified in place on return), and "SELECT LAW" in
//! [select_tut(2)](https://man7.org/linux/man-pages/man2/select_tut.2.html).
//! Run `cargo run -p ch03-select -- overwritten` and `-- nfds` to see both
//! traps happen.
//!
//! A [`ReadWatcher`] remembers the descriptors it watches in an `FdSet`
//! (`registered`) and the highest of them. Write:
//! - [`ReadWatcher::nfds`]: the `nfds` argument for select;
//! - [`ReadWatcher::wait`]: ask select which watched descriptors are
//!   readable, and return their numbers in ascending order. It can be called
//!   again and again: every call must watch *every* registered descriptor.
//!
//! Use `nix::sys::select::select`; pass `None` for the write and except
//! sets. Return select's errors as they are (EINTR included: the caller
//! decides whether to retry).
//!
//! Check with `cargo lab check ch03_select_readable`.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use nix::sys::select::{FdSet, select};
use nix::sys::time::{TimeVal, TimeValLike};

/// Watches descriptors for reading with select(2).
pub struct ReadWatcher<'fd> {
    /// One bit per watched descriptor: the watcher's memory of what to watch.
    registered: FdSet<'fd>,
    /// The highest watched descriptor, if any.
    highest: Option<RawFd>,
}

impl<'fd> Default for ReadWatcher<'fd> {
    fn default() -> Self {
        ReadWatcher::new()
    }
}

impl<'fd> ReadWatcher<'fd> {
    /// Watches nothing yet.
    pub fn new() -> ReadWatcher<'fd> {
        ReadWatcher {
            registered: FdSet::new(),
            highest: None,
        }
    }

    /// Starts watching `fd`. (In this exercise every descriptor is below
    /// FD_SETSIZE; exercise ch03_fd_limit deals with the others.)
    pub fn add(&mut self, fd: BorrowedFd<'fd>) {
        self.registered.insert(fd);
        self.highest = self.highest.max(Some(fd.as_raw_fd()));
    }

    /// The `nfds` argument of select: how many bits of each set the kernel
    /// looks at (0 if nothing is watched).
    pub fn nfds(&self) -> i32 {
        // TODO: compute nfds from `self.highest`.
        todo!("ch03: nfds from the highest watched descriptor")
    }

    /// The watched descriptors that are readable, ascending. `timeout`:
    /// `None` waits until one is; `Some(Duration::ZERO)` only looks.
    pub fn wait(&mut self, timeout: Option<Duration>) -> nix::Result<Vec<RawFd>> {
        // TODO: call select with a read set, nfds and the timeout (a
        // TimeVal), then collect the descriptors left in the read set
        // (`FdSet::fds`). Every call must watch everything in `registered`.
        todo!("ch03: select the readable descriptors")
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use lab_kit::watchdog::within;

    /// A connected pair: `(watched, peer)`. Writing to `peer` makes
    /// `watched` readable.
    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().expect("socketpair")
    }

    fn send(peer: &UnixStream, byte: u8) {
        nix::unistd::write(peer, &[byte]).expect("write to the peer");
    }

    #[test]
    fn nfds_is_the_highest_descriptor_plus_one() {
        let (a, _pa) = pair();
        let (b, _pb) = pair();
        let mut watcher = ReadWatcher::new();
        assert_eq!(
            watcher.nfds(),
            0,
            "nothing watched: nfds should be 0 (select then looks at no bit at all)"
        );
        watcher.add(a.as_fd());
        watcher.add(b.as_fd());
        let highest = a.as_raw_fd().max(b.as_raw_fd());
        assert_eq!(
            watcher.nfds(),
            highest + 1,
            "watching fds {} and {}: nfds is a number of bits, not a descriptor. The kernel \
             looks at bits 0..nfds-1, so nfds must be the highest descriptor + 1 (select(2), \
             DESCRIPTION: nfds is the highest-numbered descriptor in any of the three sets, \
             plus 1)",
            a.as_raw_fd(),
            b.as_raw_fd()
        );
    }

    #[test]
    fn nothing_ready_means_an_empty_answer() {
        let (a, _pa) = pair();
        let mut watcher = ReadWatcher::new();
        watcher.add(a.as_fd());
        let ready = watcher.wait(Some(Duration::ZERO)).expect("select");
        assert_eq!(
            ready,
            Vec::<RawFd>::new(),
            "nobody wrote to fd {}, yet wait said it is readable: return the descriptors \
             select left in the set *after* the call, not the ones you put in",
            a.as_raw_fd()
        );
    }

    #[test]
    fn reports_the_readable_descriptor() {
        let (a, pa) = pair();
        let (b, _pb) = pair();
        let mut watcher = ReadWatcher::new();
        watcher.add(a.as_fd());
        watcher.add(b.as_fd());
        send(&pa, b'x');
        let ready = watcher.wait(Some(Duration::ZERO)).expect("select");
        assert_eq!(
            ready,
            vec![a.as_raw_fd()],
            "fd {} has a byte waiting and fd {} has none",
            a.as_raw_fd(),
            b.as_raw_fd()
        );
    }

    #[test]
    fn the_highest_descriptor_is_watched_too() {
        within(
            Duration::from_secs(3),
            "wait(None) to return at once: the highest watched descriptor already has a byte \
             waiting. If it blocks, select never looked at that descriptor: nfds must be the \
             highest descriptor + 1, not the highest",
            || {
                let (a, pa) = pair();
                let (b, pb) = pair();
                let (highest, highest_peer) = if a.as_raw_fd() > b.as_raw_fd() {
                    (&a, &pa)
                } else {
                    (&b, &pb)
                };
                let mut watcher = ReadWatcher::new();
                watcher.add(a.as_fd());
                watcher.add(b.as_fd());
                send(highest_peer, b'x');
                let ready = watcher.wait(None).expect("select");
                assert_eq!(ready, vec![highest.as_raw_fd()]);
            },
        );
    }

    #[test]
    fn a_second_wait_sees_what_became_ready_after_the_first() {
        let (a, pa) = pair();
        let (b, pb) = pair();
        let mut watcher = ReadWatcher::new();
        watcher.add(a.as_fd());
        watcher.add(b.as_fd());
        send(&pa, b'x');
        let first = watcher.wait(Some(Duration::ZERO)).expect("select");
        assert_eq!(
            first,
            vec![a.as_raw_fd()],
            "first wait: only fd {} has data",
            a.as_raw_fd()
        );
        // Nothing was read, so a is still readable; now b gets a byte too.
        send(&pb, b'y');
        let second = watcher.wait(Some(Duration::ZERO)).expect("select");
        let mut both = vec![a.as_raw_fd(), b.as_raw_fd()];
        both.sort();
        assert_eq!(
            second,
            both,
            "second wait: fds {} and {} both have data, but wait reported {:?}. select \
             overwrites the sets it is given: after the first call, `registered` held only fd \
             {}. Give select a copy (FdSet is Copy) and keep `registered` as it was \
             (select(2), DESCRIPTION: on return each set is modified in place; select_tut(2), \
             SELECT LAW)",
            a.as_raw_fd(),
            b.as_raw_fd(),
            second,
            a.as_raw_fd()
        );
    }
}
