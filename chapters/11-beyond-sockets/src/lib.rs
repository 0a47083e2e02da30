//! Chapter 11: everything is a file descriptor. One `epoll_wait` waits for
//! a socket, another thread's "wake up" (an eventfd), a deadline (a
//! timerfd) and a signal (a signalfd) at once, because Linux turns each of
//! them into a readable descriptor with read semantics of its own.
//!
//! - [`Waker`]: an eventfd another thread writes to wake the loop.
//! - [`OneLoop`]: the loop of the `all-in-one` scenario: a socket, a
//!   waker, a timer and a signalfd in one epoll instance, each read the way
//!   its kind of descriptor wants.
//!
//! Chapter 06's `serve` uses a signalfd the same way for its clean shutdown
//! and its SIGUSR1 statistics (`ch06_epoll_echo_server::signals`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use lab_kit::epoll::{self, Op};
use lab_kit::names::name_token;
use lab_kit::special::{self, signal_of};
use lab_kit::trace;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};

// ANCHOR: waker
/// Wakes an event loop from another thread: the loop watches the eventfd
/// for EPOLLIN, and any thread that wants its attention adds 1 to the
/// counter ([eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)).
pub struct Waker {
    efd: EventFd,
}

impl Waker {
    /// A non-blocking eventfd with a counter of 0 (not readable), named
    /// `name` in transcripts.
    pub fn new(name: &str) -> nix::Result<Waker> {
        // EFD_NONBLOCK: a wake that finds the counter full must not put the
        // waking thread to sleep, and a drain of an empty counter must not
        // put the loop to sleep.
        let flags = EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC;
        Ok(Waker {
            efd: special::eventfd(0, flags, name)?,
        })
    }

    /// Adds 1 to the counter: the eventfd becomes readable and the loop's
    /// wait returns. Safe to call from any thread, any number of times.
    pub fn wake(&self) -> nix::Result<()> {
        match special::eventfd_write(&self.efd, 1) {
            // EAGAIN: the counter is at its maximum, so the eventfd is
            // readable already; the loop will wake. Nothing is lost.
            Ok(_) | Err(Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Called by the loop when the eventfd is readable: reads the counter
    /// (how many wakes since the last drain) and sets it to 0, so the
    /// level-triggered registration stops reporting it. 0 if none.
    pub fn drain(&self) -> nix::Result<u64> {
        match special::eventfd_read(&self.efd) {
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
// ANCHOR_END: waker

/// The tokens of [`OneLoop`]'s four registrations.
pub const CONN: u64 = 1;
pub const WAKER: u64 = 2;
pub const TIMER: u64 = 3;
pub const SIGNALS: u64 = 4;

/// What one turn of [`OneLoop`] handled.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Handled {
    /// Bytes read from the connection and written back.
    pub echoed: usize,
    /// The waker's counter: how many wakes since the last one.
    pub wakes: u64,
    /// The timer's expiration count.
    pub expirations: u64,
    /// The signals read from the signalfd.
    pub signals: Vec<Signal>,
}

/// One loop, four kinds of descriptor: a connected socket (echoed), an
/// eventfd [`Waker`], a timerfd and a signalfd for SIGINT and SIGTERM.
pub struct OneLoop {
    pub ep: Epoll,
    pub conn: UnixStream,
    /// Shared, so other threads can wake the loop.
    pub waker: Arc<Waker>,
    pub timer: TimerFd,
    pub signals: SignalFd,
    /// A SIGINT or SIGTERM has been read: time to stop.
    pub stopping: bool,
}

impl OneLoop {
    // ANCHOR: setup
    /// Blocks SIGINT and SIGTERM (before anything else: a signal that came
    /// between creating the signalfd and blocking would run its default
    /// action and end the process), then creates the waker, the timer and
    /// the signalfd and registers them with the connection `conn`.
    ///
    /// Call it before starting other threads: they inherit the signal mask,
    /// and a thread that does not block a signal may receive it instead.
    pub fn new(conn: UnixStream) -> nix::Result<OneLoop> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGTERM);
        special::sigprocmask(SigmaskHow::SIG_BLOCK, &mask)?;
        let signals = special::signalfd(
            &mask,
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
            "sigfd",
        )?;
        let waker = Arc::new(Waker::new("waker")?);
        let timer_flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        let timer = special::timerfd_create(ClockId::CLOCK_MONOTONIC, timer_flags, "timer")?;
        ch02_nonblocking_io::set_nonblocking(&conn)?;
        let ep = epoll::create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
        let sources: [(BorrowedFd, u64, &str); 4] = [
            (conn.as_fd(), CONN, "conn"),
            (waker.as_fd(), WAKER, "waker"),
            (timer.as_fd(), TIMER, "timer"),
            (signals.as_fd(), SIGNALS, "sigfd"),
        ];
        for (fd, token, name) in sources {
            name_token(token, name);
            epoll::ctl(&ep.0, Op::Add, fd.as_raw_fd(), EpollFlags::EPOLLIN, token)?;
        }
        Ok(OneLoop {
            ep,
            conn,
            waker,
            timer,
            signals,
            stopping: false,
        })
    }
    // ANCHOR_END: setup

    // ANCHOR: turn
    /// One turn: wait (at most `timeout`), then read each ready descriptor
    /// the way its kind wants. Every registration is level-triggered, so
    /// each handler reads until its descriptor is no longer readable:
    /// otherwise the next wait would report it again at once.
    pub fn turn(&mut self, timeout: Option<Duration>) -> nix::Result<Handled> {
        let mut events = [EpollEvent::empty(); 8];
        let n = epoll::wait(&self.ep, &mut events, timeout)?;
        let mut handled = Handled::default();
        for event in &events[..n] {
            match event.data() {
                // A socket: bytes, until EAGAIN (here: echoed back).
                CONN => handled.echoed += self.echo()?,
                // An eventfd: one read returns the whole counter, and
                // zeroes it.
                WAKER => handled.wakes += self.waker.drain()?,
                // A timerfd: one read returns the expirations since the
                // last read, and zeroes the count.
                TIMER => match special::timerfd_read(&self.timer) {
                    Ok(n) => handled.expirations += n,
                    // Re-armed since it fired: the count was reset.
                    Err(Errno::EAGAIN) => {}
                    Err(e) => return Err(e),
                },
                // A signalfd: one signal per read, until EAGAIN.
                SIGNALS => {
                    while let Some(info) = special::signalfd_read(&self.signals)? {
                        if let Ok(signal) = signal_of(&info) {
                            handled.signals.push(signal);
                            self.stopping |= matches!(signal, Signal::SIGINT | Signal::SIGTERM);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(handled)
    }
    // ANCHOR_END: turn

    /// Reads what the connection has and writes it back.
    fn echo(&mut self) -> nix::Result<usize> {
        let mut buf = [0u8; 64];
        let mut total = 0;
        loop {
            match trace::read(&self.conn, &mut buf) {
                Ok(0) | Err(Errno::EAGAIN) => return Ok(total),
                Ok(n) => {
                    // Short messages on a socket with room: the write takes
                    // them all (a real server keeps an output buffer,
                    // chapter 06).
                    trace::write(&self.conn, &buf[..n])?;
                    total += n;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the book says in "Why timers belong in the loop": a timer can
    /// be armed from another thread, and a loop already asleep in
    /// epoll_wait wakes for it, without a separate waker.
    #[test]
    fn a_timer_armed_by_another_thread_wakes_a_loop_already_asleep() {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        let timer = Arc::new(TimerFd::new(ClockId::CLOCK_MONOTONIC, flags).unwrap());
        let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        ep.add(timer.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, TIMER))
            .unwrap();
        let loop_thread = nix::unistd::gettid();
        let theirs = Arc::clone(&timer);
        let helper = std::thread::spawn(move || {
            let limit = Duration::from_secs(5);
            let asleep =
                lab_kit::proc::wait_until_asleep(loop_thread, limit, |a| a.is_epoll_wait());
            special::timerfd_settime(&theirs, Duration::from_millis(1), Duration::ZERO).unwrap();
            asleep.is_some()
        });
        let mut events = [EpollEvent::empty(); 2];
        let n = ep.wait(&mut events, 5000u16).unwrap();
        assert!(helper.join().unwrap(), "the loop was never seen asleep");
        assert_eq!(
            n, 1,
            "the timer armed by the other thread should wake the loop"
        );
        assert_eq!(events[0].data(), TIMER);
        assert_eq!(special::timerfd_read(&timer), Ok(1));
    }
}
