//! An epoll backend for [`Poller`], in the spirit of Redis's `ae_epoll.c`
//! and mio's `selector/epoll.rs`: one epoll instance, the caller's token in
//! `epoll_event.data`, level-triggered.
//!
//! Compare it with the select and poll backends: they hand the kernel the
//! whole watch list on every wait; here `add`/`modify`/`delete` change the
//! kernel's interest list once, and `wait` only collects what is ready.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use ch03_select::poller::{Event, Interest, Poller, Token};
use lab_kit::epoll::{self, Op};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

/// How many events one `epoll_wait` can return. More ready descriptors
/// than this are not lost: they stay at the head of the ready list and come
/// back on the next wait.
const MAX_EVENTS: usize = 256;

/// A level-triggered epoll instance behind the [`Poller`] interface.
pub struct EpollPoller {
    epoll: Epoll,
    ready: Vec<EpollEvent>,
}

impl EpollPoller {
    /// Creates the epoll instance
    /// ([epoll_create1(2)](https://man7.org/linux/man-pages/man2/epoll_create1.2.html)),
    /// close-on-exec so a child process does not inherit it.
    pub fn new() -> io::Result<EpollPoller> {
        let epoll = epoll::create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
        Ok(EpollPoller {
            epoll,
            ready: vec![EpollEvent::empty(); MAX_EVENTS],
        })
    }

    /// The epoll instance, e.g. to read its interest list from fdinfo.
    pub fn epoll(&self) -> &Epoll {
        &self.epoll
    }
}

// ANCHOR: flags
/// What to ask the kernel for. Every bit asked for is level-triggered, so
/// the rule is: **ask only for what the caller will act on now.** A
/// condition that stays true while the caller ignores it is reported on
/// every wait, and the loop spins at 100% CPU.
///
/// - `EPOLLIN` and `EPOLLRDHUP` only while the caller reads. `EPOLLRDHUP`
///   reports a peer's `shutdown(SHUT_WR)` (or close) and, like `EPOLLIN`,
///   stays true until the socket is closed: a server that stopped reading
///   (its output buffer is full) but kept `EPOLLRDHUP` would be woken on
///   every wait once the peer half-closed, and nothing it does would clear
///   the condition. (On a listening socket `EPOLLRDHUP` never fires; the
///   backend does not know a listener from a connection, and asking costs
///   nothing.)
/// - `EPOLLOUT` only while output is pending (an idle socket is always
///   writable).
/// - `EPOLLERR` and `EPOLLHUP` cannot be left out: the kernel adds them to
///   every registration. A caller acts on them by writing (which fails) or
///   reading, then closes.
fn flags_for(interest: Interest) -> EpollFlags {
    let mut flags = EpollFlags::empty();
    if interest.readable {
        flags |= EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
    }
    if interest.writable {
        flags |= EpollFlags::EPOLLOUT;
    }
    flags
}

fn event_from(e: &EpollEvent) -> Event {
    let flags = e.events();
    Event {
        token: Token(e.data() as usize),
        // A peer that shut down its side (RDHUP) is readable: read returns 0.
        readable: flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP),
        writable: flags.contains(EpollFlags::EPOLLOUT),
        hangup: flags.contains(EpollFlags::EPOLLHUP),
        error: flags.contains(EpollFlags::EPOLLERR),
    }
}
// ANCHOR_END: flags

// ANCHOR: poller
impl Poller for EpollPoller {
    fn add(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        epoll::ctl(
            &self.epoll.0,
            Op::Add,
            fd,
            flags_for(interest),
            token.0 as u64,
        )?;
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        epoll::ctl(
            &self.epoll.0,
            Op::Mod,
            fd,
            flags_for(interest),
            token.0 as u64,
        )?;
        Ok(())
    }

    fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        epoll::ctl(&self.epoll.0, Op::Del, fd, EpollFlags::empty(), 0)?;
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // Only the ready entries are copied out: the cost of this call grows
        // with the number of *ready* descriptors, not of watched ones.
        let n = epoll::wait(&self.epoll, &mut self.ready, timeout)?;
        events.extend(self.ready[..n].iter().map(event_from));
        Ok(())
    }

    fn name(&self) -> &'static str {
        "epoll"
    }
}
// ANCHOR_END: poller

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_readable_with_the_token_and_hangup_unasked() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut poller = EpollPoller::new().unwrap();
        poller.add(b.as_raw_fd(), Token(7), Interest::NONE).unwrap();
        let mut events = Vec::new();
        poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events, vec![], "nothing was written yet");

        poller
            .modify(b.as_raw_fd(), Token(7), Interest::READABLE)
            .unwrap();
        a.write_all(b"x").unwrap();
        poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events.len(), 1);
        assert!(events[0].readable && events[0].token == Token(7));

        drop(a);
        poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(
            events[0].hangup,
            "a closed Unix peer is EPOLLHUP: {events:?}"
        );

        poller.delete(b.as_raw_fd()).unwrap();
        poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events, vec![], "deleted registrations report nothing");
    }
}
