//! `dispatch`: libevent's classic `test/bench.c` set-up, on this lab's own
//! event-loop backends (chapters 03, 04 and 05 behind one [`Poller`]).
//!
//! N socketpairs; the loop watches every pair's first end. A of them get a
//! byte (a token) to start with, spread evenly. When the loop sees a token
//! on pair i it reads it and writes one to pair i + 1 (wrapping around), so
//! A tokens travel along the chain until W writes have been made; the run
//! ends when every token written has been read. The time per dispatched
//! event is the run's time over the tokens read: one wait's cost shared by
//! the events it returned, plus one read and one write each.
//!
//! As in bench.c, registering the N descriptors is not timed; unlike it,
//! the waits here block (with a limit) as an event loop's do, rather than
//! poll with a zero timeout.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ch03_select::poller::{Event, Interest, Poller, Token};
use nix::sys::select::FD_SETSIZE;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::{read, write};

use crate::waitbench::thread_cpu_ns;

/// What one chain run is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    /// N: the socketpairs watched.
    pub pairs: usize,
    /// A: tokens travelling at once.
    pub active: usize,
    /// W: writes made along the chain before the run winds down.
    pub writes: usize,
}

/// What a run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dispatched {
    /// Tokens read: the `active` first ones plus one per write.
    pub events: usize,
    /// Wait calls the loop made.
    pub waits: usize,
    /// Elapsed time.
    pub elapsed: Duration,
    /// This thread's CPU time (user and kernel), in nanoseconds.
    pub cpu_ns: f64,
}

impl Dispatched {
    /// Elapsed nanoseconds per dispatched event.
    pub fn ns_per_event(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.events.max(1) as f64
    }

    /// CPU nanoseconds per dispatched event.
    pub fn cpu_ns_per_event(&self) -> f64 {
        self.cpu_ns / self.events.max(1) as f64
    }
}

/// N socketpairs: `.0` is watched, `.1` is written to.
pub fn make_pairs(n: usize) -> io::Result<Vec<(OwnedFd, OwnedFd)>> {
    (0..n)
        .map(|_| {
            socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .map_err(io::Error::from)
        })
        .collect()
}

/// Why `select` cannot watch these pairs, if it cannot.
pub fn select_refuses(pairs: &[(OwnedFd, OwnedFd)]) -> Option<String> {
    let highest = pairs.iter().map(|p| p.0.as_raw_fd()).max()?;
    (highest as usize >= FD_SETSIZE).then(|| {
        format!(
            "the watched descriptors go up to number {highest}, and an fd_set has bits for 0 \
             to {} (FD_SETSIZE)",
            FD_SETSIZE - 1
        )
    })
}

// ANCHOR: chain
/// Runs the chain once on `poller` (which must watch nothing yet) and
/// leaves it watching nothing again.
pub fn run_chain(
    poller: &mut dyn Poller,
    pairs: &[(OwnedFd, OwnedFd)],
    chain: Chain,
) -> io::Result<Dispatched> {
    let n = pairs.len();
    if chain.active == 0 || chain.active > n {
        return Err(io::Error::other(format!(
            "A = {} tokens on N = {n} pairs: A must be 1 to N",
            chain.active
        )));
    }
    for (i, (watched, _)) in pairs.iter().enumerate() {
        poller.add(watched.as_raw_fd(), Token(i), Interest::READABLE)?;
    }
    // The first tokens, spread evenly over the chain (bench.c's `space`).
    let space = n / chain.active;
    for i in 0..chain.active {
        write(&pairs[i * space].1, b"e")?;
    }
    let (mut fired, mut read_count, mut writes_left, mut waits) =
        (chain.active, 0usize, chain.writes, 0usize);
    let mut events: Vec<Event> = Vec::new();
    let mut byte = [0u8; 1];
    let cpu_start = thread_cpu_ns()?;
    let start = Instant::now();
    while read_count < fired {
        // A token is always in flight here, so the wait returns at once;
        // the limit only turns a lost token into an error, not a hang.
        poller.wait(&mut events, Some(Duration::from_secs(2)))?;
        waits += 1;
        if events.is_empty() {
            return Err(io::Error::other(format!(
                "{}: no event within 2 s with {} tokens still travelling",
                poller.name(),
                fired - read_count
            )));
        }
        for event in &events {
            let i = event.token.0;
            read_count += read(&pairs[i].0, &mut byte)?;
            if writes_left > 0 {
                write(&pairs[(i + 1) % n].1, b"e")?;
                writes_left -= 1;
                fired += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu_ns = thread_cpu_ns()? - cpu_start;
    for (watched, _) in pairs {
        poller.delete(watched.as_raw_fd())?;
    }
    Ok(Dispatched {
        events: read_count,
        waits,
        elapsed,
        cpu_ns,
    })
}
// ANCHOR_END: chain

/// The three backends, by name.
pub const BACKENDS: [&str; 3] = ["select", "poll", "epoll"];

/// A fresh backend called `name` (one of [`BACKENDS`]).
pub fn backend(name: &str) -> io::Result<Box<dyn Poller>> {
    Ok(match name {
        "select" => Box::new(ch03_select::SelectPoller::new()),
        "poll" => Box::new(ch04_poll::PollPoller::new()),
        "epoll" => Box::new(ch05_epoll_api::EpollPoller::new()?),
        other => return Err(io::Error::other(format!("no backend called {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_written_is_read_once_on_every_backend() {
        let pairs = make_pairs(8).unwrap();
        for name in BACKENDS {
            let mut poller = backend(name).unwrap();
            let chain = Chain {
                pairs: 8,
                active: 2,
                writes: 20,
            };
            let run = run_chain(poller.as_mut(), &pairs, chain).unwrap();
            assert_eq!(run.events, 22, "{name}: 2 first tokens + 20 writes");
            assert!(run.waits >= 1 && run.waits <= 22, "{name}: {run:?}");
            // The chain is empty again: a second run starts from nothing.
            let again = run_chain(poller.as_mut(), &pairs, chain).unwrap();
            assert_eq!(again.events, 22, "{name}, second run");
        }
    }

    #[test]
    fn more_tokens_than_pairs_is_refused() {
        let pairs = make_pairs(2).unwrap();
        let mut poller = backend("poll").unwrap();
        let chain = Chain {
            pairs: 2,
            active: 3,
            writes: 1,
        };
        let e = run_chain(poller.as_mut(), &pairs, chain).unwrap_err();
        assert!(e.to_string().contains("A must be 1 to N"), "{e}");
    }
}
