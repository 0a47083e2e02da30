//! # Chapter 04, exercise 1: what did poll say?
//!
//! Read first: the book's chapter 04 ("events in, revents out",
//! "Hang-ups nobody asked for", "A closed descriptor: POLLNVAL, not EBADF"
//! and "Pitfalls").
//!
//! Then, in [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html),
//! the description of `revents` and of POLLERR, POLLHUP and POLLNVAL ("This
//! bit is always returned; it is ignored in events" for POLLERR/POLLHUP).
//! Run `cargo run -p ch04-poll -- revents`, `-- hangup` and `-- closed-fd`.
//!
//! After a poll call, each `struct pollfd` holds two masks: `events`, the
//! question you asked, and `revents`, the kernel's answer. Write
//! [`classify`]: turn one entry's answer into a [`Readiness`], each field
//! from its own flag and only from it (POLLHUP alone does not make an entry
//! readable, and POLLNVAL is `not_open`, not `error`).
//!
//! Check with `cargo lab check ch04_classify_revents`.

use nix::poll::{PollFd, PollFlags};

/// What poll reported for one descriptor. All false: nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// POLLIN: a read will not block (data, or end of file).
    pub readable: bool,
    /// POLLOUT: a write will not block.
    pub writable: bool,
    /// POLLHUP: the other end is gone (reported even if not asked).
    pub hung_up: bool,
    /// POLLERR: an error is pending (reported even if not asked).
    pub error: bool,
    /// POLLNVAL: the number in the entry is not an open descriptor (it was
    /// closed, or never opened). Reported even if not asked.
    pub not_open: bool,
}

/// The kernel's answer for one entry, read from `revents` (never from
/// `events`, which is only the question).
pub fn classify(pollfd: &PollFd) -> Readiness {
    // revents() is None only for bits nix has no name for.
    let revents = pollfd.revents().unwrap_or(PollFlags::empty());
    Readiness {
        readable: revents.contains(PollFlags::POLLIN),
        writable: revents.contains(PollFlags::POLLOUT),
        hung_up: revents.contains(PollFlags::POLLHUP),
        error: revents.contains(PollFlags::POLLERR),
        not_open: revents.contains(PollFlags::POLLNVAL),
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, BorrowedFd, RawFd};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use lab_kit::watchdog::within;
    use nix::poll::{PollTimeout, poll};

    /// classify makes no system call: microseconds.
    const LIMIT: Duration = Duration::from_secs(2);

    const NO_LOOP: &str = "poll with a zero timeout, then classify, to return at once \
                           (classify only reads a mask: no loop, no call)";

    /// Polls one entry with timeout 0 and classifies it.
    fn poll_one(fd: BorrowedFd<'_>, events: PollFlags) -> (Readiness, PollFlags) {
        let mut fds = [PollFd::new(fd, events)];
        poll(&mut fds, PollTimeout::ZERO).expect("poll");
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        (classify(&fds[0]), revents)
    }

    #[test]
    fn nothing_polled_yet_means_nothing_ready() {
        let got = within(LIMIT, NO_LOOP, || {
            let (a, _peer) = UnixStream::pair().expect("socketpair");
            let fresh = PollFd::new(a.as_fd(), PollFlags::POLLIN | PollFlags::POLLOUT);
            classify(&fresh)
        });
        assert_eq!(
            got,
            Readiness::default(),
            "this entry was never passed to poll, so revents is 0 and nothing is ready. \
             Its events (POLLIN|POLLOUT) is only the question: read revents()"
        );
    }

    #[test]
    fn revents_is_the_answer_not_events() {
        let (got, revents) = within(LIMIT, NO_LOOP, || {
            let (a, _peer) = UnixStream::pair().expect("socketpair");
            poll_one(a.as_fd(), PollFlags::POLLIN | PollFlags::POLLOUT)
        });
        assert_eq!(
            got,
            Readiness {
                writable: true,
                ..Readiness::default()
            },
            "asked POLLIN|POLLOUT of a socket nobody wrote to; the kernel answered revents = \
             {revents:?}. Nothing to read, room to write: readable comes from POLLIN \
             alone, writable from POLLOUT. If you said readable, you read events (the \
             question) instead of revents (the answer), or took any bit as readable"
        );
    }

    #[test]
    fn a_closed_peer_is_reported_though_only_pollin_was_asked() {
        let (got, revents) = within(LIMIT, NO_LOOP, || {
            let (a, peer) = UnixStream::pair().expect("socketpair");
            drop(peer);
            poll_one(a.as_fd(), PollFlags::POLLIN)
        });
        assert!(
            got.hung_up,
            "the peer closed: the kernel answered revents = {revents:?}. POLLHUP was not \
             asked (events = POLLIN) but poll reports it anyway; set hung_up from it"
        );
        assert_eq!(
            got,
            Readiness {
                readable: true,
                hung_up: true,
                ..Readiness::default()
            },
            "revents = {revents:?}: readable (the read returns 0) and hung up, nothing else"
        );
    }

    #[test]
    fn a_pipe_without_writers_hangs_up_without_pollin() {
        let (got, revents) = within(LIMIT, NO_LOOP, || {
            let (r, w) = nix::unistd::pipe().expect("pipe");
            drop(w);
            poll_one(r.as_fd(), PollFlags::POLLIN)
        });
        assert_eq!(
            got,
            Readiness {
                hung_up: true,
                ..Readiness::default()
            },
            "every writer of this pipe is gone and it is empty: revents = {revents:?}. \
             POLLHUP alone, no POLLIN, so hung_up and nothing else (a loop that waits for \
             POLLIN never sees this end)"
        );
    }

    #[test]
    fn a_pipe_without_readers_is_an_error() {
        let (got, revents) = within(LIMIT, NO_LOOP, || {
            let (r, w) = nix::unistd::pipe().expect("pipe");
            drop(r);
            poll_one(w.as_fd(), PollFlags::POLLOUT)
        });
        assert!(
            got.error,
            "the pipe's only reader is gone: revents = {revents:?}. POLLERR is reported \
             without being asked; set error from it"
        );
        assert_eq!(
            got,
            Readiness {
                writable: true,
                error: true,
                ..Readiness::default()
            },
            "revents = {revents:?}: writable (the write fails at once, with EPIPE) and \
             an error, nothing else"
        );
    }

    #[test]
    fn a_number_that_is_not_open_is_pollnval() {
        // A number far above anything this test process opens: as after a
        // close, there is no open file behind it.
        const NOT_OPEN: RawFd = 1_000_000;
        let (got, revents) = within(LIMIT, NO_LOOP, || {
            // SAFETY: deliberately not an open descriptor: that is what is
            // being tested. poll only looks the number up; nothing reads or
            // writes it.
            let stale = unsafe { BorrowedFd::borrow_raw(NOT_OPEN) };
            poll_one(stale, PollFlags::POLLIN)
        });
        assert_eq!(
            got,
            Readiness {
                not_open: true,
                ..Readiness::default()
            },
            "fd {NOT_OPEN} is not open: poll succeeded and answered revents = {revents:?}. \
             POLLNVAL means the entry names no open file (usually: closed before it was \
             removed from the array); set not_open, and nothing else"
        );
    }
}
