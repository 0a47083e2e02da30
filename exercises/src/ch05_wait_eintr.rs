//! # Chapter 05, exercise 3: a wait that survives signals
//!
//! Read first: the book's chapter 05 ("Timeouts"), the EINTR entry of
//! [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html),
//! and "Interruption of system calls and library functions by signal
//! handlers" in [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html):
//! epoll_wait is *never* restarted after a signal handler runs, whatever
//! SA_RESTART says. It returns EINTR, and the caller decides.
//!
//! Write [`wait_retrying`]: wait up to `timeout` (or forever for `None`),
//! and when a signal interrupts the wait, wait again, but only for the time
//! that is *left*, so that a stream of signals can neither surface as an
//! error nor stretch the timeout forever.
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
    // TODO: compute a deadline once. In a loop: work out how much time is
    // left (rounded up to whole milliseconds), call `epoll.wait` with it,
    // and go round again on Err(Errno::EINTR); return anything else.
    todo!("ch05: wait, retrying EINTR with the time left")
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::sys::epoll::{EpollCreateFlags, EpollFlags};
    use nix::sys::pthread::{pthread_kill, pthread_self};
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::thread;

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

    /// Runs `wait` on a thread that a second thread keeps interrupting with
    /// SIGUSR1 every 20 ms for `storm`; returns the wait's result and how
    /// long it took.
    fn wait_under_signals(
        storm: Duration,
        wait: impl FnOnce() -> nix::Result<usize> + Send + 'static,
    ) -> (nix::Result<usize>, Duration) {
        install_handler();
        let waiting = Arc::new(AtomicBool::new(true));
        let (tid_send, tid_recv) = std::sync::mpsc::channel();
        let still_waiting = waiting.clone();
        let waiter = thread::spawn(move || {
            // Stop the signals when this thread ends, even by a panic.
            struct Finished(Arc<AtomicBool>);
            impl Drop for Finished {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::SeqCst);
                }
            }
            let _finished = Finished(still_waiting);
            tid_send.send(pthread_self()).unwrap();
            let start = Instant::now();
            let result = wait();
            (result, start.elapsed())
        });
        let target = tid_recv.recv().unwrap();
        let storm_end = Instant::now() + storm;
        while waiting.load(Ordering::SeqCst) && Instant::now() < storm_end {
            let _ = pthread_kill(target, Signal::SIGUSR1);
            thread::sleep(Duration::from_millis(20));
        }
        waiter
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    #[test]
    fn returns_an_event_that_is_ready() {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let (mut peer, b) = UnixStream::pair().unwrap();
        epoll
            .add(b.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 7))
            .unwrap();
        peer.write_all(b"x").unwrap();
        let n = within(
            Duration::from_secs(5),
            "wait_retrying to return the ready event",
            move || {
                let mut events = [EpollEvent::empty(); 4];
                let n = wait_retrying(&epoll, &mut events, Some(Duration::from_secs(2))).unwrap();
                (n, events[0].data())
            },
        );
        assert_eq!(n, (1, 7), "one socket has data: one event, with its data");
    }

    #[test]
    fn signals_are_not_errors() {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let (_peer, b) = UnixStream::pair().unwrap();
        epoll
            .add(b.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 7))
            .unwrap();
        let before = SIGNALS_HANDLED.load(Ordering::SeqCst);
        let (result, _) = within(
            Duration::from_secs(10),
            "wait_retrying(timeout 300 ms) to return within a few seconds while signals arrive",
            move || {
                wait_under_signals(Duration::from_secs(2), move || {
                    let mut events = [EpollEvent::empty(); 4];
                    wait_retrying(&epoll, &mut events, Some(Duration::from_millis(300)))
                })
            },
        );
        assert!(
            SIGNALS_HANDLED.load(Ordering::SeqCst) > before,
            "the test meant to interrupt the wait, but no signal was handled"
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
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let (_peer, b) = UnixStream::pair().unwrap();
        epoll
            .add(b.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 7))
            .unwrap();
        let (result, took) = within(
            Duration::from_secs(10),
            "wait_retrying(timeout 300 ms) to return long before the signals stop (3 s)",
            move || {
                wait_under_signals(Duration::from_secs(3), move || {
                    let mut events = [EpollEvent::empty(); 4];
                    wait_retrying(&epoll, &mut events, Some(Duration::from_millis(300)))
                })
            },
        );
        assert_eq!(result, Ok(0), "nothing was ready: time out with Ok(0)");
        assert!(
            took >= Duration::from_millis(300),
            "returned after {took:?}, before the 300 ms timeout: a signal must not end the wait early"
        );
        assert!(
            took < Duration::from_millis(2500),
            "returned after {took:?} for a 300 ms timeout while a signal came every 20 ms: \
             each retry must wait only for the time that is LEFT (keep a deadline), not the \
             whole timeout again"
        );
    }
}
