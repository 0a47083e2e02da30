//! # Chapter 10, exercise 1: a connection table with generation tokens
//!
//! Read first: the book's chapter 10 ("Close while a dup lives",
//! "A number the kernel hands out again" and "The stale event in a batch"),
//! and in [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)
//! the question "Will closing a file descriptor cause it to be removed from
//! all epoll interest lists?" and "Possible pitfalls and ways to avoid them"
//! ("If using an event cache..."). Run
//! `cargo run -p ch10-fd-lifetimes -- stale-batch --mode generation`.
//!
//! A server keeps its connections in a table and registers each with epoll.
//! Three bugs wait for it, each from treating a descriptor *number* as if
//! it were the connection:
//!
//! - `close(fd)` removes the registration only when the last descriptor of
//!   the open file description goes. If anything holds a `dup` (a library,
//!   a child process), events keep coming for the closed connection, and
//!   after the close no `epoll_ctl` can reach the entry (EBADF);
//! - the kernel gives a closed number to the next `accept`: a token that is
//!   just the number cannot tell the old connection from the new one;
//! - one `epoll_wait` returns a batch; handling one event may close a
//!   connection whose event comes later in the same batch.
//!
//! Write [`ConnTable`]:
//!
//! - [`insert`](ConnTable::insert): give the connection the next
//!   generation, register it for `EPOLLIN` with the token
//!   [`token`]`(fd, generation)` as `data`, keep it in its slot (slots are
//!   by descriptor number), and return the token;
//! - [`get`](ConnTable::get): the connection a token names, only if it is
//!   still the one in that slot (same generation); `None` otherwise;
//! - [`close`](ConnTable::close): `EPOLL_CTL_DEL` while the number is still
//!   open, then close; a token that names no live connection is not an
//!   error (nothing to do);
//! - [`dispatch`](ConnTable::dispatch): call `handle` for each event of a
//!   batch in order, looking its token up only when you reach it, and skip
//!   it if the connection is gone; return how many were handled.
//!
//! Check with `cargo lab check ch10_conn_table`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

/// The `data` token of the connection on `fd` with `generation`: the number
/// in the high 32 bits, the generation in the low 32 bits.
pub fn token(fd: RawFd, generation: u32) -> u64 {
    (u64::from(fd as u32) << 32) | u64::from(generation)
}

/// The descriptor number and generation a token was made of.
pub fn token_parts(token: u64) -> (RawFd, u32) {
    ((token >> 32) as u32 as RawFd, token as u32)
}

/// One live connection: the descriptor and the generation it was given.
struct Slot {
    generation: u32,
    fd: OwnedFd,
}

/// Connections by descriptor number, registered with one epoll instance.
pub struct ConnTable {
    ep: Epoll,
    slots: HashMap<RawFd, Slot>,
    /// The generation the next connection gets (never reused).
    next_generation: u32,
}

impl ConnTable {
    /// An empty table with its own epoll instance.
    pub fn new() -> io::Result<ConnTable> {
        Ok(ConnTable {
            ep: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            slots: HashMap::new(),
            next_generation: 1,
        })
    }

    /// The epoll instance, to wait on.
    pub fn epoll(&self) -> &Epoll {
        &self.ep
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Registers `conn` for `EPOLLIN` and keeps it; returns its token.
    pub fn insert(&mut self, conn: OwnedFd) -> io::Result<u64> {
        let generation = self.next_generation;
        self.next_generation += 1;
        let fd = conn.as_raw_fd();
        let token = token(fd, generation);
        self.ep
            .add(&conn, EpollEvent::new(EpollFlags::EPOLLIN, token))?;
        self.slots.insert(
            fd,
            Slot {
                generation,
                fd: conn,
            },
        );
        Ok(token)
    }

    /// The connection `token` names, if it is still live.
    pub fn get(&self, token: u64) -> Option<BorrowedFd<'_>> {
        let (fd, generation) = token_parts(token);
        let slot = self.slots.get(&fd)?;
        // Same number, other generation: a connection that had this number
        // before, closed since.
        (slot.generation == generation).then(|| slot.fd.as_fd())
    }

    /// Unregisters and closes the connection `token` names: DEL first,
    /// while the number still names the file, then close.
    pub fn close(&mut self, token: u64) -> io::Result<()> {
        if self.get(token).is_none() {
            return Ok(());
        }
        let (fd, _) = token_parts(token);
        let slot = self.slots.remove(&fd).expect("get found it");
        self.ep.delete(&slot.fd)?;
        drop(slot.fd);
        Ok(())
    }

    /// Calls `handle(self, token)` for each event of `events` whose
    /// connection is live when its turn comes; returns how many.
    pub fn dispatch(
        &mut self,
        events: &[EpollEvent],
        mut handle: impl FnMut(&mut ConnTable, u64),
    ) -> usize {
        let mut handled = 0;
        for event in events {
            // Looked up now, not before the loop: an earlier handler of
            // this batch may have closed it (and its number been reused).
            if self.get(event.data()).is_some() {
                handle(self, event.data());
                handled += 1;
            }
        }
        handled
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::sys::epoll::EpollTimeout;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// A correct table answers in microseconds.
    const LIMIT: Duration = Duration::from_secs(2);

    /// A connected pair: (the peer the test writes with, the connection
    /// for the table). The connection is the first of the two, so it gets
    /// the lowest free number.
    fn pair() -> (UnixStream, OwnedFd) {
        let (conn, peer) = UnixStream::pair().unwrap();
        (peer, OwnedFd::from(conn))
    }

    /// What one `epoll_wait` with timeout 0 returns.
    fn ready(table: &ConnTable) -> Vec<EpollEvent> {
        let mut events = vec![EpollEvent::empty(); 8];
        let n = table.epoll().wait(&mut events, EpollTimeout::ZERO).unwrap();
        events.truncate(n);
        events
    }

    /// The registrations the kernel holds for the table's epoll instance,
    /// from /proc/self/fdinfo.
    fn registrations(table: &ConnTable) -> usize {
        let fd = table.epoll().0.as_raw_fd();
        lab_kit::epoll::parse_fdinfo(
            &std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap(),
        )
        .len()
    }

    #[test]
    fn close_removes_the_registration_even_while_a_dup_lives() {
        within(LIMIT, "insert, close and a wait to return", || {
            let mut table = ConnTable::new().unwrap();
            let (mut peer, conn) = pair();
            // Something else holds a second descriptor for the same socket.
            let dup = conn.try_clone().unwrap();
            let token = table.insert(conn).unwrap();
            assert_eq!(
                registrations(&table),
                1,
                "insert should register the connection"
            );
            if let Err(e) = table.close(token) {
                panic!(
                    "close returned {e}. If that came from EPOLL_CTL_DEL: DEL after close \
                     fails (EBADF), since the number no longer names anything. DEL first, \
                     then close"
                );
            }
            assert!(
                table.get(token).is_none(),
                "get(token) after close should be None"
            );
            peer.write_all(b"after close").unwrap();
            let events = ready(&table);
            assert!(
                events.is_empty() && registrations(&table) == 0,
                "after close(token), the peer wrote and epoll_wait still reported {} event(s) \
                 for the closed connection ({} registration(s) left). This test holds a dup of \
                 the socket, so closing the descriptor did not remove the registration \
                 (epoll(7): only when all descriptors of the file are closed). Close without \
                 DEL: call EPOLL_CTL_DEL before close",
                events.len(),
                registrations(&table)
            );
            drop(dup);
        });
    }

    #[test]
    fn a_reused_number_gets_a_new_token_and_the_old_token_finds_nothing() {
        within(LIMIT, "insert, close, insert to return", || {
            let mut table = ConnTable::new().unwrap();
            // The kernel hands out the lowest free number: after the close,
            // the next socket gets the number `a` had, unless another test
            // running beside this one took it first; then try again.
            for _ in 0..100 {
                let (_peer_a, a) = pair();
                let number = a.as_raw_fd();
                let old = table.insert(a).unwrap();
                table.close(old).unwrap();
                let (_peer_b, b) = pair();
                if b.as_raw_fd() != number {
                    continue;
                }
                let new = table.insert(b).unwrap();
                assert_ne!(
                    old, new,
                    "the new connection got descriptor {number} again, and the same token \
                     ({new:#x}) as the closed one: with the raw descriptor number as token, \
                     an event for the old connection looks like one for the new. Put a \
                     generation in the token (see `token`)"
                );
                assert!(
                    table.get(old).is_none(),
                    "get(old token) found a connection: the slot for descriptor {number} \
                     holds a newer connection now; compare the generations"
                );
                assert!(
                    table.get(new).is_some(),
                    "get(new token) should find the new connection"
                );
                return;
            }
            panic!("test setup: in 100 tries no closed number was handed out again");
        });
    }

    #[test]
    fn an_event_for_a_connection_closed_earlier_in_the_batch_is_skipped() {
        within(LIMIT, "dispatch of a batch of 2 to return", || {
            let mut table = ConnTable::new().unwrap();
            let (mut peer_1, c1) = pair();
            let (mut peer_3, c3) = pair();
            let t1 = table.insert(c1).unwrap();
            let t3 = table.insert(c3).unwrap();
            peer_1.write_all(b"kick the other").unwrap();
            peer_3.write_all(b"hello").unwrap();
            let batch = ready(&table);
            assert_eq!(batch.len(), 2, "both connections should be ready");
            let mut handled = Vec::new();
            let mut newcomers = Vec::new();
            let count = table.dispatch(&batch, |table, token| {
                assert!(
                    table.get(token).is_some(),
                    "dispatch called handle for token {token:#x}, which names no live \
                     connection: an earlier handler of this batch closed it. Look each token \
                     up when you reach its event, and skip it if it is gone"
                );
                handled.push(token);
                if handled.len() == 1 {
                    // The first handler closes the other connection, and a
                    // new client arrives and takes its number.
                    let other = if token == t1 { t3 } else { t1 };
                    table.close(other).unwrap();
                    let (peer, conn) = pair();
                    newcomers.push(peer);
                    table.insert(conn).unwrap();
                }
            });
            assert_eq!(
                (handled.len(), count),
                (1, 1),
                "handle ran {} time(s) for a batch of 2 in which the first handler closed the \
                 other connection (and a new one took its number): the event of a connection \
                 closed earlier in the same batch must be skipped (epoll(7), Possible \
                 pitfalls: 'If using an event cache...')",
                handled.len()
            );
        });
    }

    #[test]
    fn dispatch_hands_every_live_event_to_the_handler_in_order() {
        within(LIMIT, "dispatch of a batch of 3 to return", || {
            let mut table = ConnTable::new().unwrap();
            let mut peers = Vec::new();
            let mut tokens = Vec::new();
            for _ in 0..3 {
                let (peer, conn) = pair();
                peers.push(peer);
                tokens.push(table.insert(conn).unwrap());
            }
            assert_eq!(table.len(), 3);
            for peer in &mut peers {
                peer.write_all(b"x").unwrap();
            }
            let batch = ready(&table);
            let mut seen = Vec::new();
            let count = table.dispatch(&batch, |table, token| {
                let fd = table.get(token).expect("a live connection");
                let mut byte = [0u8; 1];
                nix::unistd::read(fd, &mut byte).unwrap();
                seen.push(token);
            });
            let in_batch: Vec<u64> = batch.iter().map(|e| e.data()).collect();
            assert_eq!(count, 3, "three live connections were ready");
            assert_eq!(
                seen, in_batch,
                "handle each event once, in the batch's order"
            );
            for token in tokens {
                table.close(token).unwrap();
            }
            assert!(table.is_empty());
            assert!(ready(&table).is_empty());
        });
    }
}
