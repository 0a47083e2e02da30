//! # Chapter 05, exercise 3: a wait that survives signals
//!
//! Read first: the book's chapter 05 ("Timeouts" and "Pitfalls"), the EINTR
//! entry of [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html),
//! and "Interruption of system calls and library functions by signal
//! handlers" in [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html):
//! epoll_wait is *never* restarted after a signal handler runs, whatever
//! SA_RESTART says. It returns EINTR, and the caller decides.
//!
//! Write [`wait_retrying`], a wait that a stream of signals can neither
//! turn into an error nor stretch:
//!
//! - wait up to `timeout`, or with no limit at all for `None` (epoll_wait's
//!   timeout -1);
//! - when a signal interrupts the wait (EINTR), wait again, but only for the
//!   time that is *left* until the deadline;
//! - epoll_wait counts in whole milliseconds: round the time left **up**, so
//!   that 0.4 ms left does not become 0 ("return at once") and end the wait
//!   before its time;
//! - a timeout longer than epoll_wait can take (`i32::MAX` milliseconds,
//!   about 24.8 days) is cut to that limit;
//! - any other error is returned as it is.
//!
//! Check with `cargo lab check ch05_wait_eintr`.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollTimeout};

/// Waits on `epoll` like `epoll_wait(2)` with `timeout` (`None`: no limit),
/// retrying EINTR with the time that is left. Returns how many events were
/// stored at the front of `events`; `Ok(0)` when the time ran out.
pub fn wait_retrying(
    epoll: &Epoll,
    events: &mut [EpollEvent],
    timeout: Option<Duration>,
) -> nix::Result<usize> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = match deadline {
            None => EpollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Round up: 0.4 ms left must not become "return at once"
                // before the deadline has really passed.
                let millis = left.as_micros().div_ceil(1000);
                EpollTimeout::try_from(millis).unwrap_or(EpollTimeout::MAX)
            }
        };
        match epoll.wait(events, left) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::proc::asleep_in;
    use lab_kit::watchdog::within;
    use nix::sys::epoll::{EpollCreateFlags, EpollFlags};
    use nix::sys::pthread::{pthread_kill, pthread_self};
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    use nix::unistd::{Pid, gettid};
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::thread;

    /// A correct wait_retrying needs at most the 300 ms timeouts below.
    const LIMIT: Duration = Duration::from_secs(2);

    static SIGNALS_HANDLED: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn count_signal(_: nix::libc::c_int) {
        SIGNALS_HANDLED.fetch_add(1, Ordering::SeqCst);
    }

    /// Installs a handler for SIGUSR1 (without SA_RESTART; epoll_wait would
    /// not be restarted with it either).
    fn install_handler() {
        let action = SigAction::new(
            SigHandler::Handler(count_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only touches an atomic, which is signal-safe.
        unsafe { sigaction(Signal::SIGUSR1, &action) }.unwrap();
    }

    /// An epoll instance watching one socket for EPOLLIN, that socket, and
    /// its peer (write to the peer to make the socket ready).
    fn one_socket() -> (Epoll, UnixStream, UnixStream) {
        let (peer, b) = UnixStream::pair().unwrap();
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        epoll
            .add(b.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 7))
            .unwrap();
        (epoll, b, peer)
    }

    /// What happened to a wait that nothing makes ready until it sleeps.
    struct Observed {
        /// The timeout (ms) it was asleep in epoll_wait with, if it slept.
        slept_with: Option<i32>,
        /// What wait_retrying returned once the socket became ready, or the
        /// message it panicked with.
        result: Result<nix::Result<usize>, String>,
    }

    /// If thread `tid` is asleep in epoll_wait, the timeout it passed (in
    /// ms): epoll_wait's 4th argument, which the kernel shows for a
    /// blocked thread in /proc/self/task/TID/syscall (lab_kit::proc).
    fn asleep_in_epoll_wait(tid: Pid) -> Option<i32> {
        asleep_in(tid)
            .filter(|call| call.is_epoll_wait())
            .map(|call| call.int_arg(3))
    }

    /// Calls wait_retrying(timeout) on a thread, with nothing ready. Once
    /// it is asleep in epoll_wait (or has returned), makes the socket ready.
    fn observe(timeout: Option<Duration>) -> Observed {
        let (epoll, _b, peer) = one_socket();
        let (tid_send, tid) = mpsc::channel();
        let waiter = thread::spawn(move || {
            tid_send.send(gettid()).unwrap();
            let mut events = [EpollEvent::empty(); 4];
            wait_retrying(&epoll, &mut events, timeout)
        });
        let tid = tid.recv().unwrap();
        let slept_with = loop {
            if waiter.is_finished() {
                break None;
            }
            if let Some(ms) = asleep_in_epoll_wait(tid) {
                break Some(ms);
            }
            thread::yield_now();
        };
        (&peer).write_all(b"x").unwrap();
        let result = waiter.join().map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        Observed { slept_with, result }
    }

    /// Runs `wait` on a thread and interrupts it with SIGUSR1 each time it
    /// is asleep in epoll_wait, until it returns or `storm` has passed.
    /// Returns the wait's result, how long it took, and how many signals
    /// were sent while it slept in epoll_wait.
    fn wait_under_signals(
        storm: Duration,
        wait: impl FnOnce() -> nix::Result<usize> + Send + 'static,
    ) -> (nix::Result<usize>, Duration, usize) {
        install_handler();
        let (ids_send, ids) = mpsc::channel();
        let waiter = thread::spawn(move || {
            ids_send.send((pthread_self(), gettid())).unwrap();
            let start = Instant::now();
            let result = wait();
            (result, start.elapsed())
        });
        let (thread_id, tid) = ids.recv().unwrap();
        let storm_end = Instant::now() + storm;
        let mut sent = 0;
        while !waiter.is_finished() && Instant::now() < storm_end {
            if asleep_in_epoll_wait(tid).is_some() {
                let _ = pthread_kill(thread_id, Signal::SIGUSR1);
                sent += 1;
                // Let it go back to sleep before the next signal.
                thread::sleep(Duration::from_millis(10));
            } else {
                thread::yield_now();
            }
        }
        let (result, took) = waiter
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (result, took, sent)
    }

    #[test]
    fn returns_an_event_that_is_ready() {
        let n = within(LIMIT, "wait_retrying to return the ready event", || {
            let (epoll, _b, mut peer) = one_socket();
            peer.write_all(b"x").unwrap();
            let mut events = [EpollEvent::empty(); 4];
            let n = wait_retrying(&epoll, &mut events, Some(Duration::from_secs(1))).unwrap();
            (n, events[0].data())
        });
        assert_eq!(n, (1, 7), "one socket has data: one event, with its data");
    }

    #[test]
    fn the_time_left_is_rounded_up_not_down() {
        let early = within(LIMIT, "16 short waits (at most 1.5 ms each)", || {
            let (epoll, _b, _peer) = one_socket();
            let mut events = [EpollEvent::empty(); 4];
            let mut early = Vec::new();
            for micros in [100, 500, 900, 1500].repeat(4) {
                let timeout = Duration::from_micros(micros);
                let start = Instant::now();
                let result = wait_retrying(&epoll, &mut events, Some(timeout));
                let took = start.elapsed();
                if result == Ok(0) && took < timeout {
                    early.push((timeout, took));
                }
            }
            early
        });
        if let Some((timeout, took)) = early.first() {
            panic!(
                "wait_retrying(Some({timeout:?})) returned Ok(0) after {took:?}, before its \
                 timeout ({} of 16 short waits ended early). The time left was rounded DOWN to \
                 whole milliseconds (0.5 ms became 0 ms, which makes epoll_wait return at \
                 once): round it UP, `left.as_micros().div_ceil(1000)`. (nix's \
                 EpollTimeout::try_from(Duration) rounds down.)",
                early.len()
            );
        }
    }

    #[test]
    fn none_means_no_timeout() {
        let seen = within(
            LIMIT,
            "wait_retrying(None) to return the event that came while it waited",
            || observe(None),
        );
        let what = match &seen.result {
            Ok(result) => format!("returned {result:?}"),
            Err(panic) => format!("panicked ({panic})"),
        };
        assert!(
            seen.result == Ok(Ok(1)),
            "wait_retrying(None) {what}. Nothing was ready when it was called; the socket \
             became ready once it was asleep in epoll_wait (or once it had returned), and one \
             event was expected. None means no timeout at all: wait until something is ready \
             (EpollTimeout::NONE, which is -1), not \"do not wait\""
        );
        assert_eq!(
            seen.slept_with,
            Some(-1),
            "wait_retrying(None) slept in epoll_wait with a timeout of {:?} ms: None means no \
             limit, which is -1 (EpollTimeout::NONE)",
            seen.slept_with
        );
    }

    #[test]
    fn signals_are_not_errors() {
        let (result, _, signals) = within(
            LIMIT,
            "wait_retrying(timeout 300 ms) to return within a second while signals arrive",
            || {
                wait_under_signals(Duration::from_secs(1), || {
                    let (epoll, _b, _peer) = one_socket();
                    let mut events = [EpollEvent::empty(); 4];
                    wait_retrying(&epoll, &mut events, Some(Duration::from_millis(300)))
                })
            },
        );
        assert!(
            signals > 0 && SIGNALS_HANDLED.load(Ordering::SeqCst) > 0,
            "the test meant to interrupt the wait, but it never saw it asleep in epoll_wait"
        );
        assert_eq!(
            result,
            Ok(0),
            "nothing was ever ready, so the wait should time out with Ok(0). An Err(EINTR) \
             means a signal interrupted epoll_wait and you returned the error: retry instead"
        );
    }

    #[test]
    fn signals_do_not_stretch_the_timeout() {
        let (result, took, _) = within(
            LIMIT,
            "wait_retrying(timeout 300 ms) to return long before the signals stop (1 s)",
            || {
                wait_under_signals(Duration::from_secs(1), || {
                    let (epoll, _b, _peer) = one_socket();
                    let mut events = [EpollEvent::empty(); 4];
                    wait_retrying(&epoll, &mut events, Some(Duration::from_millis(300)))
                })
            },
        );
        assert_eq!(result, Ok(0), "nothing was ready: time out with Ok(0)");
        assert!(
            took >= Duration::from_millis(300),
            "returned after {took:?}, before the 300 ms timeout: neither a signal nor the \
             rounding of the time left may end the wait early"
        );
        assert!(
            took < Duration::from_millis(900),
            "returned after {took:?} for a 300 ms timeout while a signal came every 10 ms: \
             each retry must wait only for the time that is LEFT (compute the deadline once, \
             before the loop), not for the whole timeout again"
        );
    }

    #[test]
    fn a_timeout_beyond_epoll_waits_limit_is_cut_to_it() {
        let thirty_days = Duration::from_secs(30 * 24 * 3600);
        let seen = within(
            LIMIT,
            "wait_retrying(30 days) to return the event that came while it waited",
            move || observe(Some(thirty_days)),
        );
        if let Err(panic) = &seen.result {
            panic!(
                "wait_retrying(Some(30 days)) panicked ({panic}): epoll_wait takes an int of \
                 milliseconds, at most i32::MAX (about 24.8 days), so EpollTimeout::try_from \
                 fails for 30 days. Cut it to EpollTimeout::MAX instead of unwrapping"
            );
        }
        assert_eq!(
            seen.slept_with,
            Some(i32::MAX),
            "wait_retrying(Some(30 days)) slept in epoll_wait with a timeout of {:?} ms. 30 \
             days in ms does not fit in epoll_wait's int: cut it to i32::MAX \
             (EpollTimeout::MAX). A cast with `as i32` wraps around (a negative timeout means \
             no limit)",
            seen.slept_with
        );
        assert_eq!(seen.result, Ok(Ok(1)), "the socket became ready: one event");
    }

    #[test]
    fn other_errors_are_returned() {
        let result = within(
            LIMIT,
            "wait_retrying with no room for events to fail at once with EINVAL (if it never \
             returns, it retries an error that will never go away)",
            || {
                let (epoll, _b, _peer) = one_socket();
                wait_retrying(&epoll, &mut [], Some(Duration::from_millis(100)))
            },
        );
        assert_eq!(
            result,
            Err(Errno::EINVAL),
            "epoll_wait with room for no events (maxevents 0) fails with EINVAL. Only EINTR \
             is worth retrying: return any other error as it is"
        );
    }
}
