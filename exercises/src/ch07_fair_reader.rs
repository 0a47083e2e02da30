//! # Chapter 07, exercise 3: a fair reader with a budget
//!
//! Read first: the book's chapter 07 ("Starvation, and a fair loop"), and in
//! [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html),
//! "Possible pitfalls and ways to avoid them", o Starvation (edge-triggered):
//! "If there is a large amount of I/O space, it is possible that by trying
//! to drain it the other files will not get processed causing starvation.
//! [...] The solution is to maintain a ready list and mark the file
//! descriptor as ready in its associated data structure". Run
//! `cargo run -p ch07-level-vs-edge -- starvation`.
//!
//! With EPOLLET you must read until EAGAIN, but not necessarily all at once.
//! [`FairReader`] keeps its own ready list of the connections that have
//! something to read. Write it:
//!
//! - [`FairReader::mark_ready`]: epoll reported the token. Put it at the
//!   back of the ready list, unless it is there already (or the reader does
//!   not know the token);
//! - [`FairReader::turn`]: serve the connection at the front, for at most
//!   `budget` reads of [`CHUNK`] bytes, each handed to `on_data`. If it used
//!   its whole budget, it may have more: put it at the back (edge mode will
//!   not report it again, since nothing new happened: it is simply still
//!   readable). A read that finds EAGAIN ends its stay on the list (the next
//!   data fires a new event);
//! - end of file (a read returned 0): no event will ever come for that
//!   connection again, so `turn` forgets it and returns its token,
//!   `Ok(Some(token))`, for the caller to close it;
//! - any other error is returned.
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

    /// epoll reported `token` readable: put it on our ready list (once;
    /// unknown tokens are ignored).
    pub fn mark_ready(&mut self, token: u64) {
        // TODO: push `token` to the back of the ready list, unless it is
        // already there or is not one of `connections`.
        todo!("ch07: mark ready")
    }

    /// Whether a turn has anything to do (if not, it is time to wait).
    pub fn has_work(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Serves the connection at the front of the ready list: at most
    /// `budget` reads of [`CHUNK`] bytes, each handed to `on_data`. If it did
    /// not reach EAGAIN (or end of file), it goes to the back of the list.
    /// Returns `Some(token)` when that connection reached end of file: it
    /// is forgotten, and the caller should close it.
    pub fn turn(&mut self, mut on_data: impl FnMut(u64, &[u8])) -> nix::Result<Option<u64>> {
        // TODO: take the token at the front of the ready list (none: done)
        // and its fd. Read at most `self.budget` times, CHUNK bytes each,
        // handing data to `on_data(token, data)`. EAGAIN: it leaves the list
        // (Ok(None)). End of file: forget it and return Ok(Some(token)).
        // Budget used up: push it to the back.
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
    /// A correct reader needs microseconds for any of these tests.
    const LIMIT: Duration = Duration::from_secs(2);

    /// A non-blocking connection and its peer.
    fn connection() -> (UnixStream, UnixStream) {
        let (peer, conn) = UnixStream::pair().unwrap();
        conn.set_nonblocking(true).unwrap();
        (peer, conn)
    }

    /// One turn, which must not fail here.
    fn turn_ok(reader: &mut FairReader<'_>, on_data: impl FnMut(u64, &[u8])) -> Option<u64> {
        reader.turn(on_data).unwrap_or_else(|e| {
            panic!(
                "turn returned Err({e}) on a healthy connection. EAGAIN means 'empty for \
                 now': it ends the connection's turn, it is not an error"
            )
        })
    }

    #[test]
    fn a_flood_does_not_starve_a_quiet_connection() {
        let flood_reads = within(LIMIT, "the quiet connection to be served", || {
            let (flood_peer, flood) = connection();
            let (quiet_peer, quiet) = connection();
            (&flood_peer).write_all(&[b'f'; CHUNK]).unwrap();
            (&quiet_peer).write_all(b"hello?\n").unwrap();
            let mut reader = FairReader::new(4);
            reader.add(FLOOD, flood.as_fd());
            reader.add(QUIET, quiet.as_fd());
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
                turn_ok(&mut reader, |token, data| {
                    if token == FLOOD {
                        flood_reads += 1;
                        assert!(
                            flood_reads <= 1000,
                            "1000 reads of the flooding connection and the quiet one still \
                             waits: stop after `budget` reads and move on"
                        );
                        // The flooding peer sends faster than we read.
                        (&flood_peer).write_all(&[b'f'; CHUNK]).unwrap();
                    } else {
                        quiet_got.extend_from_slice(data);
                    }
                });
            }
            assert!(
                quiet_got == b"hello?\n",
                "the quiet connection's line, whole"
            );
            flood_reads
        });
        assert_eq!(
            flood_reads, 4,
            "the flooding connection was read {flood_reads} times before the quiet one: with \
             a budget of 4 it gets exactly 4 reads per turn, then the next connection's turn \
             comes"
        );
    }

    #[test]
    fn connections_take_turns_in_the_order_they_became_ready() {
        let (served, turns) = within(LIMIT, "three connections to be read to EAGAIN", || {
            // Tokens marked in an order that is not their numeric order.
            let tokens = [30, 10, 20];
            let pairs: Vec<(UnixStream, UnixStream)> = tokens.map(|_| connection()).into();
            let mut reader = FairReader::new(1);
            for (&token, (peer, conn)) in tokens.iter().zip(&pairs) {
                (&*peer).write_all(&[b'x'; CHUNK * 3]).unwrap();
                reader.add(token, conn.as_fd());
            }
            for token in tokens {
                reader.mark_ready(token);
            }
            let mut served = Vec::new();
            let mut turns = 0;
            while reader.has_work() && turns < 100 {
                turns += 1;
                turn_ok(&mut reader, |token, _| served.push(token));
            }
            (served, turns)
        });
        assert_eq!(
            served,
            [30, 10, 20].repeat(3),
            "three connections with 3 chunks each, marked ready as 30, 10, 20, budget 1: \
             they take turns in that order, one read each, round after round. Serve the \
             front of your ready list and put a connection that used its budget at the BACK"
        );
        assert_eq!(
            turns, 12,
            "9 turns with data, then one more turn each to find EAGAIN (then it leaves the \
             list): 12 turns"
        );
    }

    #[test]
    fn a_connection_that_used_its_budget_is_served_again() {
        let (reads, turns) = within(LIMIT, "the flooding connection to be served again", || {
            let (flood_peer, flood) = connection();
            (&flood_peer).write_all(&[b'f'; CHUNK * 10]).unwrap();
            let mut reader = FairReader::new(2);
            reader.add(FLOOD, flood.as_fd());
            reader.mark_ready(FLOOD);
            let mut reads = 0;
            let mut turns = 0;
            while reader.has_work() && turns < 100 {
                turns += 1;
                turn_ok(&mut reader, |_, _| reads += 1);
            }
            (reads, turns)
        });
        assert_eq!(
            reads, 10,
            "10 chunks were waiting and {reads} were read. A connection that used its whole \
             budget may have more: put it back on your ready list, because under EPOLLET \
             epoll will not report it again"
        );
        assert_eq!(
            turns, 6,
            "10 chunks with a budget of 2: 5 turns of 2 reads, then a 6th turn whose read \
             finds EAGAIN"
        );
    }

    #[test]
    fn a_drained_connection_leaves_the_ready_list() {
        let (has_work, turns) = within(LIMIT, "the ready list to empty", || {
            let (quiet_peer, quiet) = connection();
            (&quiet_peer).write_all(b"one line\n").unwrap();
            let mut reader = FairReader::new(4);
            reader.add(QUIET, quiet.as_fd());
            reader.mark_ready(QUIET);
            reader.mark_ready(QUIET);
            let mut turns = 0;
            while reader.has_work() && turns < 10 {
                turns += 1;
                turn_ok(&mut reader, |_, _| {});
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

    #[test]
    fn end_of_file_is_reported_and_the_connection_forgotten() {
        for budget in [4, 1] {
            let (ended, got, has_work) = within(LIMIT, "turns to reach end of file", move || {
                let (quiet_peer, quiet) = connection();
                (&quiet_peer).write_all(b"bye").unwrap();
                drop(quiet_peer);
                let mut reader = FairReader::new(budget);
                reader.add(QUIET, quiet.as_fd());
                reader.mark_ready(QUIET);
                let mut got = Vec::new();
                let mut ended = Vec::new();
                let mut turns = 0;
                while reader.has_work() && turns < 10 {
                    turns += 1;
                    ended.push(turn_ok(&mut reader, |_, data| got.extend_from_slice(data)));
                }
                // epoll may report it again (level-triggered code, or a
                // stale event): the reader must not take it back.
                reader.mark_ready(QUIET);
                (ended, got, reader.has_work())
            });
            assert!(
                got == b"bye",
                "the data before end of file must be handed over"
            );
            assert_eq!(
                ended.last(),
                Some(&Some(QUIET)),
                "budget {budget}: the peer sent \"bye\" and closed, and turn's answers were \
                 {ended:?}. A read that returns 0 is end of file: under EPOLLET no event \
                 will ever come for it again, so return Ok(Some(token)) for the caller to \
                 close it (the last turn must say so)"
            );
            assert!(
                !has_work,
                "budget {budget}: after end of file the reader must forget the connection: \
                 a later mark_ready of its token does nothing"
            );
        }
    }

    #[test]
    fn a_read_error_is_returned() {
        let result = within(LIMIT, "the turn to return the reset", || {
            // The peer closes with data of ours unread: the kernel resets
            // the connection, and a read fails with ECONNRESET.
            let (quiet_peer, quiet) = connection();
            (&quiet).write_all(b"never read").unwrap();
            drop(quiet_peer);
            let mut reader = FairReader::new(4);
            reader.add(QUIET, quiet.as_fd());
            reader.mark_ready(QUIET);
            reader.turn(|_, _| {})
        });
        assert_eq!(
            result,
            Err(Errno::ECONNRESET),
            "the read failed with ECONNRESET (the peer closed with data unread). Only \
             EAGAIN means 'empty for now': return any other error, for the caller to close \
             the connection"
        );
    }
}
