//! Clean shutdown: SIGINT and SIGTERM arrive as readable data on a
//! signalfd in the reactor's epoll set, not as a handler that interrupts
//! the program anywhere.
//!
//! [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html):
//! the signals must first be *blocked* (pthread_sigmask), or their default
//! action (ending the process) runs before anyone reads them. A blocked
//! signal stays pending, and the signalfd is readable while one is; each
//! `read` takes one as a 128-byte `struct signalfd_siginfo`. The mask is
//! per thread and inherited by threads created later: block in the main
//! thread before starting any other.

use std::os::fd::AsRawFd;

use lab_kit::names::{name, name_of};
use lab_kit::trace::{emit, errno, result};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::{Interest, Next, Reactor, Ready, Token};

fn names(signals: &[Signal]) -> String {
    let names: Vec<&str> = signals.iter().map(|s| s.as_str()).collect();
    format!("[{}]", names.join(", "))
}

impl<S> Reactor<S> {
    /// Blocks `signals` in this thread and registers a signalfd named
    /// `signals` for them; each one read is passed to `on_signal`.
    pub fn on_signals(
        &mut self,
        signals: &[Signal],
        mut on_signal: impl FnMut(&mut Reactor<S>, Signal) + 'static,
    ) -> nix::Result<Token> {
        let mut mask = SigSet::empty();
        for &signal in signals {
            mask.add(signal);
        }
        let r = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None);
        emit("pthread_sigmask", || {
            let shown = result(&r, |_| "0".to_string());
            format!("pthread_sigmask(SIG_BLOCK, {}) -> {shown}", names(signals))
        });
        r?;
        let flags = SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK;
        let r = SignalFd::with_flags(&mask, flags);
        if let Ok(fd) = &r {
            name(fd, "signals");
        }
        emit("signalfd", || {
            let shown = result(&r, |fd| name_of(fd.as_raw_fd()));
            format!(
                "signalfd(-1, {}, SFD_CLOEXEC|SFD_NONBLOCK) -> {shown}",
                names(signals)
            )
        });
        // The handler owns the descriptor: it closes when the handler is
        // dropped, after EPOLL_CTL_DEL.
        let fd = r?;
        let handler = move |reactor: &mut Reactor<S>, _: Token, _: Ready, theirs: &SignalFd| {
            // Read until EAGAIN: several signals can be pending at once.
            loop {
                let r = theirs.read_signal();
                emit("read", || {
                    let shown = match &r {
                        Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                            Ok(signal) => format!("128 ({})", signal.as_str()),
                            Err(_) => format!("128 (signal {})", info.ssi_signo),
                        },
                        Ok(None) => errno(Errno::EAGAIN),
                        Err(e) => errno(*e),
                    };
                    format!("read({}, 128) -> {shown}", name_of(theirs.as_raw_fd()))
                });
                match r {
                    Ok(Some(info)) => {
                        if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                            on_signal(reactor, signal);
                        }
                    }
                    Ok(None) | Err(_) => return Next::Done,
                }
            }
        };
        self.register_fn("signals", fd, Interest::Read, handler)
    }
}
