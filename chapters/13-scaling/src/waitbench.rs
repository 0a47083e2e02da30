//! `waitbench`: what one `select`, `poll` and `epoll_wait` call costs when
//! exactly one of N watched descriptors is ready, as N grows.
//!
//! For each N: N socketpairs ([`WatchedSet`]), the watched ends registered
//! three ways (a `pollfd` array, an epoll instance, and an `fd_set` rebuilt
//! before every select as a select loop must), one of them readable. Five
//! calls are timed, each with the timeout an event loop uses (block until
//! something is ready, which here is at once):
//!
//! - `select`: `FD_ZERO`, `FD_SET` of all N, `select(highest + 1, ...)`;
//! - `poll`: `poll()` over the N-entry array;
//! - `epoll_wait`: on the instance holding all N (room for 64 events);
//! - `epoll_ctl ADD+DEL`: one extra socket added and removed while N are
//!   registered (what a registration change costs);
//! - `getppid`: the floor, the cost of entering and leaving the kernel.
//!
//! The calls take turns in short blocks (select, poll, epoll_wait, ctl,
//! getppid, select, ...), each block timing one call many times in a row,
//! and each call's result is the median over its blocks: a noisy machine
//! slows all five alike, and one bad block does not move a median.
//!
//! The timed loops make the plain calls through nix: nothing is printed or
//! counted there. (lab-kit's traced wrappers count every call; that is a
//! few nanoseconds, but these are the numbers the chapter is about.)
//! This is a benchmark, never a test: its numbers go into a table, not into
//! an assertion.

use std::hint::black_box;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::select::{FD_SETSIZE, FdSet, select};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::time::TimeVal;
use nix::time::{ClockId, clock_gettime};
use nix::unistd::getppid;

use crate::results::Row;
use crate::watched::WatchedSet;

/// The calls `waitbench` times, in the order of its table's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Select,
    Poll,
    EpollWait,
    EpollCtl,
    Getppid,
}

impl Call {
    /// Every call, in table order.
    pub const ALL: [Call; 5] = [
        Call::Select,
        Call::Poll,
        Call::EpollWait,
        Call::EpollCtl,
        Call::Getppid,
    ];

    /// The call's name in tables and on the chart.
    pub fn label(self) -> &'static str {
        match self {
            Call::Select => "select",
            Call::Poll => "poll",
            Call::EpollWait => "epoll_wait",
            Call::EpollCtl => "epoll_ctl ADD+DEL",
            Call::Getppid => "getppid",
        }
    }

    /// The column this call has in a [`Row`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which clock a block is timed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Elapsed time (`CLOCK_MONOTONIC`), as the C measurement has it. On a
    /// shared machine it includes the time other processes ran instead.
    Wall,
    /// This thread's own CPU time, user and kernel (`CLOCK_THREAD_CPUTIME_ID`,
    /// clock_gettime(2)): what the calls themselves cost, without the time
    /// this thread waited for a CPU.
    Cpu,
}

/// Where among the N the ready descriptor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// The first one made (the lowest number): select and poll find it
    /// first, and from then on stop putting the caller on wait queues.
    First,
    /// The last one made: select and poll put the caller on the wait queue
    /// of every other descriptor before they find it, and take it off again
    /// before they return.
    Last,
}

/// How to measure.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Blocks per call and N; the result is their median.
    pub blocks: usize,
    /// The length one block aims at, in milliseconds.
    pub block_ms: f64,
    /// Which descriptor is ready.
    pub ready: Ready,
    /// Wait with a zero timeout (only look) instead of blocking until one
    /// is ready, as an event loop does.
    pub zero_timeout: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            blocks: 9,
            block_ms: 25.0,
            ready: Ready::Last,
            zero_timeout: false,
        }
    }
}

/// What happened at one N.
#[derive(Clone, Debug)]
// One value per N, a handful per run: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Measured with both clocks (the median block), and the fastest block
    /// by the wall clock; `select_skipped` says why select was not measured
    /// (if it was not).
    Measured {
        wall: Row,
        cpu: Row,
        wall_min: Row,
        select_skipped: Option<String>,
    },
    /// Not measured, and why.
    Skipped { n: usize, why: String },
}

/// Descriptors a size needs in this process: the N watched ends, plus
/// standard input/output/error, the epoll instance, the extra socketpair,
/// the control socket, a peer in passing, and some room.
pub fn descriptors_needed(n: usize) -> u64 {
    n as u64 + 32
}

/// The largest N `max` stands for: a run of the default sizes must stay
/// short, and 20,000 socketpairs already hold tens of megabytes of kernel
/// memory. Larger sizes can be asked for by number.
pub const MAX_DEFAULT_SIZE: usize = 20_000;

/// The largest round N (a multiple of 1,000, at most [`MAX_DEFAULT_SIZE`])
/// that `limit` open descriptors allow, with room to spare: 19,000 for a
/// limit of 20,000.
pub fn largest_size(limit: u64) -> usize {
    let fits = (limit.saturating_sub(64) / 1000 * 1000) as usize;
    fits.min(MAX_DEFAULT_SIZE)
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (any
/// process may; raising the hard limit needs privilege, see getrlimit(2))
/// and returns the new soft limit. The keeper process forked later inherits
/// it.
pub fn raise_descriptor_limit() -> io::Result<u64> {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// Measures every size in turn (`progress` hears about each before it
/// starts). A size that needs more descriptors than `limit` is skipped,
/// and says so.
pub fn run(
    sizes: &[usize],
    settings: &Settings,
    limit: u64,
    mut progress: impl FnMut(usize),
) -> io::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for &n in sizes {
        if descriptors_needed(n) > limit {
            outcomes.push(Outcome::Skipped {
                n,
                why: format!(
                    "needs about {} open descriptors in this process (and as many in the \
                     keeper), but RLIMIT_NOFILE is {limit} (`ulimit -Hn`; only a privileged \
                     process can raise its hard limit)",
                    descriptors_needed(n)
                ),
            });
            continue;
        }
        progress(n);
        outcomes.push(measure_size(n, settings)?);
    }
    Ok(outcomes)
}

/// The five calls over one watched set.
struct Bench<'a> {
    set: &'a WatchedSet,
    pollfds: Vec<PollFd<'a>>,
    epoll: Epoll,
    events: Vec<EpollEvent>,
    /// The socket `epoll_ctl` adds and deletes (and its peer, kept open).
    extra: (OwnedFd, OwnedFd),
    /// select's first argument: the highest watched number plus one.
    nfds: i32,
    /// Zero timeouts instead of blocking ones.
    zero_timeout: bool,
}

/// Measures all five calls at one N.
pub fn measure_size(n: usize, settings: &Settings) -> io::Result<Outcome> {
    if n == 0 {
        return Err(io::Error::other("N must be at least 1"));
    }
    // The epoll instance first, then the watched set: the watched ends then
    // get the lowest free numbers, one after the other.
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let ready = match settings.ready {
        Ready::First => 0,
        Ready::Last => n - 1,
    };
    let set = WatchedSet::new(n, ready)?;
    for (i, fd) in set.watched.iter().enumerate() {
        epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))?;
    }
    let extra = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let mut bench = Bench {
        set: &set,
        pollfds: set
            .watched
            .iter()
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect(),
        epoll,
        events: vec![EpollEvent::empty(); 64],
        extra,
        nfds: set.highest() + 1,
        zero_timeout: settings.zero_timeout,
    };
    let select_skipped = (set.highest() as usize >= FD_SETSIZE).then(|| {
        format!(
            "the watched descriptors go up to number {}, and an fd_set has bits for 0 to {} \
             (FD_SETSIZE)",
            set.highest(),
            FD_SETSIZE - 1
        )
    });
    let calls: Vec<Call> = Call::ALL
        .into_iter()
        .filter(|&c| !(c == Call::Select && select_skipped.is_some()))
        .collect();
    bench.check(&calls)?;

    // Size each call's block so that it lasts about `block_ms`.
    let probe = if n >= 10_000 { 20 } else { 500 };
    let mut iterations = [0u64; 5];
    for &call in &calls {
        bench.block(call, probe)?; // warm-up: caches, page faults
        let per_call = bench.block(call, probe)?;
        iterations[call.index()] = ((settings.block_ms * 1e6 / per_call) as u64).max(5);
    }
    let mut wall_samples: [Vec<f64>; 5] = Default::default();
    let mut cpu_samples: [Vec<f64>; 5] = Default::default();
    for _ in 0..settings.blocks.max(1) {
        for &call in &calls {
            let i = call.index();
            let cpu_start = thread_cpu_ns()?;
            let wall = bench.block(call, iterations[i])?;
            let cpu = (thread_cpu_ns()? - cpu_start) / iterations[i] as f64;
            wall_samples[i].push(wall);
            cpu_samples[i].push(cpu);
        }
    }
    let mut wall = Row { n, ns: [None; 5] };
    let mut cpu = Row { n, ns: [None; 5] };
    let mut wall_min = Row { n, ns: [None; 5] };
    for call in calls {
        let i = call.index();
        wall.ns[i] = median(&mut wall_samples[i]);
        cpu.ns[i] = median(&mut cpu_samples[i]);
        wall_min.ns[i] = wall_samples[i].first().copied(); // sorted by median()
    }
    Ok(Outcome::Measured {
        wall,
        cpu,
        wall_min,
        select_skipped,
    })
}

/// This thread's CPU time so far, in nanoseconds. One clock_gettime call
/// (not in the vDSO for this clock, so a real system call) per block of
/// thousands of calls: it adds well under 0.1%.
pub fn thread_cpu_ns() -> io::Result<f64> {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)?;
    Ok(t.tv_sec() as f64 * 1e9 + t.tv_nsec() as f64)
}

/// The median of `samples` (the upper one of an even count), or `None`.
pub fn median(samples: &mut [f64]) -> Option<f64> {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied()
}

/// A wait must report exactly the one ready descriptor.
fn expect_one(call: &str, ready: usize) -> io::Result<usize> {
    if ready == 1 {
        Ok(ready)
    } else {
        Err(io::Error::other(format!(
            "{call} reported {ready} ready descriptors; exactly 1 has a byte queued"
        )))
    }
}

impl Bench<'_> {
    /// Times `iterations` calls of `call` in a row; nanoseconds per call.
    fn block(&mut self, call: Call, iterations: u64) -> io::Result<f64> {
        let mut sink = 0usize;
        let start = Instant::now();
        match call {
            Call::Select => {
                for _ in 0..iterations {
                    sink = sink.wrapping_add(self.select_once()?);
                }
            }
            Call::Poll => {
                for _ in 0..iterations {
                    sink = sink.wrapping_add(self.poll_once()?);
                }
            }
            Call::EpollWait => {
                for _ in 0..iterations {
                    sink = sink.wrapping_add(self.epoll_wait_once()?);
                }
            }
            Call::EpollCtl => {
                for _ in 0..iterations {
                    self.ctl_once()?;
                }
            }
            Call::Getppid => {
                for _ in 0..iterations {
                    sink = sink.wrapping_add(getppid().as_raw() as usize);
                }
            }
        }
        let elapsed = start.elapsed();
        black_box(sink);
        Ok(elapsed.as_nanos() as f64 / iterations as f64)
    }

    // ANCHOR: select_once
    /// One select as a select loop makes it: the call overwrites the set
    /// with the answer, so the set is built again before every call.
    #[inline]
    fn select_once(&mut self) -> io::Result<usize> {
        let mut readable = FdSet::new();
        for fd in &self.set.watched {
            readable.insert(fd.as_fd());
        }
        // No timeout: block until one is ready. (Linux writes the time
        // left into a timeout it is given, so a zero one is made anew.)
        let mut zero = TimeVal::new(0, 0);
        let timeout = self.zero_timeout.then_some(&mut zero);
        let ready = select(self.nfds, Some(&mut readable), None, None, timeout)?;
        expect_one("select", ready as usize)
    }
    // ANCHOR_END: select_once

    // ANCHOR: poll_once
    /// One poll over all N entries (the kernel writes only `revents`, so the
    /// array is reused as it is).
    #[inline]
    fn poll_once(&mut self) -> io::Result<usize> {
        let timeout = if self.zero_timeout {
            PollTimeout::ZERO
        } else {
            PollTimeout::NONE
        };
        let ready = poll(&mut self.pollfds, timeout)?;
        expect_one("poll", ready as usize)
    }

    /// One epoll_wait: the N registrations stay in the kernel.
    #[inline]
    fn epoll_wait_once(&mut self) -> io::Result<usize> {
        let timeout = if self.zero_timeout {
            EpollTimeout::ZERO
        } else {
            EpollTimeout::NONE
        };
        let ready = self.epoll.wait(&mut self.events, timeout)?;
        expect_one("epoll_wait", ready)?;
        Ok(self.events[0].data() as usize)
    }
    // ANCHOR_END: poll_once

    /// One registration change: add the extra socket, then delete it.
    #[inline]
    fn ctl_once(&mut self) -> io::Result<()> {
        let event = EpollEvent::new(EpollFlags::EPOLLIN, u64::MAX);
        self.epoll.add(&self.extra.0, event)?;
        self.epoll.delete(&self.extra.0)?;
        Ok(())
    }

    /// Before timing anything: each wait must return the ready descriptor
    /// and only it, or the numbers would measure something else.
    fn check(&mut self, calls: &[Call]) -> io::Result<()> {
        let ready = self.set.ready_index();
        let ready_fd = self.set.watched[ready].as_raw_fd();
        if calls.contains(&Call::Select) {
            let mut readable = FdSet::new();
            for fd in &self.set.watched {
                readable.insert(fd.as_fd());
            }
            select(
                self.nfds,
                Some(&mut readable),
                None,
                None,
                None::<&mut TimeVal>,
            )?;
            let found: Vec<_> = self
                .set
                .watched
                .iter()
                .filter(|fd| readable.contains(fd.as_fd()))
                .map(|fd| fd.as_raw_fd())
                .collect();
            if found != [ready_fd] {
                return Err(io::Error::other(format!(
                    "select found {found:?} readable; only {ready_fd} has a byte queued"
                )));
            }
        }
        self.poll_once()?;
        let found: Vec<usize> = (0..self.pollfds.len())
            .filter(|&i| self.pollfds[i].revents().is_some_and(|r| !r.is_empty()))
            .collect();
        if found != [ready] {
            return Err(io::Error::other(format!(
                "poll found entries {found:?} with events; only entry {ready} has a byte queued"
            )));
        }
        let token = self.epoll_wait_once()?;
        if token != ready {
            return Err(io::Error::other(format!(
                "epoll_wait returned token {token}; only {ready} has a byte queued"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use std::time::Duration;

    const TINY: Settings = Settings {
        blocks: 1,
        block_ms: 0.1,
        ready: Ready::Last,
        zero_timeout: false,
    };

    #[test]
    fn sizes_fit_the_descriptor_limit() {
        assert_eq!(largest_size(20_000), 19_000);
        assert_eq!(largest_size(1024), 0);
        assert_eq!(largest_size(1_048_576), 20_000, "capped");
        assert!(descriptors_needed(19_000) <= 20_000);
    }

    #[test]
    fn a_tiny_size_measures_all_five_calls_with_both_clocks() {
        within(
            Duration::from_secs(30),
            "measuring N = 3 (a keeper process holds the peers)",
            || {
                let Outcome::Measured {
                    wall,
                    cpu,
                    wall_min,
                    select_skipped,
                } = measure_size(3, &TINY).unwrap()
                else {
                    panic!("N = 3 was skipped");
                };
                assert_eq!(select_skipped, None);
                for call in Call::ALL {
                    assert!(wall.ns(call).is_some_and(|ns| ns > 0.0), "{call:?} wall");
                    assert!(cpu.ns(call).is_some(), "{call:?} cpu");
                    assert!(wall_min.ns(call) <= wall.ns(call), "{call:?} min");
                }
            },
        );
    }

    #[test]
    fn the_ready_descriptor_can_be_first_and_the_timeout_zero() {
        within(
            Duration::from_secs(30),
            "measuring N = 4 with the ready socket first",
            || {
                let settings = Settings {
                    ready: Ready::First,
                    zero_timeout: true,
                    ..TINY
                };
                // measure_size checks that every call reports exactly the ready one.
                assert!(matches!(
                    measure_size(4, &settings).unwrap(),
                    Outcome::Measured { .. }
                ));
            },
        );
    }

    #[test]
    fn a_size_above_the_limit_is_skipped_and_says_why() {
        within(
            Duration::from_secs(30),
            "measuring N = 2 and skipping N = 5000",
            || {
                let outcomes = run(&[2, 5000], &TINY, 1000, |_| {}).unwrap();
                assert!(matches!(outcomes[0], Outcome::Measured { .. }));
                match &outcomes[1] {
                    Outcome::Skipped { n: 5000, why } => {
                        assert!(why.contains("RLIMIT_NOFILE is 1000"), "{why}")
                    }
                    other => panic!("N = 5000 with a limit of 1000: {other:?}"),
                }
            },
        );
    }

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median(&mut []), None);
    }
}
