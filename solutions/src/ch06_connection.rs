//! # Chapter 06, exercise: one connection of a level-triggered echo server
//!
//! Read first: the book's chapter 06 ("What goes wrong with always-on EPOLLOUT",
//! "Backpressure: a client that never reads",
//! "The trap: a condition the loop will not act on" and
//! "Half-close and reset"), in
//! [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html) the
//! questions and answers on level-triggered mode, `EPOLLRDHUP` in
//! [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html),
//! and RETURN VALUE in [write(2)](https://man7.org/linux/man-pages/man2/write.2.html).
//! Run `cargo run -p ch06-epoll-echo-server -- always-on-epollout`.
//!
//! The server calls [`Connection::on_event`] with the flags `epoll_wait`
//! reported for one non-blocking socket, registered level-triggered. Handle
//! them, then say what to do next: [`Next::Close`], or [`Next::Watch`] with
//! the flags to be woken for from now on. The rules:
//!
//! - echo: what you read goes into `pending` and is written back, in order;
//! - a `write` may take only part of what you give it (it returns how many
//!   bytes it took): keep the rest in `pending` for later;
//! - ask for `EPOLLOUT` only while something is pending (an idle socket is
//!   always writable: asking all the time wakes the loop for nothing);
//! - backpressure: never hold more than [`MAX_PENDING`] bytes, and ask for
//!   `EPOLLIN` and `EPOLLRDHUP` only while the peer may still send *and*
//!   `pending` has room, so a peer that never reads cannot grow your memory;
//! - end of file (a read returns 0, often announced by `EPOLLRDHUP`): the
//!   peer sends no more. Finish writing, then close;
//! - `EPOLLERR` or `EPOLLHUP`, or a read or write that fails with
//!   ECONNRESET or EPIPE: close (the server goes on with its other
//!   connections).
//!
//! The rule behind these: under level-triggered mode every flag you register
//! is reported on every wait for as long as its condition holds,
//! `EPOLLRDHUP` included, and end of file holds forever. **While you will
//! not act on a condition, do not ask for it.** A connection that has
//! stopped reading (`pending` full, or end of file seen) asks for neither
//! `EPOLLIN` nor `EPOLLRDHUP`; otherwise a peer's half-close would make the
//! loop spin at 100% CPU.
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
        if events.intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
            return Ok(Next::Close);
        }
        let readable = events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP);
        if readable && !self.peer_done && self.read_available(fd)? == Flow::Broken {
            return Ok(Next::Close);
        }
        // Write what is pending now: the send buffer usually has room,
        // which saves a round trip through epoll_wait.
        if self.write_pending(fd)? == Flow::Broken {
            return Ok(Next::Close);
        }
        if self.peer_done && self.pending.is_empty() {
            return Ok(Next::Close);
        }
        Ok(Next::Watch(self.interest()))
    }

    /// What to be woken for, given the state.
    fn interest(&self) -> EpollFlags {
        let mut flags = EpollFlags::empty();
        // Level-triggered: a flag whose condition holds is reported on every
        // wait. Once reading stops (full buffer, or end of file), the socket
        // may stay readable (and, after a half-close, "read hung up") for
        // good, so ask for neither until we will read again.
        if !self.peer_done && self.pending.len() < MAX_PENDING {
            flags |= EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        }
        if !self.pending.is_empty() {
            flags |= EpollFlags::EPOLLOUT;
        }
        flags
    }

    /// Reads until EAGAIN, end of file, or a full buffer.
    fn read_available(&mut self, fd: BorrowedFd<'_>) -> io::Result<Flow> {
        let mut buf = [0u8; 16 * 1024];
        while self.pending.len() < MAX_PENDING {
            let room = (MAX_PENDING - self.pending.len()).min(buf.len());
            match nix::unistd::read(fd, &mut buf[..room]) {
                Ok(0) => {
                    self.peer_done = true;
                    break;
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECONNRESET) => return Ok(Flow::Broken),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Flow::Fine)
    }

    /// Writes pending bytes until they are all gone or EAGAIN.
    fn write_pending(&mut self, fd: BorrowedFd<'_>) -> io::Result<Flow> {
        while !self.pending.is_empty() {
            match nix::unistd::write(fd, &self.pending) {
                // A partial write: keep the rest for the next EPOLLOUT.
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::EPIPE | Errno::ECONNRESET) => return Ok(Flow::Broken),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Flow::Fine)
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
    use nix::sys::socket::{setsockopt, sockopt::SndBuf};
    use std::io::{ErrorKind, Read, Write};
    use std::net::Shutdown;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// A correct connection needs a few milliseconds for any of these tests.
    const LIMIT: Duration = Duration::from_millis(1500);

    /// What the watchdog says when on_event itself never returns.
    const STUCK: &str = "on_event to return. If it never does, look for a loop in it that \
                         never ends: one that goes on reading after read returned 0 (end of \
                         file: it returns 0 every time), or that retries a write that failed \
                         with EAGAIN (the peer reads only between events)";

    /// Wake-ups in a row that change nothing, after which the loop is spinning.
    const SPIN: usize = 1000;

    const IN_OR_RDHUP: EpollFlags = EpollFlags::EPOLLIN.union(EpollFlags::EPOLLRDHUP);

    /// `len` bytes whose pattern does not repeat every power of two, so a
    /// byte out of place shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Bytes shown as text in messages.
    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Where `echoed` first differs from `sent`, if it does.
    fn first_difference(sent: &[u8], echoed: &[u8]) -> Option<usize> {
        (0..sent.len().max(echoed.len())).find(|&i| sent.get(i) != echoed.get(i))
    }

    /// A server-side socket and its peer, both non-blocking (so the test
    /// itself never blocks), the server's registered in an epoll instance
    /// the way a server would.
    struct Setup {
        epoll: Epoll,
        /// The server's socket; `None` once on_event said Close (then it is
        /// closed, as the server would).
        conn: Option<UnixStream>,
        peer: UnixStream,
        state: Connection,
        /// What the connection is registered for now.
        watching: EpollFlags,
        /// What the last wait reported.
        last: EpollFlags,
    }

    impl Setup {
        fn new() -> Setup {
            let (peer, conn) = UnixStream::pair().unwrap();
            conn.set_nonblocking(true).unwrap();
            peer.set_nonblocking(true).unwrap();
            let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
            let watching = Connection::first_interest();
            epoll
                .add(conn.as_fd(), EpollEvent::new(watching, 1))
                .unwrap();
            Setup {
                epoll,
                conn: Some(conn),
                peer,
                state: Connection::default(),
                watching,
                last: EpollFlags::empty(),
            }
        }

        /// Like `new`, with the server socket's send buffer at its minimum:
        /// the way back fills after a few KiB, so writes back are partial.
        fn small_send_buffer() -> Setup {
            let s = Setup::new();
            setsockopt(s.conn.as_ref().unwrap(), SndBuf, &4096).unwrap();
            s
        }

        fn closed(&self) -> bool {
            self.conn.is_none()
        }

        /// One wait (timeout 0); if there is an event, hand it to on_event
        /// and apply the answer. Returns the flags reported, if any.
        fn turn(&mut self) -> Option<(EpollFlags, Next)> {
            let conn = self.conn.as_ref()?;
            let mut events = [EpollEvent::empty()];
            if self.epoll.wait(&mut events, 0u8).unwrap() == 0 {
                return None;
            }
            let flags = events[0].events();
            self.last = flags;
            let next = match self.state.on_event(conn.as_fd(), flags) {
                Ok(next) => next,
                Err(e) => panic!(
                    "on_event returned Err({e}) after {flags:?}. EAGAIN means \"not now\" \
                     (stop and wait for the next event), ECONNRESET and EPIPE mean \"close\"; \
                     only an unexpected error should come back as Err"
                ),
            };
            match next {
                Next::Watch(wanted) => {
                    if wanted != self.watching {
                        self.epoll
                            .modify(conn.as_fd(), &mut EpollEvent::new(wanted, 1))
                            .unwrap();
                        self.watching = wanted;
                    }
                }
                Next::Close => {
                    self.epoll.delete(conn.as_fd()).unwrap();
                    self.conn = None;
                }
            }
            Some((flags, next))
        }

        /// Turns until a wait reports nothing (the loop would go to sleep)
        /// or the connection is closed.
        fn settle(&mut self) {
            for _ in 0..SPIN {
                if self.turn().is_none() {
                    return;
                }
            }
            panic!("{}", self.spinning());
        }

        /// Why a loop that should be asleep keeps being woken.
        fn spinning(&self) -> String {
            let pending = self.state.pending.len();
            let why = if self.watching.contains(EpollFlags::EPOLLOUT) && pending == 0 {
                "You ask for EPOLLOUT while nothing is pending: an idle socket is always \
                 writable, so every wait reports it. Ask for EPOLLOUT only while `pending` is \
                 not empty."
            } else if self.watching.intersects(IN_OR_RDHUP) && self.state.peer_done {
                "You still ask for EPOLLIN or EPOLLRDHUP after end of file: both stay true \
                 forever once the peer has finished sending, so every wait reports them. Once \
                 read has returned 0, leave both out."
            } else if self.watching.intersects(IN_OR_RDHUP) && pending >= MAX_PENDING {
                "`pending` is full and you still ask for EPOLLIN or EPOLLRDHUP: the socket \
                 stays readable, you will not read it, so every wait reports it. Ask for them \
                 only while `pending` has room (backpressure)."
            } else {
                "Look at what you ask for and at what you do about each event: a condition \
                 that on_event does not change is reported again on every wait."
            };
            format!(
                "the loop never goes to sleep: {SPIN} wake-ups in a row changed nothing (last \
                 event {:?}, registered for {:?}, {pending} bytes pending). {why} While you \
                 will not act on a condition, do not ask for it.",
                self.last, self.watching
            )
        }

        /// Reads what the peer has been sent, without blocking. Returns how
        /// many bytes, and whether the peer saw end of file (the server
        /// closed the connection).
        fn peer_reads(&self, into: &mut Vec<u8>) -> (usize, bool) {
            let mut buf = [0u8; 64 * 1024];
            let mut total = 0;
            loop {
                match (&self.peer).read(&mut buf) {
                    Ok(0) => return (total, true),
                    Ok(n) => {
                        into.extend_from_slice(&buf[..n]);
                        total += n;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return (total, false),
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => panic!(
                        "the peer's read failed with ECONNRESET: the server closed the \
                         connection while bytes the peer sent were still unread in its socket. \
                         Read what the peer sent and write it back before you close"
                    ),
                    Err(e) => panic!("the peer's read failed: {e}"),
                }
            }
        }

        /// The peer sends as much as it can and never reads its echo, until
        /// the kernel takes no more and the loop has nothing to do (reading
        /// paused). Returns what the peer sent.
        fn fill_until_paused(&mut self) -> Vec<u8> {
            let data = pattern(1024 * 1024);
            let mut written = 0;
            let mut wasted = 0;
            loop {
                let mut moved = 0;
                let end = (written + 64 * 1024).min(data.len());
                if written < end
                    && let Ok(n) = (&self.peer).write(&data[written..end])
                {
                    written += n;
                    moved = n;
                }
                let before = self.state.pending.len();
                let woken = self.turn().is_some();
                let pending = self.state.pending.len();
                assert!(
                    pending <= MAX_PENDING,
                    "`pending` holds {pending} bytes, more than MAX_PENDING ({MAX_PENDING}), \
                     for a peer that sends and never reads its echo: without a limit it grows \
                     for as long as the peer sends. Read only while `pending` has room, and ask \
                     for EPOLLIN only while it is below MAX_PENDING (backpressure: the rest \
                     waits in the kernel, and the peer's writes are the ones that wait)"
                );
                assert!(
                    !self.closed(),
                    "on_event said Close for a peer that is still sending: keep it"
                );
                if !woken && moved == 0 {
                    return data[..written].to_vec();
                }
                wasted = if moved == 0 && pending == before {
                    wasted + 1
                } else {
                    0
                };
                assert!(wasted < SPIN, "{}", self.spinning());
            }
        }

        /// The peer reads its echo while the loop runs, until the server
        /// closes the connection (or, with `until_len`, until that many
        /// bytes came back). Panics if the loop stalls or spins.
        fn peer_reads_echo(&mut self, echoed: &mut Vec<u8>, until_len: Option<usize>) {
            let mut wasted = 0;
            loop {
                let (moved, eof) = self.peer_reads(echoed);
                if eof || until_len.is_some_and(|len| echoed.len() >= len) {
                    return;
                }
                let before = self.state.pending.len();
                let woken = self.turn().is_some();
                let pending = self.state.pending.len();
                if !woken && moved == 0 {
                    let advice = if pending > 0 && !self.watching.contains(EpollFlags::EPOLLOUT) {
                        "Bytes are pending but you do not ask for EPOLLOUT, so nothing wakes \
                         the loop when the peer makes room: ask for EPOLLOUT while `pending` is \
                         not empty."
                    } else if self.state.peer_done && pending == 0 {
                        "The peer is done sending and everything was written back: say Close."
                    } else if !self.state.peer_done && !self.watching.contains(EpollFlags::EPOLLIN)
                    {
                        "You no longer ask for EPOLLIN although `pending` has room: once it \
                         drains below MAX_PENDING, ask for EPOLLIN again (reading resumes)."
                    } else {
                        "Look at what you ask for after each event."
                    };
                    panic!(
                        "the echo stopped: the peer is reading, {} bytes came back so far, {pending} \
                         are pending, and the loop went to sleep registered for {:?}. {advice}",
                        echoed.len(),
                        self.watching
                    );
                }
                wasted = if moved == 0 && pending == before {
                    wasted + 1
                } else {
                    0
                };
                assert!(wasted < SPIN, "{}", self.spinning());
            }
        }
    }

    #[test]
    fn echoes_and_then_sleeps() {
        within(LIMIT, STUCK, || {
            let mut s = Setup::new();
            for word in [&b"hello"[..], b"again"] {
                (&s.peer).write_all(word).unwrap();
                s.settle();
                assert!(
                    !s.closed(),
                    "the peer is still there and may send more: on_event must not say Close"
                );
                let mut back = Vec::new();
                s.peer_reads(&mut back);
                assert!(
                    back == word,
                    "the peer sent {:?} and, once the loop went to sleep, had got back {:?}. \
                     Everything read must be written back; and after an echo, keep asking for \
                     EPOLLIN to hear the next message",
                    text(word),
                    text(&back)
                );
            }
        });
    }

    #[test]
    fn a_partial_write_keeps_the_rest() {
        within(LIMIT, STUCK, || {
            let mut s = Setup::small_send_buffer();
            let sent = pattern(256 * 1024);
            let mut written = 0;
            let mut echoed = Vec::new();
            let mut wasted = 0;
            loop {
                let mut moved = 0;
                if written < sent.len()
                    && let Ok(n) = (&s.peer).write(&sent[written..])
                {
                    written += n;
                    moved += n;
                    if written == sent.len() {
                        s.peer.shutdown(Shutdown::Write).unwrap();
                    }
                }
                let before = s.state.pending.len();
                let woken = s.turn().is_some();
                let (read, eof) = s.peer_reads(&mut echoed);
                moved += read;
                if eof || (!woken && moved == 0) {
                    break;
                }
                wasted = if moved == 0 && s.state.pending.len() == before {
                    wasted + 1
                } else {
                    0
                };
                assert!(wasted < SPIN, "{}", s.spinning());
            }
            if s.closed() && echoed.len() < sent.len() {
                panic!(
                    "the peer sent {} bytes and got {} back before the connection closed: {} \
                     bytes were lost. The server's send buffer is small here, so a write takes \
                     only part of `pending` and returns how many bytes it took (a partial \
                     write). Remove just those from the front of `pending` and keep the rest \
                     for the next EPOLLOUT",
                    sent.len(),
                    echoed.len(),
                    sent.len() - echoed.len()
                );
            }
            if !s.closed() {
                // The loop went to sleep with the echo unfinished: let the
                // peer read on, to say why.
                s.peer_reads_echo(&mut echoed, None);
            }
            if let Some(i) = first_difference(&sent, &echoed) {
                panic!(
                    "the echo differs from what the peer sent from byte {i} on ({} bytes sent, \
                     {} came back): write `pending` from its front, and remove from the front \
                     exactly the bytes write took",
                    sent.len(),
                    echoed.len()
                );
            }
        });
    }

    #[test]
    fn a_peer_that_never_reads_cannot_grow_pending() {
        within(LIMIT, STUCK, || {
            let mut s = Setup::small_send_buffer();
            let sent = s.fill_until_paused();
            assert!(
                !s.watching.contains(EpollFlags::EPOLLIN),
                "reading should be paused (the peer sends, never reads, and `pending` holds {} \
                 bytes) but you still ask for EPOLLIN",
                s.state.pending.len()
            );
            // Now the peer reads: the server must resume reading and echo
            // everything.
            let mut echoed = Vec::new();
            s.peer_reads_echo(&mut echoed, Some(sent.len()));
            if let Some(i) = first_difference(&sent, &echoed) {
                panic!(
                    "after the pause the echo differs from what the peer sent from byte {i} on \
                     ({} bytes sent, {} came back): resume reading once `pending` has room, \
                     and keep the order",
                    sent.len(),
                    echoed.len()
                );
            }
        });
    }

    #[test]
    fn a_half_close_while_reading_is_paused_does_not_wake_the_loop() {
        within(LIMIT, STUCK, || {
            let mut s = Setup::small_send_buffer();
            let sent = s.fill_until_paused();
            s.peer.shutdown(Shutdown::Write).unwrap();
            for _ in 0..3 {
                if let Some((flags, _)) = s.turn() {
                    panic!(
                        "reading was paused (`pending` full, the peer not reading its echo) \
                         when the peer half-closed with shutdown(SHUT_WR), and epoll_wait \
                         reported {flags:?} while registered for {:?}. In level-triggered mode \
                         a registered condition is reported on every wait for as long as it \
                         holds, and end of file holds forever: nothing on_event can do clears \
                         it, so the loop would spin at 100% CPU until the peer reads. While \
                         you will not act on a condition, do not ask for it: while reading is \
                         paused, leave out EPOLLRDHUP as well as EPOLLIN",
                        s.watching
                    );
                }
            }
            // The peer reads at last: everything comes back, then the end.
            let mut echoed = Vec::new();
            s.peer_reads_echo(&mut echoed, None);
            assert!(
                s.closed(),
                "the peer read everything after its half-close, but on_event did not say Close"
            );
            if let Some(i) = first_difference(&sent, &echoed) {
                panic!(
                    "the echo differs from what the peer sent from byte {i} on ({} bytes sent, \
                     {} came back before the connection closed): after end of file, finish \
                     writing what is pending (and read what was still queued before it), then \
                     close",
                    sent.len(),
                    echoed.len()
                );
            }
        });
    }

    #[test]
    fn after_end_of_file_stop_asking_for_epollin() {
        within(LIMIT, STUCK, || {
            let mut s = Setup::small_send_buffer();
            // Fill the way back first (the server's socket written to
            // directly), so that the echo cannot be written at all.
            let mut conn = s.conn.as_ref().unwrap();
            let mut stuffed = 0;
            while let Ok(n) = conn.write(&[b'.'; 64 * 1024]) {
                stuffed += n;
            }
            (&s.peer).write_all(b"one more thing").unwrap();
            s.peer.shutdown(Shutdown::Write).unwrap();
            s.settle();
            assert!(
                !s.closed(),
                "on_event said Close with 14 bytes still to be written back: when the peer is \
                 done, finish writing, then close"
            );
            assert_eq!(
                s.watching,
                EpollFlags::EPOLLOUT,
                "the peer is done sending (read returned 0) and 14 bytes wait to be written: \
                 watch for EPOLLOUT only. After end of file EPOLLIN and EPOLLRDHUP stay true \
                 on every wait, so keeping them would make the loop spin"
            );
            let mut back = Vec::new();
            s.peer_reads_echo(&mut back, None);
            assert!(s.closed(), "the echo was written: now close");
            assert!(
                back.len() == stuffed + 14 && back.ends_with(b"one more thing"),
                "the peer got {} bytes back, ending with {:?}: expected the {stuffed} bytes \
                 that filled the way back, then \"one more thing\"",
                back.len(),
                text(&back[back.len().saturating_sub(14)..])
            );
        });
    }

    #[test]
    fn half_close_finishes_the_echo_then_closes() {
        within(LIMIT, STUCK, || {
            let mut s = Setup::new();
            (&s.peer).write_all(b"last words").unwrap();
            s.peer.shutdown(Shutdown::Write).unwrap();
            s.settle();
            let mut back = Vec::new();
            let (_, eof) = s.peer_reads(&mut back);
            assert!(
                back == b"last words",
                "the peer sent \"last words\" and half-closed (shutdown(SHUT_WR)); it got back \
                 {:?}. EPOLLRDHUP means the peer will send nothing more, not that it stopped \
                 listening: read what is left, write it back, and only then close",
                text(&back)
            );
            assert!(
                s.closed() && eof,
                "the peer is done (read returned 0) and the whole echo was written, but \
                 on_event did not say Close: say Close once the peer is done and nothing is \
                 pending"
            );
        });
    }

    #[test]
    fn errors_and_hangups_close() {
        within(LIMIT, STUCK, || {
            // The peer is gone: EPOLLHUP.
            let (peer, conn) = UnixStream::pair().unwrap();
            conn.set_nonblocking(true).unwrap();
            drop(peer);
            let next = Connection::default()
                .on_event(conn.as_fd(), EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP)
                .map_err(|e| e.to_string());
            assert_eq!(
                next,
                Ok(Next::Close),
                "EPOLLHUP: the peer is gone; close (after reading what is left, if you like)"
            );
        });
    }

    #[test]
    fn a_reset_or_a_broken_pipe_closes() {
        within(LIMIT, STUCK, || {
            // A reset: the peer closes with data of ours unread. epoll said
            // EPOLLIN a moment before; the read now fails with ECONNRESET.
            let (peer, conn) = UnixStream::pair().unwrap();
            conn.set_nonblocking(true).unwrap();
            (&conn).write_all(b"never read").unwrap();
            (&peer).write_all(b"data").unwrap();
            drop(peer);
            let next = Connection::default()
                .on_event(conn.as_fd(), EpollFlags::EPOLLIN)
                .map_err(|e| e.to_string());
            assert_eq!(
                next,
                Ok(Next::Close),
                "after the data, the read failed with ECONNRESET (the peer closed with data \
                 unread). That ends this connection, not the server: return Ok(Next::Close)"
            );
            // A broken pipe: bytes are pending and the peer is gone; the
            // write fails with EPIPE.
            let (peer, conn) = UnixStream::pair().unwrap();
            conn.set_nonblocking(true).unwrap();
            drop(peer);
            let mut state = Connection {
                pending: b"echo".to_vec(),
                peer_done: false,
            };
            let next = state
                .on_event(conn.as_fd(), EpollFlags::EPOLLOUT)
                .map_err(|e| e.to_string());
            assert_eq!(
                next,
                Ok(Next::Close),
                "the write of the pending bytes failed with EPIPE (the peer is gone). That \
                 ends this connection, not the server: return Ok(Next::Close)"
            );
        });
    }
}
