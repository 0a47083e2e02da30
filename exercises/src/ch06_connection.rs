//! # Chapter 06, exercise: one connection of a level-triggered echo server
//!
//! Read first: the book's chapter 06 ("The connection, event by event" and
//! "Always-on EPOLLOUT"), and in
//! [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html) the
//! questions and answers on level-triggered mode; `EPOLLRDHUP` in
//! [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html).
//! Run `cargo run -p ch06-epoll-echo-server -- always-on-epollout`.
//!
//! The server calls [`Connection::on_event`] with the flags `epoll_wait`
//! reported for one non-blocking socket. Handle them, then say what to do
//! next: [`Next::Close`], or [`Next::Watch`] with the flags to register
//! for from now on. The rules of a correct level-triggered connection:
//!
//! - read while there is data, until EAGAIN; keep what you read in
//!   `pending` and write it back;
//! - a `write` may take only part of what you give it: keep the rest;
//! - ask for `EPOLLOUT` only while something is pending (an idle socket is
//!   always writable: asking all the time wakes the loop for nothing);
//! - ask for `EPOLLIN` only while the peer may still send *and* `pending`
//!   has room (below [`MAX_PENDING`]), so a peer that never reads cannot
//!   grow your memory;
//! - end of file (read returns 0, often announced by `EPOLLRDHUP`): the peer
//!   sends no more. Stop asking for `EPOLLIN`, whose level stays "ready"
//!   forever after end of file; finish writing, then close;
//! - EPOLLERR, EPOLLHUP, ECONNRESET, EPIPE: close.
//!
//! Check with `cargo lab check ch06_connection`.

use std::io;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::sys::epoll::EpollFlags;

/// The most bytes a connection may have waiting to be written back.
pub const MAX_PENDING: usize = 64 * 1024;

/// What the server should do with the connection after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep it, registered for these flags (EPOLL_CTL_MOD if they changed).
    Watch(EpollFlags),
    /// Deregister and close it.
    Close,
}

/// The state of one echo connection.
#[derive(Debug, Default)]
pub struct Connection {
    /// Read from the peer, not yet written back.
    pub pending: Vec<u8>,
    /// The peer will send nothing more (read returned 0).
    pub peer_done: bool,
}

impl Connection {
    /// The flags to register a new connection with.
    pub fn first_interest() -> EpollFlags {
        EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP
    }

    /// Handles one event on `fd` (non-blocking) and says what comes next.
    pub fn on_event(&mut self, fd: BorrowedFd<'_>, events: EpollFlags) -> io::Result<Next> {
        // TODO: close on EPOLLERR or EPOLLHUP. On EPOLLIN or EPOLLRDHUP (and
        // while the peer is not done), read what is available. Then write
        // what is pending. Done when the peer is done and nothing is pending;
        // otherwise watch `self.interest()`. A Flow::Broken means: close.
        todo!("ch06: handle one event")
    }

    /// What to be woken for, given the state.
    fn interest(&self) -> EpollFlags {
        // TODO: EPOLLIN|EPOLLRDHUP only while the peer may send and
        // `pending` has room (below MAX_PENDING); EPOLLOUT only while
        // something is pending.
        todo!("ch06: the interest for this state")
    }

    /// Reads until EAGAIN, end of file, or a full buffer.
    fn read_available(&mut self, fd: BorrowedFd<'_>) -> io::Result<Flow> {
        // TODO: read into `pending` until EAGAIN, end of file (0: set
        // `peer_done`) or MAX_PENDING bytes. Retry EINTR; ECONNRESET means
        // Flow::Broken; other errors are returned.
        todo!("ch06: read what is available")
    }

    /// Writes pending bytes until they are all gone or EAGAIN.
    fn write_pending(&mut self, fd: BorrowedFd<'_>) -> io::Result<Flow> {
        // TODO: write `pending` until it is empty or EAGAIN. `write` returns
        // how many bytes it took: remove just those. Retry EINTR; EPIPE and
        // ECONNRESET mean Flow::Broken.
        todo!("ch06: write what is pending")
    }
}

/// Whether the connection can go on after a read or write loop.
#[derive(PartialEq, Eq)]
enum Flow {
    Fine,
    Broken,
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent};
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// A server-side socket (non-blocking) with its peer, registered in an
    /// epoll instance the way a server would.
    struct Setup {
        epoll: Epoll,
        conn: UnixStream,
        peer: UnixStream,
        state: Connection,
        watching: EpollFlags,
    }

    impl Setup {
        fn new() -> Setup {
            let (peer, conn) = UnixStream::pair().unwrap();
            conn.set_nonblocking(true).unwrap();
            let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
            let watching = Connection::first_interest();
            epoll
                .add(conn.as_fd(), EpollEvent::new(watching, 1))
                .unwrap();
            Setup {
                epoll,
                conn,
                peer,
                state: Connection::default(),
                watching,
            }
        }

        /// One wait (timeout 0); if there is an event, hand it to on_event
        /// and apply the answer. Returns the flags reported, if any.
        fn turn(&mut self) -> Option<(EpollFlags, Next)> {
            let mut events = [EpollEvent::empty()];
            let n = self.epoll.wait(&mut events, 0u8).unwrap();
            if n == 0 {
                return None;
            }
            let flags = events[0].events();
            let next = self.state.on_event(self.conn.as_fd(), flags).unwrap();
            if let Next::Watch(wanted) = next
                && wanted != self.watching
            {
                self.epoll
                    .modify(self.conn.as_fd(), &mut EpollEvent::new(wanted, 1))
                    .unwrap();
                self.watching = wanted;
            }
            Some((flags, next))
        }
    }

    #[test]
    fn echoes_and_then_sleeps() {
        within(Duration::from_secs(5), "an echo of 5 bytes", || {
            let mut s = Setup::new();
            (&s.peer).write_all(b"hello").unwrap();
            let (_, next) = s.turn().expect("the peer wrote: EPOLLIN");
            let mut back = [0u8; 5];
            (&s.peer).read_exact(&mut back).unwrap();
            assert_eq!(&back, b"hello", "everything read must be written back");
            assert!(
                matches!(next, Next::Watch(_)),
                "the peer is still there: keep it"
            );
            assert_eq!(
                s.turn(),
                None,
                "nothing was sent and nothing is pending, yet epoll_wait reported an event: \
                 an idle socket is always writable, so asking for EPOLLOUT when nothing is \
                 pending makes a level-triggered loop spin. Ask for EPOLLOUT only while \
                 `pending` is not empty"
            );
        });
    }

    #[test]
    fn a_partial_write_keeps_the_rest_and_asks_for_epollout() {
        within(
            Duration::from_secs(10),
            "a 40 KiB echo through a peer that reads late",
            || {
                let mut s = Setup::new();
                // The peer sends more than the socket can hold in one direction
                // while it is not reading its echo: writes back will be partial.
                let sent: Vec<u8> = (0..40 * 1024).map(|i| (i % 253) as u8).collect();
                nix::sys::socket::setsockopt(&s.conn, nix::sys::socket::sockopt::SndBuf, &4096)
                    .unwrap();
                s.peer.set_nonblocking(true).unwrap();
                let mut written = 0;
                let mut echoed = Vec::new();
                let mut buf = [0u8; 4096];
                let mut saw_epollout = false;
                for _ in 0..10_000 {
                    if written < sent.len()
                        && let Ok(n) = (&s.peer).write(&sent[written..])
                    {
                        written += n;
                    }
                    if let Some((_, Next::Watch(flags))) = s.turn() {
                        saw_epollout |= flags.contains(EpollFlags::EPOLLOUT);
                    }
                    // The peer reads its echo only now and then.
                    if echoed.len() < written
                        && written > 32 * 1024
                        && let Ok(n) = (&s.peer).read(&mut buf)
                    {
                        echoed.extend_from_slice(&buf[..n]);
                    }
                    if echoed.len() == sent.len() {
                        break;
                    }
                }
                assert!(
                    saw_epollout,
                    "some writes back were partial, so bytes stayed pending: the connection \
                 must then ask for EPOLLOUT to be told when it can write the rest"
                );
                assert_eq!(
                    echoed.len(),
                    sent.len(),
                    "{} bytes were sent, {} came back: a write that took only part of the \
                 buffer must keep the rest in `pending` (write returns how many bytes it took)",
                    sent.len(),
                    echoed.len()
                );
                assert!(echoed == sent, "the echo must be byte-exact, in order");
            },
        );
    }

    #[test]
    fn half_close_finishes_the_echo_then_closes() {
        within(
            Duration::from_secs(5),
            "an echo after the peer's shutdown(SHUT_WR)",
            || {
                let mut s = Setup::new();
                (&s.peer).write_all(b"last words").unwrap();
                s.peer.shutdown(std::net::Shutdown::Write).unwrap();
                let (flags, next) = s.turn().expect("data and end of file: an event");
                assert!(
                    flags.contains(EpollFlags::EPOLLRDHUP),
                    "the kernel reports EPOLLRDHUP"
                );
                assert_eq!(
                    next,
                    Next::Close,
                    "the peer sent everything (read returned 0) and the echo was written: close"
                );
                // The server closes it; the peer then reads the echo and EOF.
                let Setup { conn, peer, .. } = s;
                drop(conn);
                let mut back = String::new();
                (&peer).read_to_string(&mut back).unwrap();
                assert_eq!(
                    back, "last words",
                    "the whole echo must be written before closing"
                );
            },
        );
    }

    #[test]
    fn after_end_of_file_stop_asking_for_epollin() {
        within(
            Duration::from_secs(5),
            "no busy loop after the peer's end of file",
            || {
                let mut s = Setup::new();
                // The echo cannot be written back at all: the peer's receive
                // buffer is full, so it stays pending.
                nix::sys::socket::setsockopt(&s.conn, nix::sys::socket::sockopt::SndBuf, &4096)
                    .unwrap();
                let mut filler = vec![0u8; 512 * 1024];
                s.conn.set_nonblocking(true).unwrap();
                let mut stuffed = 0;
                while let Ok(n) = (&s.conn).write(&filler) {
                    stuffed += n;
                }
                assert!(stuffed > 0);
                (&s.peer).write_all(b"one more thing").unwrap();
                s.peer.shutdown(std::net::Shutdown::Write).unwrap();
                let (_, next) = s.turn().expect("data and end of file: an event");
                assert_eq!(
                    next,
                    Next::Watch(EpollFlags::EPOLLOUT),
                    "the peer is done sending and 14 bytes wait to be written: watch for \
                 EPOLLOUT only. After end of file EPOLLIN (and EPOLLRDHUP) stay ready on \
                 every wait, so keeping them would make the loop spin"
                );
                assert_eq!(
                    s.turn(),
                    None,
                    "nothing should wake the loop until the peer reads"
                );
                filler.clear();
            },
        );
    }

    #[test]
    fn errors_and_hangups_close() {
        let mut state = Connection::default();
        let (peer, conn) = UnixStream::pair().unwrap();
        conn.set_nonblocking(true).unwrap();
        drop(peer);
        let next = state.on_event(conn.as_fd(), EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP);
        assert_eq!(
            next.unwrap(),
            Next::Close,
            "EPOLLHUP: the peer is gone; close (after reading what is left, if you like)"
        );
    }
}
