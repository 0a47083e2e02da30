//! The poll backend of [`Poller`]: [`PollPoller`].
//!
//! poll(2) takes an array of `struct pollfd { int fd; short events; short
//! revents; }`. The kernel reads `fd` and `events` and writes only
//! `revents`, so unlike select's bitmaps the array survives the call: the
//! backend keeps it between waits and edits one entry on add, modify and
//! delete. There is no FD_SETSIZE: any descriptor number works.
//! See [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use ch03_select::poller::{Event, Interest, Poller, Token};
use nix::poll::{PollFd, PollFlags, PollTimeout};

/// A [`Poller`] over [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html).
#[derive(Debug, Default)]
pub struct PollPoller {
    /// The array handed to the kernel on every wait.
    fds: Vec<PollFd<'static>>,
    /// `tokens[i]` is the token of `fds[i]`.
    tokens: Vec<Token>,
    /// Where each registered descriptor sits in `fds`.
    index: HashMap<RawFd, usize>,
}

impl PollPoller {
    /// An empty poller: like select, poll keeps nothing in the kernel
    /// between calls.
    pub fn new() -> PollPoller {
        PollPoller::default()
    }
}

// ANCHOR: events_for
/// What to ask for: only what the caller will act on now. poll reports the
/// state at the time of the call, so a condition asked for is reported by
/// every call for as long as it is true; one the caller ignores (POLLIN on a
/// connection it has stopped reading) would make every poll return at once.
/// POLLHUP, POLLERR and POLLNVAL are never asked: poll(2) says they are
/// "ignored in events" and reported in revents anyway, so an entry with
/// `events = 0` still reports them; the caller acts on them and closes.
fn events_for(interest: Interest) -> PollFlags {
    let mut events = PollFlags::empty();
    if interest.readable {
        events |= PollFlags::POLLIN;
    }
    if interest.writable {
        events |= PollFlags::POLLOUT;
    }
    events
}
// ANCHOR_END: events_for

// ANCHOR: event_from
/// Turns one entry's `revents` (the kernel's answer, never `events`, which
/// is our question) into an [`Event`], or `None` if nothing happened.
fn event_from(token: Token, revents: PollFlags) -> Option<Event> {
    if revents.is_empty() {
        return None;
    }
    Some(Event {
        token,
        readable: revents.contains(PollFlags::POLLIN),
        writable: revents.contains(PollFlags::POLLOUT),
        hangup: revents.contains(PollFlags::POLLHUP),
        // POLLNVAL: the number is not an open descriptor. Under the Poller
        // contract that means the caller closed it before `delete`; report
        // it as an error so the caller drops it instead of spinning on it.
        error: revents.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL),
    })
}
// ANCHOR_END: event_from

/// A timeout in poll's unit, milliseconds, rounded up: rounding a 0.5 ms
/// wait down to 0 would turn a waiting loop into a spinning one.
fn poll_timeout(timeout: Option<Duration>) -> PollTimeout {
    match timeout {
        None => PollTimeout::NONE,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    }
}

impl Poller for PollPoller {
    // ANCHOR: add
    fn add(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is negative (poll would ignore it)"),
            ));
        }
        if self.index.contains_key(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        // SAFETY: the Poller contract: a registered descriptor stays open
        // until the caller has called `delete`, which drops this entry.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        self.index.insert(fd, self.fds.len());
        self.fds.push(PollFd::new(borrowed, events_for(interest)));
        self.tokens.push(token);
        Ok(())
    }
    // ANCHOR_END: add

    fn modify(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = *self.index.get(&fd).ok_or_else(|| not_registered(fd))?;
        // Only `events` changes: the kernel never writes it.
        self.fds[i].set_events(events_for(interest));
        self.tokens[i] = token;
        Ok(())
    }

    fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self.index.remove(&fd).ok_or_else(|| not_registered(fd))?;
        // Move the last entry into the hole: O(1), order does not matter.
        self.fds.swap_remove(i);
        self.tokens.swap_remove(i);
        if let Some(moved) = self.fds.get(i) {
            self.index.insert(moved.as_fd().as_raw_fd(), i);
        }
        Ok(())
    }

    // ANCHOR: wait
    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // The same array every time: poll reads fd and events, writes revents.
        lab_kit::trace::poll(&mut self.fds, poll_timeout(timeout))?;
        // The kernel filled in revents for every entry, ready or not; the
        // cost of this scan grows with the array, like the kernel's own.
        for (pollfd, &token) in self.fds.iter().zip(&self.tokens) {
            // revents() is None only for bits nix has no name for; treat
            // them as an error rather than dropping the event.
            let revents = pollfd.revents().unwrap_or(PollFlags::POLLERR);
            events.extend(event_from(token, revents));
        }
        Ok(())
    }
    // ANCHOR_END: wait

    fn name(&self) -> &'static str {
        "poll"
    }
}

fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}
