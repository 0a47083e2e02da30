//! # Chapter 07, exercise 3: a fair reader with a budget
//!
//! Read first: the book's chapter 07 ("Starvation"), and in
//! [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html),
//! "Possible pitfalls and ways to avoid them", o Starvation (edge-triggered):
//! "If there is a large amount of I/O space, it is possible that by trying
//! to drain it the other files will not get processed causing starvation.
//! [...] The solution is to maintain a ready list and mark the file
//! descriptor as ready in its associated data structure". Run
//! `cargo run -p ch07-level-vs-edge -- starvation`.
//!
//! With EPOLLET you must read until EAGAIN, but not necessarily all at once.
//! [`FairReader`] keeps its own ready list: connections that epoll reported,
//! plus those that used up their budget without reaching EAGAIN (edge mode
//! will not report them again: nothing new happened, they are simply still
//! readable). Each turn serves the connection at the front for at most
//! `budget` reads, then puts it at the back if it may have more.
//!
//! Check with `cargo lab check ch07_fair_reader`.

use std::collections::{HashMap, VecDeque};
use std::os::fd::BorrowedFd;

use nix::errno::Errno;

/// The size of one read.
pub const CHUNK: usize = 4096;

/// Reads many edge-triggered connections fairly.
pub struct FairReader<'fd> {
    budget: usize,
    connections: HashMap<u64, BorrowedFd<'fd>>,
    /// Our own ready list: tokens to serve, front first, each at most once.
    ready: VecDeque<u64>,
}

impl<'fd> FairReader<'fd> {
    /// A reader that does at most `budget` reads per connection per turn.
    pub fn new(budget: usize) -> FairReader<'fd> {
        FairReader {
            budget,
            connections: HashMap::new(),
            ready: VecDeque::new(),
        }
    }

    /// Adds a non-blocking connection under `token`.
    pub fn add(&mut self, token: u64, fd: BorrowedFd<'fd>) {
        self.connections.insert(token, fd);
    }

    /// epoll reported `token` readable: put it on our ready list (once).
    pub fn mark_ready(&mut self, token: u64) {
        // TODO: push `token` to the back of the ready list, unless it is
        // already there.
        todo!("ch07: mark ready")
    }

    /// Whether a turn has anything to do (if not, it is time to wait).
    pub fn has_work(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Serves the connection at the front of the ready list: at most
    /// `budget` reads of [`CHUNK`] bytes, each handed to `on_data`. If it did
    /// not reach EAGAIN (or end of file), it goes to the back of the list.
    pub fn turn(&mut self, mut on_data: impl FnMut(u64, &[u8])) -> nix::Result<()> {
        // TODO: take the token at the front of the ready list (none: done)
        // and its fd. Read at most `self.budget` times, CHUNK bytes each,
        // handing data to `on_data(token, data)`. EAGAIN or end of file: it
        // leaves the list. Budget used up: push it to the back.
        todo!("ch07: one fair turn")
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    const FLOOD: u64 = 1;
    const QUIET: u64 = 2;
    const LIMIT: Duration = Duration::from_secs(5);

    struct Peers {
        flood_peer: UnixStream,
        quiet_peer: UnixStream,
        flood: UnixStream,
        quiet: UnixStream,
    }

    fn peers() -> Peers {
        let (flood_peer, flood) = UnixStream::pair().unwrap();
        let (quiet_peer, quiet) = UnixStream::pair().unwrap();
        flood.set_nonblocking(true).unwrap();
        quiet.set_nonblocking(true).unwrap();
        Peers {
            flood_peer,
            quiet_peer,
            flood,
            quiet,
        }
    }

    #[test]
    fn a_flood_does_not_starve_a_quiet_connection() {
        let flood_reads = within(LIMIT, "the quiet connection to be served", || {
            let p = peers();
            (&p.flood_peer).write_all(&[b'f'; CHUNK]).unwrap();
            (&p.quiet_peer).write_all(b"hello?\n").unwrap();
            let mut reader = FairReader::new(4);
            reader.add(FLOOD, p.flood.as_fd());
            reader.add(QUIET, p.quiet.as_fd());
            // epoll reported both, flood first.
            reader.mark_ready(FLOOD);
            reader.mark_ready(QUIET);
            let mut flood_reads = 0;
            let mut quiet_got = Vec::new();
            let mut turns = 0;
            while quiet_got.is_empty() {
                turns += 1;
                assert!(
                    turns < 100,
                    "100 turns and the quiet connection was not served"
                );
                reader
                    .turn(|token, data| {
                        if token == FLOOD {
                            flood_reads += 1;
                            assert!(
                                flood_reads <= 1000,
                                "1000 reads of the flooding connection and the quiet one \
                                 still waits: stop after `budget` reads and move on"
                            );
                            // The flooding peer sends faster than we read.
                            (&p.flood_peer).write_all(&[b'f'; CHUNK]).unwrap();
                        } else {
                            quiet_got.extend_from_slice(data);
                        }
                    })
                    .unwrap();
            }
            assert_eq!(quiet_got, b"hello?\n");
            flood_reads
        });
        assert!(
            flood_reads <= 4,
            "the flooding connection was read {flood_reads} times before the quiet one: \
             with a budget of 4 it should be at most 4"
        );
    }

    #[test]
    fn a_connection_that_used_its_budget_is_served_again() {
        let served = within(LIMIT, "the flooding connection to be served again", || {
            let p = peers();
            (&p.flood_peer).write_all(&[b'f'; CHUNK * 10]).unwrap();
            let mut reader = FairReader::new(2);
            reader.add(FLOOD, p.flood.as_fd());
            reader.mark_ready(FLOOD);
            let mut reads = 0;
            let mut turns = 0;
            while reader.has_work() && turns < 100 {
                turns += 1;
                reader.turn(|_, _| reads += 1).unwrap();
            }
            reads
        });
        assert_eq!(
            served, 10,
            "10 chunks were waiting and {served} were read. A connection that used its whole \
             budget may have more: put it back on your ready list, because under EPOLLET \
             epoll will not report it again"
        );
    }

    #[test]
    fn a_drained_connection_leaves_the_ready_list() {
        let (has_work, turns) = within(LIMIT, "the ready list to empty", || {
            let p = peers();
            (&p.quiet_peer).write_all(b"one line\n").unwrap();
            let mut reader = FairReader::new(4);
            reader.add(QUIET, p.quiet.as_fd());
            reader.mark_ready(QUIET);
            reader.mark_ready(QUIET);
            let mut turns = 0;
            while reader.has_work() && turns < 10 {
                turns += 1;
                reader.turn(|_, _| {}).unwrap();
            }
            (reader.has_work(), turns)
        });
        assert!(
            !has_work,
            "after 10 turns the ready list still has work, for one connection with one \
             line: a connection that reached EAGAIN must leave the list (the next data \
             fires a new event), or the loop never sleeps"
        );
        assert_eq!(turns, 1, "marking ready twice must not queue it twice");
    }
}
