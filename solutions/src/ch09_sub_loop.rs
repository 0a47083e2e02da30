//! # Chapter 09, exercise 2: a sub-loop that composes
//!
//! Read first: the book's chapter 09 ("Why nest: composing event loops" and
//! "The stall: a library that does not drain"), and in
//! [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html), Q3 ("Is
//! the epoll file descriptor itself poll/epoll/selectable? Yes. If an epoll
//! file descriptor has events waiting, then it will indicate as being
//! readable.") and "Possible pitfalls and ways to avoid them"
//! (starvation). Run `cargo run -p ch09-nested-epoll -- compose --mode edge`.
//!
//! [`SubLoop`] is a library with an event loop of its own: an epoll
//! instance watching its connections, and an eventfd, `kick`. Its user sees
//! one descriptor, [`SubLoop::fd`], puts it into their own epoll instance,
//! and calls [`SubLoop::dispatch`] when it is reported readable. The user
//! may register it edge-triggered. Write:
//!
//! - [`SubLoop::fd`]: the sub-loop's own epoll instance.
//! - [`SubLoop::dispatch`], which never blocks and never hogs the caller:
//!   - first take back an earlier kick (read the eventfd; EAGAIN means
//!     there was none);
//!   - then wait on the sub-loop's own instance with timeout 0, over and
//!     over, and handle what it reports: for a connection, one read of at
//!     most [`CHUNK`] bytes, handed to `on_data` (the connections are
//!     level-triggered, so what is left is reported again). Stop when a
//!     wait reports nothing: the sub-loop's ready list is then empty;
//!   - handle at most `budget` reads per call. If the budget is used up,
//!     there may be work left, and an edge-triggered user will not hear
//!     about it: re-report yourself by writing 1 to the kick eventfd (a new
//!     wake-up inside your instance reaches the user's instance);
//!   - a read that returns 0 is end of file: deregister that connection
//!     and drop it (its end of file would be reported on every wait);
//!   - return the number of reads that delivered data.
//!
//! Check with `cargo lab check ch09_sub_loop`.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// The most one read takes from a connection.
pub const CHUNK: usize = 16;

/// The kick eventfd's token in the sub-loop's own instance.
const KICK: u64 = u64::MAX;

/// A library with its own event loop, composable into any other loop.
pub struct SubLoop {
    epoll: Epoll,
    kick: EventFd,
    connections: HashMap<u64, UnixStream>,
    budget: usize,
}

impl SubLoop {
    /// A sub-loop that makes at most `budget` reads per dispatch.
    pub fn new(budget: usize) -> nix::Result<SubLoop> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let kick =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        epoll.add(&kick, EpollEvent::new(EpollFlags::EPOLLIN, KICK))?;
        Ok(SubLoop {
            epoll,
            kick,
            connections: HashMap::new(),
            budget,
        })
    }

    /// Takes a connection: made non-blocking and watched for input,
    /// level-triggered, under `token`.
    pub fn add(&mut self, token: u64, conn: UnixStream) -> nix::Result<()> {
        ch02_nonblocking_io::set_nonblocking(&conn)?;
        self.epoll
            .add(&conn, EpollEvent::new(EpollFlags::EPOLLIN, token))?;
        self.connections.insert(token, conn);
        Ok(())
    }

    /// The one descriptor the sub-loop hands out.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }

    /// Runs the sub-loop without blocking, for at most `budget` reads; see
    /// the task above. Returns the number of reads that delivered data.
    pub fn dispatch(&mut self, mut on_data: impl FnMut(u64, &[u8])) -> nix::Result<usize> {
        // An earlier kick has done its job: we are running.
        match self.kick.read() {
            Ok(_) | Err(Errno::EAGAIN) => {}
            Err(e) => return Err(e),
        }
        let mut handled = 0;
        let mut buf = [0u8; CHUNK];
        while handled < self.budget {
            let mut events = [EpollEvent::empty(); 8];
            let room = (self.budget - handled).min(events.len());
            let n = self.epoll.wait(&mut events[..room], EpollTimeout::ZERO)?;
            if n == 0 {
                // Our ready list is empty: nothing is left to report.
                return Ok(handled);
            }
            for event in &events[..n] {
                let token = event.data();
                let Some(conn) = self.connections.get(&token) else {
                    continue; // the kick, already taken back
                };
                match nix::unistd::read(conn, &mut buf) {
                    Ok(0) => {
                        // End of file: under level-triggered it would be
                        // reported on every wait, forever.
                        self.epoll.delete(conn)?;
                        self.connections.remove(&token);
                    }
                    Ok(k) => {
                        on_data(token, &buf[..k]);
                        handled += 1;
                    }
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // Budget used up, maybe with work left: a new wake-up inside our
        // instance makes an edge-triggered user hear about us again.
        self.kick.write(1)?;
        Ok(handled)
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    const A: u64 = 1;
    const B: u64 = 2;
    /// The user's token for the sub-loop's fd in the user's own instance.
    const SUB: u64 = 100;
    /// A correct sub-loop needs microseconds for any of these tests.
    const LIMIT: Duration = Duration::from_secs(2);

    /// The user's own epoll instance, watching the sub-loop's fd.
    fn user_loop(sub: &SubLoop, edge: bool) -> Epoll {
        let user = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let flags = if edge {
            EpollFlags::EPOLLIN | EpollFlags::EPOLLET
        } else {
            EpollFlags::EPOLLIN
        };
        user.add(sub.fd(), EpollEvent::new(flags, SUB)).unwrap();
        user
    }

    /// Whether the user's instance reports the sub-loop right now.
    fn reported(user: &Epoll) -> bool {
        let mut events = [EpollEvent::empty(); 4];
        let n = user.wait(&mut events, EpollTimeout::ZERO).unwrap();
        events[..n].iter().any(|e| e.data() == SUB)
    }

    /// A connection for the sub-loop and the peer that writes to it.
    fn connection(sub: &mut SubLoop, token: u64, data: &[u8]) -> UnixStream {
        let (peer, conn) = UnixStream::pair().unwrap();
        (&peer).write_all(data).unwrap();
        sub.add(token, conn).unwrap();
        peer
    }

    /// The user's loop: dispatch while the user's instance reports the
    /// sub-loop, at most `rounds` times. Returns what arrived and how many
    /// rounds ran.
    fn run_user_loop(
        sub: &mut SubLoop,
        user: &Epoll,
        rounds: usize,
    ) -> (HashMap<u64, Vec<u8>>, usize) {
        let mut got: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut ran = 0;
        while ran < rounds && reported(user) {
            ran += 1;
            sub.dispatch(|token, data| got.entry(token).or_default().extend_from_slice(data))
                .unwrap_or_else(|e| panic!("dispatch returned Err({e}) on healthy connections"));
        }
        (got, ran)
    }

    #[test]
    fn one_edge_is_enough_to_deliver_everything_that_was_ready() {
        let got = within(
            LIMIT,
            "dispatch to return. It did not: if it blocked, it waited on its own instance with \
             a timeout other than 0; if it spun, its instance kept reporting something",
            || {
                let mut sub = SubLoop::new(8).unwrap();
                let _a = connection(&mut sub, A, b"from a");
                let _b = connection(&mut sub, B, b"from b");
                let user = user_loop(&sub, true);
                run_user_loop(&mut sub, &user, 20).0
            },
        );
        assert!(
            got.contains_key(&A) && got.contains_key(&B),
            "two connections had a message each; the user's instance watches the sub-loop's \
             fd edge-triggered and called dispatch whenever it reported it. Delivered: {:?} \
             of 2 - the rest stalled: the user heard nothing more. An EPOLLET outer edge \
             fires once per new wake-up inside your instance, so dispatch must empty its own \
             ready list (wait on it with timeout 0 until it reports nothing), not handle one \
             event and return",
            got.keys().collect::<Vec<_>>()
        );
        assert_eq!(got[&A], b"from a");
        assert_eq!(got[&B], b"from b");
    }

    #[test]
    fn dispatch_yields_after_its_budget() {
        let (calls, returned) = within(LIMIT, "one dispatch to return", || {
            let mut sub = SubLoop::new(4).unwrap();
            let _a = connection(&mut sub, A, &[b'x'; CHUNK * 100]);
            let mut calls = 0;
            let returned = sub.dispatch(|_, _| calls += 1).unwrap();
            (calls, returned)
        });
        assert!(
            calls <= 4,
            "one dispatch made {calls} reads with a budget of 4 (100 chunks were queued): a \
             dispatch that never yields starves the user's loop - every other descriptor it \
             watches waits until yours is empty. Stop after `budget` reads"
        );
        assert_eq!(
            calls, 4,
            "with 100 chunks queued, a dispatch uses its whole budget"
        );
        assert_eq!(
            returned, calls,
            "dispatch returns the number of reads that delivered data"
        );
    }

    #[test]
    fn work_left_after_the_budget_is_reported_again() {
        let spin = "the user's loop to deliver 100 chunks. It is still running: a dispatch that \
                    never returns, or a sub-loop fd that never stops being readable. Is the \
                    kick eventfd read back to zero at the start of dispatch?";
        let (got, rounds) = within(LIMIT, spin, || {
            let mut sub = SubLoop::new(4).unwrap();
            let _a = connection(&mut sub, A, &[b'x'; CHUNK * 100]);
            let user = user_loop(&sub, true);
            run_user_loop(&mut sub, &user, 1000)
        });
        let delivered = got.get(&A).map_or(0, Vec::len);
        assert_eq!(
            delivered,
            CHUNK * 100,
            "{delivered} of {} bytes arrived, then the user's edge-triggered instance stopped \
             reporting the sub-loop (after {rounds} dispatches). A dispatch that stops at its \
             budget with work left must re-report itself: write 1 to the kick eventfd - a new \
             wake-up inside your instance fires the user's edge again",
            CHUNK * 100
        );
    }

    #[test]
    fn when_all_is_done_the_fd_is_quiet() {
        let spin = "the user's loop to finish. dispatch spins: its own instance keeps reporting \
                    the kick eventfd, which stays readable until it is read. Take the kick back \
                    at the start of dispatch (read the eventfd; EAGAIN means there was none)";
        let still_reported = within(LIMIT, spin, || {
            let mut sub = SubLoop::new(4).unwrap();
            let _a = connection(&mut sub, A, &[b'x'; CHUNK * 10]);
            let user = user_loop(&sub, false);
            let (got, _) = run_user_loop(&mut sub, &user, 100);
            assert_eq!(
                got.get(&A).map_or(0, Vec::len),
                CHUNK * 10,
                "all 10 chunks delivered"
            );
            reported(&user)
        });
        assert!(
            !still_reported,
            "all the work is done, yet the sub-loop's fd is still readable: a level-triggered \
             user is woken on every wait, a busy loop. Take the kick back at the start of \
             dispatch (read the eventfd; EAGAIN means there was none)"
        );
    }

    #[test]
    fn a_closed_peer_is_forgotten() {
        let spin = "the user's loop to finish after the peer closed. dispatch spins: end of \
                    file (a read returning 0) is reported on every wait while the connection \
                    stays registered. Deregister it (EPOLL_CTL_DEL) and drop it";
        let (got, rounds, quiet) = within(LIMIT, spin, || {
            let mut sub = SubLoop::new(4).unwrap();
            let a = connection(&mut sub, A, b"bye");
            drop(a);
            let user = user_loop(&sub, false);
            let (got, rounds) = run_user_loop(&mut sub, &user, 50);
            (got, rounds, !reported(&user))
        });
        assert_eq!(
            got.get(&A).map(Vec::as_slice),
            Some(&b"bye"[..]),
            "the data before end of file"
        );
        assert!(
            quiet,
            "the peer sent \"bye\" and closed; after {rounds} dispatches the sub-loop's fd is \
             still readable. End of file (a read returning 0) is reported on every wait while \
             the connection stays registered: deregister it (EPOLL_CTL_DEL) and drop it"
        );
    }

    #[test]
    fn dispatch_never_blocks() {
        let handled = within(
            LIMIT,
            "dispatch to return at once when nothing is ready. It blocked: it waited on its \
             own epoll instance with a timeout other than 0 (or read a blocking descriptor). \
             dispatch runs inside the user's loop; it must never sleep",
            || {
                let mut sub = SubLoop::new(4).unwrap();
                let (_peer, conn) = UnixStream::pair().unwrap();
                sub.add(A, conn).unwrap();
                sub.dispatch(|_, _| {}).unwrap()
            },
        );
        assert_eq!(handled, 0, "nothing was ready");
    }

    #[test]
    fn the_fd_is_the_sub_loops_own_epoll_instance() {
        let link = within(LIMIT, "fdinfo to be read", || {
            let sub = SubLoop::new(4).unwrap();
            let fd = sub.fd().as_raw_fd();
            std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap()
        });
        assert_eq!(
            link.to_string_lossy(),
            "anon_inode:[eventpoll]",
            "fd() must hand out the sub-loop's epoll instance (its one descriptor)"
        );
    }
}
