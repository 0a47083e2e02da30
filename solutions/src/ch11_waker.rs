//! # Chapter 11, exercise 1: wake a loop from another thread with an eventfd
//!
//! Read first: the book's chapter 11 ("eventfd: a counter" and "The
//! self-pipe trick and eventfd"), and
//! [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
//! (what write and read do to the counter, EFD_NONBLOCK, EFD_SEMAPHORE).
//! Run `cargo run -p ch11-beyond-sockets -- eventfd`.
//!
//! An event loop sleeps in `epoll_wait`. Another thread that has work for
//! it (a finished job, a new connection to hand over) needs a way to wake
//! it: a descriptor in the loop's interest list that it can make readable.
//! An eventfd is made for it: a 64-bit counter; a write adds to it, a read
//! returns it and sets it to 0, and it is readable while it is not 0.
//!
//! Write [`Waker`]:
//!
//! - [`Waker::new`]: an eventfd with a counter of 0, non-blocking and
//!   close-on-exec;
//! - [`Waker::wake`]: add 1 to the counter, from any thread, any number of
//!   times. It must never block the thread that wakes (a producer that
//!   sleeps because the loop is busy defeats the purpose): if the counter
//!   is full, the loop will wake anyway, so that is success;
//! - [`Waker::drain`]: called by the loop when the eventfd is readable:
//!   return how many wakes came since the last drain, and set the counter
//!   to 0, so the (level-triggered) registration stops reporting it. 0 if
//!   there were none, at once.
//!
//! Check with `cargo lab check ch11_waker`.

use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};

/// An eventfd that other threads write to wake the loop that watches it.
pub struct Waker {
    efd: EventFd,
}

impl Waker {
    /// A non-blocking, close-on-exec eventfd with a counter of 0.
    pub fn new() -> nix::Result<Waker> {
        let flags = EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC;
        Ok(Waker {
            efd: EventFd::from_value_and_flags(0, flags)?,
        })
    }

    /// Adds 1 to the counter; never blocks.
    pub fn wake(&self) -> nix::Result<()> {
        match self.efd.write(1) {
            // EAGAIN: the counter is full, so the eventfd is readable and
            // the loop will wake: nothing to do.
            Ok(_) | Err(Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads the counter (the wakes since the last drain) and sets it to 0.
    pub fn drain(&self) -> nix::Result<u64> {
        match self.efd.read() {
            Ok(count) => Ok(count),
            Err(Errno::EAGAIN) => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
    use std::sync::Arc;
    use std::time::Duration;

    /// A correct waker answers within microseconds.
    const LIMIT: Duration = Duration::from_secs(2);

    /// A level-triggered epoll instance watching the waker for EPOLLIN.
    fn watched(waker: &Waker) -> Epoll {
        let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        ep.add(waker.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 7))
            .unwrap();
        ep
    }

    /// One wait that only looks: 1 if the waker is readable, else 0.
    fn ready(ep: &Epoll) -> usize {
        ep.wait(&mut [EpollEvent::empty(); 2], EpollTimeout::ZERO)
            .unwrap()
    }

    /// What a loop does: `turns` waits that only look; on each event it
    /// drains the waker. Returns (events seen, wakes the drains counted).
    fn run_loop(ep: &Epoll, waker: &Waker, turns: usize) -> (usize, u64) {
        let mut events = 0;
        let mut counted = 0;
        for _ in 0..turns {
            if ready(ep) == 1 {
                events += 1;
                counted += waker.drain().expect("drain failed");
            }
        }
        (events, counted)
    }

    #[test]
    fn three_wakes_before_the_loop_runs_wake_it_once_then_it_sleeps() {
        let (events, counted) = within(LIMIT, "three wakes and a loop of 1000 turns", || {
            let waker = Waker::new().expect("Waker::new failed");
            let ep = watched(&waker);
            for _ in 0..3 {
                waker.wake().expect("wake failed");
            }
            run_loop(&ep, &waker, 1000)
        });
        assert!(
            events > 0,
            "three wakes, and the loop never saw the eventfd readable: does wake() add 1 to \
             the counter (an 8-byte write of 1)? Writing 0 adds nothing and wakes nobody"
        );
        assert!(
            events == 1,
            "three wakes, then a loop of 1000 turns that drains the waker on each event: it \
             saw {events} events (a correct waker: 1). The registration is level-triggered: \
             while the counter is not 0 every wait reports it, and the loop spins. drain() \
             must read the whole counter, every time (not 1 at a time: no EFD_SEMAPHORE)"
        );
        assert_eq!(
            counted, 3,
            "three wakes before the loop ran: drain() should say 3 (the counter adds them up)"
        );
    }

    #[test]
    fn another_thread_wakes_the_loop_asleep_in_epoll_wait() {
        let woken = within(
            LIMIT,
            "the loop, asleep in epoll_wait, to be woken by another thread's wake()",
            || {
                let waker = Arc::new(Waker::new().expect("Waker::new failed"));
                let ep = watched(&waker);
                let loop_thread = nix::unistd::gettid();
                let theirs = Arc::clone(&waker);
                std::thread::spawn(move || {
                    lab_kit::proc::wait_until_asleep(loop_thread, LIMIT, |a| a.is_epoll_wait());
                    theirs.wake().expect("wake failed");
                });
                let n = ep.wait(&mut [EpollEvent::empty(); 2], 1500u16).unwrap();
                let count = waker.drain().expect("drain failed");
                (n, count, ready(&ep))
            },
        );
        assert_eq!(
            woken.0, 1,
            "the other thread called wake() while the loop slept, and epoll_wait did not \
             return within 1.5 s: wake() must make the eventfd readable (add 1; 0 adds nothing)"
        );
        assert_eq!(woken.1, 1, "one wake: drain() should say 1");
        assert_eq!(
            woken.2, 0,
            "after drain() the eventfd must not be readable any more (the counter is 0)"
        );
    }

    #[test]
    fn a_wake_never_blocks_even_when_the_counter_is_full() {
        let result = within(
            LIMIT,
            "wake() to return while the counter is full. A blocking eventfd puts the waking \
             thread to sleep until the loop reads: create it with EFD_NONBLOCK",
            || {
                let waker = Waker::new().expect("Waker::new failed");
                // The largest value the counter holds is 2^64-2.
                let full = (u64::MAX - 1).to_ne_bytes();
                nix::unistd::write(waker.as_fd(), &full).unwrap();
                waker.wake()
            },
        );
        assert_eq!(
            result,
            Ok(()),
            "wake() on a full counter: the write fails with EAGAIN, but the eventfd is readable \
             and the loop will wake, so that is success, not an error"
        );
    }

    #[test]
    fn drain_with_nothing_pending_returns_0_at_once() {
        let drained = within(
            LIMIT,
            "drain() of a counter of 0 to return at once. A blocking eventfd makes the read \
             wait for a wake: create it with EFD_NONBLOCK",
            || {
                let waker = Waker::new().expect("Waker::new failed");
                waker.drain()
            },
        );
        assert_eq!(
            drained,
            Ok(0),
            "nothing woke the loop: drain() should say 0 (the read's EAGAIN means 'none')"
        );
    }

    #[test]
    fn the_eventfd_is_non_blocking_and_close_on_exec() {
        let (status, fd_flags) = within(LIMIT, "two fcntl calls", || {
            let waker = Waker::new().expect("Waker::new failed");
            let status = OFlag::from_bits_retain(fcntl(waker.as_fd(), FcntlArg::F_GETFL).unwrap());
            let fd_flags =
                FdFlag::from_bits_retain(fcntl(waker.as_fd(), FcntlArg::F_GETFD).unwrap());
            (status, fd_flags)
        });
        assert!(
            status.contains(OFlag::O_NONBLOCK),
            "the eventfd is not O_NONBLOCK: create it with EFD_NONBLOCK"
        );
        assert!(
            fd_flags.contains(FdFlag::FD_CLOEXEC),
            "the eventfd is not close-on-exec: create it with EFD_CLOEXEC (a child program \
             should not inherit the loop's waker)"
        );
    }

    #[test]
    fn wakes_from_four_threads_all_add_up() {
        let (counted, left) = within(
            LIMIT,
            "4 threads x 1000 wakes while the loop drains",
            || {
                let waker = Arc::new(Waker::new().expect("Waker::new failed"));
                let producers: Vec<_> = (0..4)
                    .map(|_| {
                        let waker = Arc::clone(&waker);
                        std::thread::spawn(move || {
                            for _ in 0..1000 {
                                waker.wake().expect("wake failed");
                            }
                        })
                    })
                    .collect();
                let mut counted = 0;
                while !producers.iter().all(|p| p.is_finished()) {
                    counted += waker.drain().expect("drain failed");
                }
                for producer in producers {
                    producer.join().unwrap();
                }
                counted += waker.drain().expect("drain failed");
                (counted, waker.drain().expect("drain failed"))
            },
        );
        assert_eq!(
            counted, 4000,
            "4 threads woke 1000 times each; the drains should add up to 4000 (each drain \
             returns the counter it read, and the read sets it to 0)"
        );
        assert_eq!(left, 0, "everything was drained: the next drain says 0");
    }
}
