//! # Chapter 11, exercise 2: idle deadlines with one timerfd
//!
//! Read first: the book's chapter 11 ("timerfd: an expiration count" and
//! "Why timers belong in the loop"), and
//! [timerfd_create(2)](https://man7.org/linux/man-pages/man2/timerfd_create.2.html)
//! (timerfd_settime: a zero `it_value` disarms; read: the expiration
//! count, EAGAIN). Run `cargo run -p ch11-beyond-sockets -- timerfd`.
//!
//! A server closes connections that stay idle too long. Each connection
//! has a deadline, but a loop does not need a timer per connection: one
//! timerfd in the loop, always armed for the *earliest* deadline, wakes it
//! in time for every one of them (a timer per connection would cost a
//! descriptor each, 10,000 of them for 10,000 connections).
//!
//! Write [`Deadlines`]:
//!
//! - [`Deadlines::new`]: one timerfd on CLOCK_MONOTONIC (deadlines must
//!   not move when someone sets the date), non-blocking, close-on-exec,
//!   not armed;
//! - [`Deadlines::set`]: connection `conn`'s deadline is now `after` from
//!   now (replacing any earlier one). If that changes the earliest
//!   deadline, re-arm the timer for it;
//! - [`Deadlines::remove`]: forget `conn`'s deadline (it closed);
//! - [`Deadlines::expired`]: called when the timer is readable. Read the
//!   timer (its expiration count), so it stops being readable; return the
//!   connections whose deadline has passed, earliest first, and forget
//!   them; then arm the timer for the earliest deadline left (none left:
//!   a one-shot timer that expired is disarmed already). The read
//!   can find no expiration (EAGAIN: a `set` re-armed the timer since it
//!   fired): that is not an error.
//!
//! Mind one trap of timerfd_settime: a zero `it_value` does not mean
//! "expire now", it *disarms* the timer.
//!
//! Check with `cargo lab check ch11_deadlines`.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// The deadlines of many connections, served by one timerfd.
pub struct Deadlines {
    timer: TimerFd,
    /// Each connection's deadline.
    deadlines: BTreeMap<u64, Instant>,
}

impl Deadlines {
    /// One disarmed timerfd on CLOCK_MONOTONIC, non-blocking, close-on-exec.
    pub fn new() -> nix::Result<Deadlines> {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        Ok(Deadlines {
            timer: TimerFd::new(ClockId::CLOCK_MONOTONIC, flags)?,
            deadlines: BTreeMap::new(),
        })
    }

    /// `conn`'s deadline is `after` from now.
    pub fn set(&mut self, conn: u64, after: Duration) -> nix::Result<()> {
        let before = self.earliest();
        self.deadlines.insert(conn, Instant::now() + after);
        self.rearm_if_changed(before)
    }

    /// Forgets `conn`'s deadline.
    pub fn remove(&mut self, conn: u64) -> nix::Result<()> {
        let before = self.earliest();
        self.deadlines.remove(&conn);
        self.rearm_if_changed(before)
    }

    /// Reads the timer; returns the connections whose deadline passed,
    /// earliest first, and arms the timer for the next deadline.
    pub fn expired(&mut self) -> nix::Result<Vec<u64>> {
        // The expiration count: reading it makes the timer not readable
        // until it expires again. EAGAIN: re-armed since it fired.
        let mut count = [0u8; 8];
        match nix::unistd::read(&self.timer, &mut count) {
            Ok(_) | Err(Errno::EAGAIN) => {}
            Err(e) => return Err(e),
        }
        let before = self.earliest();
        let now = Instant::now();
        let mut due: Vec<(Instant, u64)> = self
            .deadlines
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(conn, at)| (*at, *conn))
            .collect();
        due.sort();
        for (_, conn) in &due {
            self.deadlines.remove(conn);
        }
        // Nothing left: the one-shot timer has expired, so it is disarmed
        // already. Else arm it for the new earliest deadline.
        if !self.deadlines.is_empty() {
            self.rearm_if_changed(before)?;
        }
        Ok(due.into_iter().map(|(_, conn)| conn).collect())
    }

    /// The earliest deadline, if any.
    fn earliest(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    fn rearm_if_changed(&self, before: Option<Instant>) -> nix::Result<()> {
        if self.earliest() != before {
            self.arm()?;
        }
        Ok(())
    }

    /// Arms the timer for the earliest deadline, or disarms it.
    fn arm(&self) -> nix::Result<()> {
        match self.earliest() {
            None => self.timer.unset(),
            Some(at) => {
                // A zero it_value disarms: a deadline already due gets 1 ns.
                let left = at.saturating_duration_since(Instant::now());
                let left = left.max(Duration::from_nanos(1));
                let once = Expiration::OneShot(TimeSpec::from_duration(left));
                self.timer.set(once, TimerSetTimeFlags::empty())
            }
        }
    }
}

impl AsFd for Deadlines {
    /// The timer, for the loop's interest list.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.timer.as_fd()
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
    use std::sync::Mutex;

    /// Every test here finishes within about a second when correct.
    const LIMIT: Duration = Duration::from_secs(4);

    /// The tests count this process's timer descriptors, so they take
    /// turns (the lab runs each test in a process of its own anyway).
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn watched(deadlines: &Deadlines) -> Epoll {
        let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        ep.add(deadlines.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 1))
            .unwrap();
        ep
    }

    /// Waits up to `ms` for the timer to be readable: true if it was.
    fn fires_within(ep: &Epoll, ms: u16) -> bool {
        ep.wait(&mut [EpollEvent::empty(); 2], ms).unwrap() == 1
    }

    /// The loop: until `wanted` connections expired (or `ms` passed with
    /// no event), wait for the timer and call expired(); returns them in
    /// the order expired() gave them.
    fn collect(ep: &Epoll, deadlines: &mut Deadlines, wanted: usize, ms: u16) -> Vec<u64> {
        let mut all = Vec::new();
        while all.len() < wanted && fires_within(ep, ms) {
            all.extend(deadlines.expired().expect("expired() failed"));
        }
        all
    }

    fn timer_descriptors() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().contains("timerfd"))
            .count()
    }

    #[test]
    fn a_new_earlier_deadline_rearms_the_timer() {
        let _turn = serial();
        let got = within(LIMIT, "the 50 ms deadline to expire", || {
            let mut deadlines = Deadlines::new().expect("Deadlines::new failed");
            let ep = watched(&deadlines);
            deadlines.set(1, Duration::from_secs(10)).unwrap();
            deadlines.set(2, Duration::from_millis(50)).unwrap();
            collect(&ep, &mut deadlines, 1, 1500)
        });
        assert_eq!(
            got,
            vec![2],
            "connection 1's deadline is in 10 s, then connection 2 gets one in 50 ms: the \
             timer must fire for connection 2 within 1.5 s, and expired() say [2]. Did set() \
             re-arm the timer when the earliest deadline changed? (It was still armed for \
             10 s.)"
        );
    }

    #[test]
    fn after_each_expiry_the_timer_is_armed_for_the_next_deadline() {
        let _turn = serial();
        let (got, early) = within(LIMIT, "three deadlines, 50 ms apart, to expire", || {
            let mut deadlines = Deadlines::new().expect("Deadlines::new failed");
            let ep = watched(&deadlines);
            let start = Instant::now();
            deadlines.set(3, Duration::from_millis(150)).unwrap();
            deadlines.set(1, Duration::from_millis(50)).unwrap();
            deadlines.set(2, Duration::from_millis(100)).unwrap();
            let mut got = Vec::new();
            let mut early = Vec::new();
            while got.len() < 3 && fires_within(&ep, 1000) {
                for conn in deadlines.expired().expect("expired() failed") {
                    if start.elapsed() < Duration::from_millis(50 * conn) {
                        early.push(conn);
                    }
                    got.push(conn);
                }
            }
            (got, early)
        });
        assert_eq!(
            got,
            vec![1, 2, 3],
            "deadlines at 50, 100 and 150 ms: expired() should give 1, then 2, then 3, each \
             after a timer event. After expired(), arm the timer for the earliest deadline \
             left (here nothing came within 1 s after {got:?})"
        );
        assert!(
            early.is_empty(),
            "expired() returned {early:?} before their deadline: return only the \
             connections whose deadline is <= now"
        );
    }

    #[test]
    fn expired_reads_the_timer_so_the_loop_sleeps_again() {
        let _turn = serial();
        let (got, events_after) = within(LIMIT, "one deadline, then 1000 quiet turns", || {
            let mut deadlines = Deadlines::new().expect("Deadlines::new failed");
            let ep = watched(&deadlines);
            deadlines.set(7, Duration::from_millis(20)).unwrap();
            let got = collect(&ep, &mut deadlines, 1, 1500);
            // The loop goes on: 1000 turns that only look.
            let mut events = 0;
            for _ in 0..1000 {
                if ep
                    .wait(&mut [EpollEvent::empty(); 2], EpollTimeout::ZERO)
                    .unwrap()
                    == 1
                {
                    events += 1;
                    deadlines.expired().expect("expired() failed");
                }
            }
            (got, events)
        });
        assert_eq!(got, vec![7], "the 20 ms deadline should expire");
        assert!(
            events_after == 0,
            "no deadline is left, yet in 1000 turns the loop saw the timer readable \
             {events_after} times: a level-triggered loop spins. expired() must read the \
             timer's expiration count (8 bytes): until it is read, the timer stays readable"
        );
    }

    #[test]
    fn one_timer_descriptor_for_all_connections() {
        let _turn = serial();
        let (before, during, after) = within(LIMIT, "100 deadlines set and dropped", || {
            let before = timer_descriptors();
            let mut deadlines = Deadlines::new().expect("Deadlines::new failed");
            for conn in 0..100 {
                deadlines.set(conn, Duration::from_secs(60 + conn)).unwrap();
            }
            for conn in 0..50 {
                deadlines.remove(conn).unwrap();
            }
            let during = timer_descriptors();
            drop(deadlines);
            (before, during, timer_descriptors())
        });
        assert_eq!(
            during - before,
            1,
            "100 connections with deadlines hold {} timer descriptors: use one timerfd, armed \
             for the earliest deadline (a timer per connection costs a descriptor each)",
            during - before
        );
        assert_eq!(after, before, "dropping Deadlines must close its timer");
    }

    #[test]
    fn a_deadline_of_zero_expires_at_once() {
        let _turn = serial();
        let got = within(LIMIT, "a deadline of 0 to expire", || {
            let mut deadlines = Deadlines::new().expect("Deadlines::new failed");
            let ep = watched(&deadlines);
            deadlines.set(5, Duration::ZERO).unwrap();
            collect(&ep, &mut deadlines, 1, 1000)
        });
        assert_eq!(
            got,
            vec![5],
            "a deadline of 0 is due now, but the timer never fired: timerfd_settime with a \
             zero it_value DISARMS the timer. Arm it for at least 1 ns"
        );
    }

    #[test]
    fn expired_with_nothing_due_is_not_an_error() {
        let _turn = serial();
        let got = within(LIMIT, "expired() to return at once", || {
            let mut deadlines = Deadlines::new().expect("Deadlines::new failed");
            deadlines.set(1, Duration::from_secs(10)).unwrap();
            deadlines.expired()
        });
        assert_eq!(
            got,
            Ok(vec![]),
            "nothing is due: expired() should return an empty list. Reading a timer that has \
             not expired is EAGAIN (non-blocking timer): not an error, just 'no expiration'. \
             (If this hung: the timer must be non-blocking, TFD_NONBLOCK.)"
        );
    }

    #[test]
    fn remove_and_set_again_replace_a_deadline() {
        let _turn = serial();
        let got = within(LIMIT, "connection 3's deadline to expire", || {
            let mut deadlines = Deadlines::new().expect("Deadlines::new failed");
            let ep = watched(&deadlines);
            deadlines.set(1, Duration::from_millis(30)).unwrap();
            deadlines.set(2, Duration::from_millis(30)).unwrap();
            deadlines.set(3, Duration::from_millis(120)).unwrap();
            deadlines.remove(1).unwrap();
            // Activity on connection 2: its deadline moves out.
            deadlines.set(2, Duration::from_secs(10)).unwrap();
            collect(&ep, &mut deadlines, 1, 1000)
        });
        assert_eq!(
            got,
            vec![3],
            "connection 1 was removed and connection 2's deadline moved to 10 s: only \
             connection 3 (120 ms) should expire, got {got:?}"
        );
    }

    #[test]
    fn the_timer_is_monotonic_non_blocking_and_close_on_exec() {
        let _turn = serial();
        let (status, fd_flags, clock) = within(LIMIT, "fcntl and /proc/self/fdinfo", || {
            let deadlines = Deadlines::new().expect("Deadlines::new failed");
            let fd = deadlines.as_fd();
            let status = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).unwrap());
            let fd_flags = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD).unwrap());
            let info = std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                std::os::fd::AsRawFd::as_raw_fd(&fd)
            ))
            .unwrap();
            let clock = info
                .lines()
                .find_map(|l| l.strip_prefix("clockid:"))
                .map(|c| c.trim().to_string());
            (status, fd_flags, clock)
        });
        assert!(
            status.contains(OFlag::O_NONBLOCK),
            "the timer is not O_NONBLOCK: create it with TFD_NONBLOCK"
        );
        assert!(
            fd_flags.contains(FdFlag::FD_CLOEXEC),
            "the timer is not close-on-exec: create it with TFD_CLOEXEC"
        );
        assert_eq!(
            clock.as_deref(),
            Some("1"),
            "the timer should count on CLOCK_MONOTONIC (clockid 1; CLOCK_REALTIME is 0 and \
             jumps when the date is set)"
        );
    }
}
