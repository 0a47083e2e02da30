//! Timers as a min-heap of deadlines that feeds `epoll_wait`'s timeout.
//!
//! Why a heap and not a timerfd: the reactor already sleeps in one call,
//! `epoll_wait`, and that call takes a timeout. The nearest deadline *is*
//! that timeout, so timers cost no descriptor and no system call to arm or
//! re-arm (a timerfd would need a `timerfd_settime` each time the nearest
//! deadline changes, and a `read` each time it fires). Redis's `ae.c` does
//! the same with its time events (it scans a list; a heap finds the nearest
//! deadline in O(1) and pops in O(log n)). The price: `epoll_wait`'s timeout
//! is in whole milliseconds, so deadlines are rounded *up* (rounding down
//! would wake before the deadline and spin until it comes).
//!
//! Cancelling is lazy: the entry stays in the heap, its value leaves the
//! map, and the heap's top is skipped when its value is gone.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

/// Names one timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(pub u64);

/// Deadlines (time since the reactor's clock started) and what to do then.
pub struct Timers<T> {
    // ANCHOR: heap
    /// `BinaryHeap` is a max-heap: `Reverse` puts the *earliest* deadline
    /// on top. The id breaks ties in the order timers were added.
    heap: BinaryHeap<Reverse<(Duration, u64)>>,
    /// The live timers; a cancelled one is missing here, not in the heap.
    live: HashMap<u64, T>,
    // ANCHOR_END: heap
    next_id: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
            next_id: 0,
        }
    }
}

impl<T> Timers<T> {
    /// Adds a timer due at `deadline`.
    pub fn insert(&mut self, deadline: Duration, value: T) -> TimerId {
        let id = self.next_id;
        self.next_id += 1;
        self.insert_with_id(TimerId(id), deadline, value);
        TimerId(id)
    }

    /// Adds (or re-adds, for a repeating timer) the timer `id`.
    pub fn insert_with_id(&mut self, id: TimerId, deadline: Duration, value: T) {
        self.heap.push(Reverse((deadline, id.0)));
        self.live.insert(id.0, value);
    }

    /// Cancels a timer; `None` if it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        self.live.remove(&id.0)
    }

    /// The earliest deadline of a live timer.
    pub fn next_deadline(&mut self) -> Option<Duration> {
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if self.live.contains_key(&id) {
                return Some(deadline);
            }
            // Cancelled: drop its heap entry now that it is on top.
            self.heap.pop();
        }
        None
    }

    // ANCHOR: pop_due
    /// Takes one timer whose deadline is at or before `now`. Call it until
    /// it returns `None`: several timers can be due after one wait.
    pub fn pop_due(&mut self, now: Duration) -> Option<(TimerId, T)> {
        let deadline = self.next_deadline()?;
        if deadline > now {
            return None;
        }
        let Reverse((_, id)) = self.heap.pop()?;
        let value = self.live.remove(&id)?;
        Some((TimerId(id), value))
    }
    // ANCHOR_END: pop_due

    /// How many timers are live.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no timer is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

// ANCHOR: wait_timeout
/// The timeout for `epoll_wait` when the nearest timer is due at `deadline`:
/// the time left, rounded *up* to whole milliseconds (0 if it is due).
/// Rounding down would return from the wait before the deadline, find
/// nothing due, and wait again with timeout 0: a spin until the deadline.
pub fn wait_timeout(deadline: Duration, now: Duration) -> Duration {
    let left = deadline.saturating_sub(now);
    Duration::from_millis(left.as_nanos().div_ceil(1_000_000) as u64)
}
// ANCHOR_END: wait_timeout

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_earliest_comes_first_and_cancelled_ones_never() {
        let mut timers = Timers::default();
        timers.insert(ms(30), "c");
        let b = timers.insert(ms(20), "b");
        timers.insert(ms(10), "a");
        timers.cancel(b);
        assert_eq!(timers.next_deadline(), Some(ms(10)));
        assert_eq!(timers.pop_due(ms(5)), None);
        assert_eq!(timers.pop_due(ms(30)).map(|(_, v)| v), Some("a"));
        assert_eq!(timers.pop_due(ms(30)).map(|(_, v)| v), Some("c"));
        assert_eq!(timers.pop_due(ms(30)), None);
    }

    #[test]
    fn the_timeout_is_rounded_up_never_down() {
        assert_eq!(
            wait_timeout(Duration::from_micros(10_500), ms(10)),
            ms(1),
            "0.5 ms left must wait 1 ms, not 0 (a spin)"
        );
        assert_eq!(wait_timeout(ms(5), ms(10)), Duration::ZERO);
    }
}
