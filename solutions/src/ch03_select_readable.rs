//! # Chapter 03, exercise 1: a read watcher that survives select
//!
//! Read first: the book's chapter 03 ("The kernel's view",
//! "The set is overwritten", "nfds is the highest descriptor plus one" and
//! "Pitfalls").
//!
//! Then the DESCRIPTION of
//! [select(2)](https://man7.org/linux/man-pages/man2/select.2.html) (nfds,
//! the timeout, and how each set is modified in place on return), and
//! "SELECT LAW" in
//! [select_tut(2)](https://man7.org/linux/man-pages/man2/select_tut.2.html).
//! Run `cargo run -p ch03-select -- overwritten` and `-- nfds` to see both
//! traps happen.
//!
//! A [`ReadWatcher`] remembers the descriptors it watches in an `FdSet`
//! (`registered`) and the highest of them. Write:
//! - [`ReadWatcher::nfds`]: the `nfds` argument for select (0 when nothing
//!   is watched);
//! - [`ReadWatcher::wait`]: ask select which watched descriptors are
//!   readable, and return their numbers in ascending order. It can be called
//!   again and again: every call must watch *every* registered descriptor.
//!   The timeout: `None` waits until a descriptor is readable, `Some(d)`
//!   waits at most `d` (all of it: select's timeval has microseconds), and
//!   `Some(Duration::ZERO)` only looks.
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
    /// looks at, so the highest watched descriptor + 1 (0 if none).
    pub fn nfds(&self) -> i32 {
        self.highest.map_or(0, |highest| highest + 1)
    }

    /// The watched descriptors that are readable, ascending. `timeout`:
    /// `None` waits until one is; `Some(Duration::ZERO)` only looks.
    pub fn wait(&mut self, timeout: Option<Duration>) -> nix::Result<Vec<RawFd>> {
        // select overwrites the set with its answer: hand it a copy, so
        // `registered` still holds every watched descriptor next time.
        let mut ready = self.registered;
        let mut tv = timeout.map(|t| TimeVal::microseconds(t.as_micros() as i64));
        select(self.nfds(), &mut ready, None, None, tv.as_mut())?;
        Ok(ready.fds(self.highest).map(|fd| fd.as_raw_fd()).collect())
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;
    use nix::sys::pthread::{Pthread, pthread_kill, pthread_self};
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    use nix::unistd::Pid;
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use lab_kit::proc::asleep_in;
    use lab_kit::watchdog::within;

    /// A correct answer finishes each test in well under 0.1 s (the timeout
    /// test waits its 250 ms).
    const LIMIT: Duration = Duration::from_secs(2);

    /// A connected pair: `(watched, peer)`. Writing to `peer` makes
    /// `watched` readable.
    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().expect("socketpair")
    }

    fn send(peer: &UnixStream, byte: u8) {
        nix::unistd::write(peer, &[byte]).expect("write to the peer");
    }

    /// A signal whose handler does nothing: its only effect is to interrupt
    /// the system call the thread sleeps in. select is never restarted
    /// after a handler runs (signal(7)): it fails with EINTR.
    const INTERRUPT: Signal = Signal::SIGUSR2;

    extern "C" fn do_nothing(_: nix::libc::c_int) {}

    fn install_handler() {
        let action = SigAction::new(
            SigHandler::Handler(do_nothing),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler does nothing, which is async-signal-safe.
        unsafe { sigaction(INTERRUPT, &action) }.unwrap();
    }

    /// Starts a thread that watches a quiet socket with `wait(None)`, and
    /// waits (without sleeping) until that thread sleeps in the kernel, has
    /// returned, or 1 s has passed (it spins). Returns the thread, its ids, the watched socket's
    /// number and the peer (keep it: dropping it makes the socket readable).
    #[allow(clippy::type_complexity)]
    fn start_waiting() -> (
        thread::JoinHandle<nix::Result<Vec<RawFd>>>,
        Pthread,
        RawFd,
        UnixStream,
    ) {
        let (watched, peer) = pair();
        let number = watched.as_raw_fd();
        let (ids_send, ids) = mpsc::channel::<(Pthread, Pid)>();
        let waiter = thread::spawn(move || {
            let watched = watched;
            ids_send
                .send((pthread_self(), nix::unistd::gettid()))
                .unwrap();
            let mut watcher = ReadWatcher::new();
            watcher.add(watched.as_fd());
            watcher.wait(None)
        });
        let (pthread, tid) = ids.recv().unwrap();
        let start = Instant::now();
        while !waiter.is_finished()
            && asleep_in(tid).is_none()
            && start.elapsed() < Duration::from_secs(1)
        {
            thread::yield_now();
        }
        (waiter, pthread, number, peer)
    }

    #[test]
    fn nfds_is_the_highest_descriptor_plus_one() {
        let (empty, both, a, b) = within(LIMIT, "nfds to return at once", || {
            let (a, _pa) = pair();
            let (b, _pb) = pair();
            let mut watcher = ReadWatcher::new();
            let empty = watcher.nfds();
            watcher.add(a.as_fd());
            watcher.add(b.as_fd());
            (empty, watcher.nfds(), a.as_raw_fd(), b.as_raw_fd())
        });
        assert_eq!(
            empty, 0,
            "nothing watched: nfds should be 0 (select then looks at no bit at all)"
        );
        assert_eq!(
            both,
            a.max(b) + 1,
            "watching fds {a} and {b}: nfds is a number of bits, not a descriptor. The kernel \
             looks at bits 0..nfds-1, so nfds must be the highest descriptor + 1 (select(2), \
             DESCRIPTION: nfds is the highest-numbered descriptor in any of the three sets, \
             plus 1)"
        );
    }

    #[test]
    fn nothing_ready_means_an_empty_answer() {
        let (ready, a) = within(
            LIMIT,
            "wait(Some(Duration::ZERO)) to return at once: a zero timeout only looks. \
             If it sleeps, the timeout never reached select (None means: wait forever)",
            || {
                let (a, _pa) = pair();
                let mut watcher = ReadWatcher::new();
                watcher.add(a.as_fd());
                (watcher.wait(Some(Duration::ZERO)), a.as_raw_fd())
            },
        );
        assert_eq!(
            ready,
            Ok(Vec::<RawFd>::new()),
            "nobody wrote to fd {a}, yet wait said it is readable: return the descriptors \
             select left in the set *after* the call, not the ones you put in"
        );
    }

    #[test]
    fn reports_the_readable_descriptor() {
        let (ready, a, b) = within(
            LIMIT,
            "wait(Some(Duration::ZERO)) to return at once",
            || {
                let (a, pa) = pair();
                let (b, _pb) = pair();
                let mut watcher = ReadWatcher::new();
                watcher.add(a.as_fd());
                watcher.add(b.as_fd());
                send(&pa, b'x');
                let ready = watcher.wait(Some(Duration::ZERO));
                (ready, a.as_raw_fd(), b.as_raw_fd())
            },
        );
        assert_eq!(
            ready,
            Ok(vec![a]),
            "fd {a} has a byte waiting and fd {b} has none"
        );
    }

    #[test]
    fn the_highest_descriptor_is_watched_too() {
        let (ready, highest) = within(
            LIMIT,
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
                (watcher.wait(None), highest.as_raw_fd())
            },
        );
        assert_eq!(
            ready,
            Ok(vec![highest]),
            "only fd {highest}, the highest, has data"
        );
    }

    #[test]
    fn a_second_wait_sees_what_became_ready_after_the_first() {
        let (first, second, a, b) = within(
            LIMIT,
            "two calls of wait(Some(Duration::ZERO)) to return at once",
            || {
                let (a, pa) = pair();
                let (b, pb) = pair();
                let mut watcher = ReadWatcher::new();
                watcher.add(a.as_fd());
                watcher.add(b.as_fd());
                send(&pa, b'x');
                let first = watcher.wait(Some(Duration::ZERO));
                // Nothing was read, so a is still readable; now b gets a byte too.
                send(&pb, b'y');
                let second = watcher.wait(Some(Duration::ZERO));
                (first, second, a.as_raw_fd(), b.as_raw_fd())
            },
        );
        assert_eq!(first, Ok(vec![a]), "first wait: only fd {a} has data");
        assert_eq!(
            second,
            Ok(vec![a.min(b), a.max(b)]),
            "second wait: fds {a} and {b} both have data. select overwrites the sets it is \
             given: after the first call, `registered` held only fd {a}. Give select a copy \
             (FdSet is Copy) and keep `registered` as it was (select(2), DESCRIPTION: on \
             return each set is modified in place; select_tut(2), SELECT LAW)"
        );
    }

    #[test]
    fn answers_in_ascending_order_whatever_the_order_of_add() {
        let (ready, low, high) = within(
            LIMIT,
            "wait(Some(Duration::ZERO)) to return at once",
            || {
                let (a, pa) = pair();
                let (b, pb) = pair();
                let (low, high) = if a.as_raw_fd() < b.as_raw_fd() {
                    (&a, &b)
                } else {
                    (&b, &a)
                };
                let mut watcher = ReadWatcher::new();
                // The higher number first.
                watcher.add(high.as_fd());
                watcher.add(low.as_fd());
                send(&pa, b'x');
                send(&pb, b'y');
                (
                    watcher.wait(Some(Duration::ZERO)),
                    low.as_raw_fd(),
                    high.as_raw_fd(),
                )
            },
        );
        assert_eq!(
            ready,
            Ok(vec![low, high]),
            "fd {high} was added before fd {low} and both have data: wait returns them in \
             ascending order (FdSet::fds walks the bits from low to high)"
        );
    }

    #[test]
    fn none_waits_until_a_descriptor_is_readable() {
        let (ready, watched) = within(
            LIMIT,
            "wait(None) to return once the watched socket got a byte (sent as soon as the \
             waiting thread slept)",
            || {
                let (waiter, _, watched, peer) = start_waiting();
                if !waiter.is_finished() {
                    send(&peer, b'x');
                }
                let ready = waiter.join().expect("the waiting thread panicked");
                drop(peer);
                (ready, watched)
            },
        );
        assert_eq!(
            ready,
            Ok(vec![watched]),
            "wait(None) returned {ready:?} before fd {watched} was readable. None means no \
             time limit: select should sleep until a watched descriptor is ready (pass None \
             as select's timeout, not a zero timeval)"
        );
    }

    #[test]
    fn a_timeout_waits_that_long() {
        let (ready, waited) = within(
            LIMIT,
            "wait(Some(250 ms)) to return after 250 ms: nothing is readable. If it sleeps on, \
             the timeout never reached select",
            || {
                let (a, _pa) = pair();
                let mut watcher = ReadWatcher::new();
                watcher.add(a.as_fd());
                let start = Instant::now();
                let ready = watcher.wait(Some(Duration::from_millis(250)));
                (ready, start.elapsed())
            },
        );
        assert_eq!(ready, Ok(Vec::new()), "nothing was readable");
        assert!(
            waited >= Duration::from_millis(250),
            "wait(Some(250 ms)) returned after {waited:?}, with nothing readable: select \
             sleeps for the whole timeout (it may overrun, never return early), so the \
             timeval it got was shorter. A timeval is seconds and microseconds: \
             TimeVal::microseconds(t.as_micros() as i64) keeps all of it; whole seconds \
             (as_secs) or milliseconds taken as microseconds don't"
        );
    }

    #[test]
    fn a_signal_ends_the_wait_with_eintr() {
        install_handler();
        let (signalled, result) = within(
            LIMIT,
            "wait(None) to return Err(EINTR) after a signal interrupted select. Still \
             running means wait called select again: return select's errors as they are, \
             the caller decides whether to retry",
            || {
                let (waiter, pthread, _, peer) = start_waiting();
                let signalled = !waiter.is_finished();
                if signalled {
                    let _ = pthread_kill(pthread, INTERRUPT);
                }
                let result = waiter.join().expect("the waiting thread panicked");
                drop(peer);
                (signalled, result)
            },
        );
        assert!(
            signalled,
            "wait(None) returned {result:?} before anything happened: None means wait until \
             a descriptor is readable"
        );
        assert_eq!(
            result,
            Err(Errno::EINTR),
            "a signal handler ran while select slept, so select failed with EINTR. wait \
             should return that error as it is (the caller decides whether to retry), not \
             turn it into an answer"
        );
    }
}
