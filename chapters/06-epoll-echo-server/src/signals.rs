//! Signals as a descriptor: `serve` reads SIGINT, SIGTERM (stop cleanly)
//! and SIGUSR1 (print statistics) from a signalfd in its own poller, like
//! any socket ([signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html);
//! chapter 11 shows each step).
//!
//! Why not a handler that sets a flag? The loop would check the flag and
//! then wait; a signal that lands between the check and the wait runs its
//! handler, sets the flag, and interrupts nothing (the loop was not asleep
//! yet), so the loop sleeps with the flag set until some socket has news.
//! Here the signals are blocked: one that arrives stays pending, which
//! makes the signalfd readable, and a wait that starts later returns at
//! once. There is no moment for it to fall into.

use std::os::fd::{AsRawFd, RawFd};

use ch03_select::Token;
use lab_kit::special;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signalfd's token in the server's poller: above any connection id.
pub const SIGNALS: Token = Token(usize::MAX);

// ANCHOR: server_signals
/// SIGINT, SIGTERM and SIGUSR1, blocked and readable from a signalfd.
pub struct ServerSignals {
    sfd: SignalFd,
}

impl ServerSignals {
    /// Blocks SIGINT, SIGTERM and SIGUSR1 for this thread, then opens a
    /// non-blocking signalfd for them. In this order: until they are
    /// blocked, each still has its default action (end the process), and a
    /// signalfd only reports signals that stay pending. Call it before
    /// starting threads (they inherit the mask; a thread that does not
    /// block a signal may be the one it is delivered to) and before
    /// announcing the server.
    pub fn block_and_open() -> nix::Result<ServerSignals> {
        let mut mask = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGUSR1] {
            mask.add(signal);
        }
        special::sigprocmask(SigmaskHow::SIG_BLOCK, &mask)?;
        let sfd = special::signalfd(
            &mask,
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
            "sigfd",
        )?;
        Ok(ServerSignals { sfd })
    }

    /// Every signal pending now, in the order read (each standard signal
    /// at most once: two SIGUSR1 sent before the read are one).
    pub fn read_all(&self) -> nix::Result<Vec<Signal>> {
        let mut signals = Vec::new();
        while let Some(info) = special::signalfd_read(&self.sfd)? {
            if let Ok(signal) = special::signal_of(&info) {
                signals.push(signal);
            }
        }
        Ok(signals)
    }
}

impl AsRawFd for ServerSignals {
    fn as_raw_fd(&self) -> RawFd {
        self.sfd.as_raw_fd()
    }
}
// ANCHOR_END: server_signals
