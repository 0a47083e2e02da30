//! # Chapter 11, exercise 3: signals for a clean shutdown, through a signalfd
//!
//! Read first: the book's chapter 11 ("signalfd: signals as data" and
//! "Signal handlers vs signalfd"), and
//! [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html)
//! (DESCRIPTION: the signals "should be blocked using sigprocmask(2)") and
//! [sigprocmask(2)](https://man7.org/linux/man-pages/man2/sigprocmask.2.html)
//! (SIG_BLOCK vs SIG_SETMASK). Run
//! `cargo run -p ch11-beyond-sockets -- signalfd`.
//!
//! A server that stops cleanly on SIGINT or SIGTERM reads them from a
//! signalfd in its loop. A signalfd only *reports* signals that are
//! pending; a signal that is not blocked is not pending for long: it is
//! delivered at once, and SIGINT's or SIGTERM's default action ends the
//! process before the loop hears of it.
//!
//! Write:
//!
//! - [`shutdown_signals`]: block `signals` for the calling thread, adding
//!   them to what it blocks already (leave its other blocked signals
//!   blocked), and only then create a non-blocking, close-on-exec signalfd
//!   for them;
//! - [`pending`]: read every signal pending on the signalfd now (read until
//!   there is none: nix's `read_signal` answers `None` for EAGAIN), in the
//!   order read.
//!
//! (The tests send signals to the test's own thread with `pthread_kill`: a
//! signal sent to the whole process would go to any thread that does not
//! block it, and the test runner has many.)
//!
//! Check with `cargo lab check ch11_signals`.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Blocks `signals` for this thread, then opens a signalfd for them.
pub fn shutdown_signals(signals: &[Signal]) -> nix::Result<SignalFd> {
    // TODO: a SigSet of `signals`; block them for this thread
    // (nix::sys::signal::pthread_sigmask: which `how` adds to the mask?);
    // then SignalFd::with_flags with the flags the task asks for.
    todo!("ch11: block, then create the signalfd")
}

/// Every signal pending on `sfd` now, in the order read.
pub fn pending(sfd: &SignalFd) -> nix::Result<Vec<Signal>> {
    // TODO: call sfd.read_signal() until it returns Ok(None); each
    // Some(info) has the signal number in info.ssi_signo
    // (Signal::try_from(info.ssi_signo as i32)).
    todo!("ch11: read the pending signals")
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
    use nix::sys::pthread::{pthread_kill, pthread_self};
    use std::os::fd::AsFd;
    use std::time::Duration;

    /// A correct answer takes microseconds.
    const LIMIT: Duration = Duration::from_secs(2);

    /// The signals this thread blocks now.
    fn blocked() -> SigSet {
        let mut old = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut old)).unwrap();
        old
    }

    /// Sends `signal` to this thread, after checking that it is blocked:
    /// an unblocked SIGTERM would end the whole test process.
    fn send_to_myself(signal: Signal) {
        assert!(
            blocked().contains(signal),
            "{signal} is not blocked after shutdown_signals: it would be delivered at once and \
             its default action would end the process, and the signalfd would never see it. \
             Block the signals (sigprocmask/pthread_sigmask with SIG_BLOCK) before creating \
             the signalfd"
        );
        pthread_kill(pthread_self(), signal).unwrap();
    }

    #[test]
    fn the_signals_are_blocked_before_any_arrives() {
        let (usr2, term) = within(LIMIT, "shutdown_signals to return", || {
            let _sfd = shutdown_signals(&[Signal::SIGUSR2, Signal::SIGTERM])
                .expect("shutdown_signals failed");
            let now = blocked();
            (now.contains(Signal::SIGUSR2), now.contains(Signal::SIGTERM))
        });
        assert!(
            usr2 && term,
            "after shutdown_signals(&[SIGUSR2, SIGTERM]) this thread blocks SIGUSR2: {usr2}, \
             SIGTERM: {term}. A signalfd reports only pending signals, and only a blocked \
             signal stays pending: block them first (SIG_BLOCK), then create the signalfd"
        );
    }

    #[test]
    fn a_blocked_signal_is_read_from_the_signalfd() {
        let got = within(LIMIT, "a SIGUSR2 to be read", || {
            let sfd = shutdown_signals(&[Signal::SIGUSR2]).expect("shutdown_signals failed");
            send_to_myself(Signal::SIGUSR2);
            pending(&sfd)
        });
        assert_eq!(
            got,
            Ok(vec![Signal::SIGUSR2]),
            "SIGUSR2 was sent and is pending: pending() should read it (create the signalfd \
             with the same signals you blocked)"
        );
    }

    #[test]
    fn every_pending_signal_is_read_and_two_of_a_kind_are_one() {
        let mut got = within(LIMIT, "the pending signals to be read", || {
            let sfd = shutdown_signals(&[Signal::SIGUSR2, Signal::SIGTERM])
                .expect("shutdown_signals failed");
            send_to_myself(Signal::SIGUSR2);
            send_to_myself(Signal::SIGUSR2);
            send_to_myself(Signal::SIGTERM);
            pending(&sfd).expect("pending failed")
        })
        .into_iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>();
        got.sort();
        assert_eq!(
            got,
            vec!["SIGTERM", "SIGUSR2"],
            "SIGUSR2 twice, then SIGTERM: pending() should read SIGUSR2 once (a standard signal \
             is pending or not: two before a read are one) and SIGTERM: read until \
             read_signal() says None, not just once"
        );
    }

    #[test]
    fn nothing_pending_reads_nothing_at_once() {
        let got = within(
            LIMIT,
            "pending() with no signal to return at once. A blocking signalfd waits for a \
             signal: create it with SFD_NONBLOCK",
            || {
                let sfd = shutdown_signals(&[Signal::SIGUSR2]).expect("shutdown_signals failed");
                pending(&sfd)
            },
        );
        assert_eq!(
            got,
            Ok(vec![]),
            "no signal was sent: pending() should be empty"
        );
    }

    #[test]
    fn signals_blocked_before_stay_blocked() {
        let still = within(LIMIT, "shutdown_signals to return", || {
            let mut before = SigSet::empty();
            before.add(Signal::SIGUSR1);
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&before), None).unwrap();
            let _sfd = shutdown_signals(&[Signal::SIGTERM]).expect("shutdown_signals failed");
            blocked().contains(Signal::SIGUSR1)
        });
        assert!(
            still,
            "this thread blocked SIGUSR1 before calling shutdown_signals(&[SIGTERM]), and \
             afterwards SIGUSR1 is unblocked: SIG_SETMASK replaces the whole mask, SIG_BLOCK \
             adds to it"
        );
    }

    #[test]
    fn the_signalfd_is_non_blocking_and_close_on_exec() {
        let (status, fd_flags) = within(LIMIT, "two fcntl calls", || {
            let sfd = shutdown_signals(&[Signal::SIGUSR2]).expect("shutdown_signals failed");
            let status = OFlag::from_bits_retain(fcntl(sfd.as_fd(), FcntlArg::F_GETFL).unwrap());
            let fd_flags = FdFlag::from_bits_retain(fcntl(sfd.as_fd(), FcntlArg::F_GETFD).unwrap());
            (status, fd_flags)
        });
        assert!(
            status.contains(OFlag::O_NONBLOCK),
            "the signalfd is not O_NONBLOCK: create it with SFD_NONBLOCK"
        );
        assert!(
            fd_flags.contains(FdFlag::FD_CLOEXEC),
            "the signalfd is not close-on-exec: create it with SFD_CLOEXEC"
        );
    }
}
