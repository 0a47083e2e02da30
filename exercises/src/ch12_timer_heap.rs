//! # Chapter 12, exercise: the timer heap that feeds `epoll_wait`
//!
//! Read first: the book's chapter 12 ("Timers: a heap that feeds the
//! timeout" and "The loop, round by round"), and
//! [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html):
//! DESCRIPTION (the timeout is in milliseconds, rounded up to the clock's
//! granularity; -1 blocks, 0 returns at once). Run
//! `cargo run -p ch12-reactor -- timer`.
//!
//! A reactor sleeps in one call, `epoll_wait`, and its timers cost nothing
//! more: the nearest deadline *is* the wait's timeout. After the wait, every
//! timer that is due runs. Redis's `ae.c` works this way.
//!
//! Write [`TimerHeap`]. Times are [`Duration`]s since the loop started.
//!
//! - [`add`](TimerHeap::add): a timer `id` due at `deadline`.
//! - [`cancel`](TimerHeap::cancel): it must never fire, and must not make
//!   the loop wake up for it either. Returns whether it was pending.
//! - [`timeout`](TimerHeap::timeout): what to pass to `epoll_wait` at
//!   `now`: `None` without timers (block until an event), else the time
//!   left to the *earliest* deadline, rounded **up** to whole milliseconds
//!   (`Duration::ZERO` if it is due, even long ago).
//! - [`expired`](TimerHeap::expired): removes and returns *every* timer due
//!   at `now` (deadline <= now), earliest first; timers with the same
//!   deadline in the order they were added.
//!
//! `std::collections::BinaryHeap` is a max-heap: the largest item is on
//! top. Check with `cargo lab check ch12_timer_heap`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::time::Duration;

/// Pending timers, earliest deadline first.
#[derive(Default)]
pub struct TimerHeap {
    // TODO: your fields. One way: a BinaryHeap of
    // Reverse((deadline, order added, id)) and a HashSet of pending ids
    // (cancelling removes the id; the heap entry is skipped later).
}

impl TimerHeap {
    /// No timers.
    pub fn new() -> TimerHeap {
        TimerHeap::default()
    }

    /// Adds timer `id` (ids are unique while pending), due at `deadline`.
    pub fn add(&mut self, id: u64, deadline: Duration) {
        // TODO: remember it, so that the earliest deadline is found fast.
        todo!("ch12: add a timer")
    }

    /// Cancels timer `id`; false if it was not pending.
    pub fn cancel(&mut self, id: u64) -> bool {
        // TODO: it must neither fire nor count as the earliest deadline.
        todo!("ch12: cancel a timer")
    }

    /// The timeout for `epoll_wait` at `now`.
    pub fn timeout(&mut self, now: Duration) -> Option<Duration> {
        // TODO: None without pending timers; else the time left to the
        // earliest pending deadline, rounded UP to whole milliseconds.
        todo!("ch12: the wait's timeout")
    }

    /// Removes and returns every timer due at `now`, earliest first.
    pub fn expired(&mut self, now: Duration) -> Vec<u64> {
        // TODO: every pending timer with deadline <= now, earliest first.
        todo!("ch12: the due timers")
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollTimeout};
    use std::time::Instant;

    const LIMIT: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_timeout_is_the_time_to_the_earliest_deadline() {
        within(LIMIT, "timeout() to return", || {
            let mut timers = TimerHeap::new();
            assert_eq!(
                timers.timeout(ms(0)),
                None,
                "with no timer, the loop should block until an event (None = timeout -1)"
            );
            timers.add(1, ms(300));
            timers.add(2, ms(100));
            timers.add(3, ms(200));
            assert_eq!(
                timers.timeout(ms(40)),
                Some(ms(60)),
                "timers due at 300, 100 and 200 ms; at 40 ms the wait should last until the \
                 EARLIEST (100 ms), so 60 ms. BinaryHeap is a max-heap: wrap the deadline in \
                 std::cmp::Reverse to get the earliest on top"
            );
        });
    }

    #[test]
    fn the_timeout_is_rounded_up_so_the_loop_never_spins() {
        within(LIMIT, "timeout() to return", || {
            let mut timers = TimerHeap::new();
            timers.add(1, Duration::from_micros(10_500));
            assert_eq!(
                timers.timeout(ms(10)),
                Some(ms(1)),
                "0.5 ms before the deadline the timeout must be 1 ms: rounded DOWN to 0, \
                 epoll_wait returns at once, nothing is due yet, and the loop spins until the \
                 deadline. Round up (as_nanos().div_ceil(1_000_000))"
            );
            assert_eq!(
                timers.timeout(Duration::from_micros(10_500)),
                Some(Duration::ZERO)
            );
        });
    }

    #[test]
    fn a_deadline_already_past_gives_timeout_zero() {
        within(LIMIT, "timeout() to return", || {
            let late = std::panic::catch_unwind(|| {
                let mut timers = TimerHeap::new();
                timers.add(1, ms(10));
                timers.timeout(ms(50))
            });
            assert_eq!(
                late.ok().flatten(),
                Some(Duration::ZERO),
                "a timer due at 10 ms, asked at 50 ms (the loop was busy): the timeout is 0, \
                 it is due. `deadline - now` on Durations panics when it would go below \
                 zero: use deadline.saturating_sub(now)"
            );
        });
    }

    #[test]
    fn every_timer_due_fires_after_one_wait_earliest_first() {
        within(LIMIT, "expired() to return", || {
            let mut timers = TimerHeap::new();
            timers.add(30, ms(30));
            timers.add(10, ms(10));
            timers.add(21, ms(20));
            timers.add(20, ms(20));
            timers.add(99, ms(99));
            assert_eq!(
                timers.expired(ms(30)),
                vec![10, 21, 20, 30],
                "at 30 ms four timers are due: all of them fire now, earliest first, equal \
                 deadlines in the order they were added (one per wait would leave three late). \
                 A timer due exactly now is due (deadline <= now)"
            );
            assert_eq!(timers.expired(ms(30)), Vec::<u64>::new(), "each fires once");
            assert_eq!(
                timers.timeout(ms(30)),
                Some(ms(69)),
                "99 ms is still pending"
            );
        });
    }

    #[test]
    fn a_cancelled_timer_never_fires_and_never_wakes_the_loop() {
        within(LIMIT, "cancel()/expired() to return", || {
            let mut timers = TimerHeap::new();
            timers.add(1, ms(10));
            timers.add(2, ms(50));
            assert!(timers.cancel(1), "timer 1 was pending");
            assert!(
                !timers.cancel(1),
                "cancelling twice: it is no longer pending"
            );
            assert_eq!(
                timers.timeout(ms(0)),
                Some(ms(50)),
                "timer 1 is cancelled: the loop should sleep until timer 2 (50 ms), not wake \
                 at 10 ms for nothing"
            );
            assert_eq!(
                timers.expired(ms(60)),
                vec![2],
                "a cancelled timer must never fire"
            );
            assert_eq!(timers.timeout(ms(60)), None);
        });
    }

    #[test]
    fn a_real_epoll_wait_loop_fires_the_timer_on_time_in_a_few_waits() {
        within(LIMIT, "the loop to fire a 30 ms timer", || {
            let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
            let start = Instant::now();
            let mut timers = TimerHeap::new();
            timers.add(7, ms(30));
            let mut waits = 0;
            let mut events = [EpollEvent::empty(); 8];
            let fired = loop {
                let timeout = match timers.timeout(start.elapsed()) {
                    None => panic!("timer 7 is pending, yet timeout() says to block forever"),
                    Some(t) => EpollTimeout::try_from(t).unwrap(),
                };
                epoll.wait(&mut events, timeout).unwrap();
                waits += 1;
                let due = timers.expired(start.elapsed());
                if !due.is_empty() {
                    break due;
                }
                assert!(
                    waits < 50,
                    "{waits} epoll_wait calls and a 30 ms timer has not fired: the loop spins \
                     (a timeout rounded down to 0 before the deadline?)"
                );
            };
            let at = start.elapsed();
            assert_eq!(fired, vec![7]);
            assert!(at >= ms(30), "fired at {at:?}, before its 30 ms deadline");
        });
    }
}
