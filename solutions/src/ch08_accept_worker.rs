//! # Chapter 08, exercise 2: an accept worker for the pre-fork model
//!
//! Read first: the book's chapter 08 ("The herd: one listener, many
//! instances" and "The rules of EPOLLEXCLUSIVE"), and
//! [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html):
//! EPOLLEXCLUSIVE and the EINVAL errors;
//! [accept(2)](https://man7.org/linux/man-pages/man2/accept.2.html): EAGAIN.
//! Run `cargo run -p ch08-oneshot-and-exclusive -- herd --mode exclusive`.
//!
//! In the pre-fork model several workers (processes, here threads) share
//! one listening socket, and each has its *own* epoll instance watching it.
//! Registered plainly, every connection wakes every worker. Registered with
//! EPOLLEXCLUSIVE, it wakes one or more of them; a woken worker may still
//! find the queue empty, because another one was faster.
//!
//! Write:
//!
//! - [`AcceptWorker::new`]: make the shared listener non-blocking (a worker
//!   that finds the queue empty must not sleep in `accept`); create this
//!   worker's own epoll instance; register the listener on it for reading
//!   with EPOLLEXCLUSIVE, in the `EPOLL_CTL_ADD` itself;
//! - [`AcceptWorker::accept_ready`]: accept until the queue is empty and
//!   return the connections. `EAGAIN` (`io::ErrorKind::WouldBlock`) ends the
//!   loop, even on the first call: another worker took the connection. Any
//!   other error is returned.
//!
//! Check with `cargo lab check ch08_accept_worker`.

use std::io;
use std::net::{TcpListener, TcpStream};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// One worker: its own epoll instance, watching the shared listener.
pub struct AcceptWorker {
    epoll: Epoll,
}

/// The token of the listener in each worker's instance.
pub const LISTENER: u64 = 1;

impl AcceptWorker {
    /// Prepares the shared `listener` and this worker's epoll instance.
    pub fn new(listener: &TcpListener) -> io::Result<AcceptWorker> {
        // O_NONBLOCK lives in the open file description, which all workers
        // share: a woken worker that lost the race gets EAGAIN, not a sleep.
        listener.set_nonblocking(true)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        // The wait-queue entry is made exclusive when it is created, at
        // ADD: a MOD cannot change it (EINVAL).
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
        epoll.add(listener, EpollEvent::new(flags, LISTENER))?;
        Ok(AcceptWorker { epoll })
    }

    /// This worker's epoll instance (the tests read its interest list).
    pub fn epoll(&self) -> &Epoll {
        &self.epoll
    }

    /// Waits up to `timeout` milliseconds for the listener to be readable.
    pub fn wait(&self, timeout_ms: u16) -> io::Result<bool> {
        let mut events = [EpollEvent::empty(); 1];
        Ok(self
            .epoll
            .wait(&mut events, EpollTimeout::from(timeout_ms))?
            > 0)
    }

    /// Accepts every queued connection; none is fine.
    pub fn accept_ready(&self, listener: &TcpListener) -> io::Result<Vec<TcpStream>> {
        let mut accepted = Vec::new();
        loop {
            match listener.accept() {
                Ok((stream, _)) => accepted.push(stream),
                // Empty: done, or another worker was faster. Not an error.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(accepted),
                // The client gave up before we got to it: go on.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::epoll::interest_list;
    use lab_kit::watchdog::within;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    /// A correct worker answers each test within about a second.
    const LIMIT: Duration = Duration::from_secs(3);
    const EXCLUSIVE: u32 = EpollFlags::EPOLLEXCLUSIVE.bits() as u32;
    const IN: u32 = EpollFlags::EPOLLIN.bits() as u32;

    fn listener() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").unwrap()
    }

    fn worker(listener: &TcpListener) -> AcceptWorker {
        AcceptWorker::new(listener).unwrap_or_else(|e| {
            if e.raw_os_error() == Some(nix::libc::EINVAL) {
                panic!(
                    "AcceptWorker::new failed with EINVAL. EPOLLEXCLUSIVE is accepted only in \
                     EPOLL_CTL_ADD: a MOD that sets it, or any MOD of an entry added with it, \
                     is EINVAL; so is EXCLUSIVE with EPOLLONESHOT, EPOLLRDHUP or EPOLLPRI \
                     (epoll_ctl(2), ERRORS). Put EPOLLIN | EPOLLEXCLUSIVE in the ADD"
                )
            }
            panic!("AcceptWorker::new failed: {e}")
        })
    }

    /// Connects a client and waits (up to 2 s) until `w` sees the listener
    /// readable, so the connection is in the accept queue.
    fn connect_and_see(listener: &TcpListener, w: &AcceptWorker) -> TcpStream {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(
            w.wait(2000).unwrap(),
            "a client connected and the worker's epoll instance reported nothing in 2 s: \
             register the listener for EPOLLIN"
        );
        client
    }

    #[test]
    fn a_connection_another_worker_took_is_no_error() {
        let result = within(
            LIMIT,
            "accept_ready to return at once when another worker took the connection. If \
             it blocks in accept, the listener is still blocking: AcceptWorker::new must \
             make it non-blocking (set_nonblocking(true))",
            || {
                let listener = listener();
                let w = worker(&listener);
                let _client = connect_and_see(&listener, &w);
                // Another worker was faster:
                let (_theirs, _) = listener.accept().unwrap();
                w.accept_ready(&listener).map(|v| v.len())
            },
        );
        match result {
            Ok(n) => assert_eq!(n, 0, "the only connection was taken by another worker"),
            Err(e) => panic!(
                "accept_ready returned Err({e}) after another worker took the connection. \
                 With several workers woken for one connection, EAGAIN (WouldBlock) from \
                 accept is normal: it means 'someone else got it'. End the loop with \
                 Ok(what you have), never fail the worker"
            ),
        }
    }

    #[test]
    fn the_listener_is_registered_exclusive_in_the_add() {
        let mask = within(LIMIT, "AcceptWorker::new to return", || {
            let listener = listener();
            let w = worker(&listener);
            let list = interest_list(w.epoll()).unwrap();
            assert_eq!(
                list.len(),
                1,
                "the worker's instance watches the listener only"
            );
            list[0].events
        });
        assert!(
            mask & EXCLUSIVE != 0,
            "the listener is registered with mask {mask:#x}, without EPOLLEXCLUSIVE \
             ({EXCLUSIVE:#x}): every worker's instance will wake its worker for every \
             connection (the thundering herd). Add it with EPOLLIN | EPOLLEXCLUSIVE"
        );
        assert!(mask & IN != 0, "register the listener for EPOLLIN");
    }

    #[test]
    fn the_shared_listener_is_made_non_blocking() {
        let nonblocking = within(LIMIT, "AcceptWorker::new to return", || {
            let listener = listener();
            let _w = worker(&listener);
            let flags = nix::fcntl::fcntl(&listener, nix::fcntl::FcntlArg::F_GETFL).unwrap();
            nix::fcntl::OFlag::from_bits_truncate(flags).contains(nix::fcntl::OFlag::O_NONBLOCK)
        });
        assert!(
            nonblocking,
            "after AcceptWorker::new the listener is still blocking: a worker woken for a \
             connection another worker already took would sleep in accept until the next \
             client comes. Call listener.set_nonblocking(true)"
        );
    }

    #[test]
    fn one_connection_four_workers_one_accept() {
        let (woken, accepted) = within(
            LIMIT,
            "four workers and one connection to be done within a second. A worker stuck in \
             accept means the listener is still blocking: AcceptWorker::new must make it \
             non-blocking (set_nonblocking(true))",
            || {
                let listener = Arc::new(listener());
                let workers: Vec<AcceptWorker> = (0..4).map(|_| worker(&listener)).collect();
                let after_waits = Arc::new(Barrier::new(4));
                let mut tids = Vec::new();
                let mut threads = Vec::new();
                for w in workers {
                    let (listener, after_waits) = (Arc::clone(&listener), Arc::clone(&after_waits));
                    let (tid_send, tid) = std::sync::mpsc::channel();
                    threads.push(std::thread::spawn(move || {
                        tid_send.send(nix::unistd::gettid()).unwrap();
                        let woken = w.wait(1000).unwrap();
                        after_waits.wait();
                        let accepted = if woken {
                            w.accept_ready(&listener)
                        } else {
                            Ok(vec![])
                        };
                        (woken, accepted.map(|v| v.len()))
                    }));
                    tids.push(tid.recv().unwrap());
                }
                for tid in tids {
                    lab_kit::proc::wait_until_asleep(tid, Duration::from_secs(2), |a| {
                        a.is_epoll_wait()
                    })
                    .expect("a worker never slept in epoll_wait");
                }
                let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
                let woken = results.iter().filter(|(w, _)| *w).count();
                let mut accepted = 0;
                for (_, r) in results {
                    match r {
                        Ok(n) => accepted += n,
                        Err(e) => panic!(
                            "a woken worker's accept_ready failed with {e}: with several workers \
                         woken for one connection, the losers get EAGAIN; that is not an error"
                        ),
                    }
                }
                (woken, accepted)
            },
        );
        assert!(
            woken >= 1,
            "a client connected and no worker woke: EPOLLEXCLUSIVE wakes one or more"
        );
        assert_eq!(
            accepted, 1,
            "one connection, accepted once ({woken} workers woke)"
        );
    }

    /// How many connections wait in `listener`'s accept queue: the kernel
    /// shows it as the rx_queue of the listening socket in /proc/net/tcp.
    fn queued(listener: &TcpListener) -> usize {
        let local = format!("0100007F:{:04X}", listener.local_addr().unwrap().port());
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        for line in table.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // st 0A is TCP_LISTEN; the 5th field is tx_queue:rx_queue.
            if fields.len() > 4 && fields[1] == local && fields[3] == "0A" {
                let rx = fields[4].split(':').nth(1).unwrap();
                return usize::from_str_radix(rx, 16).unwrap();
            }
        }
        panic!("the listener is not in /proc/net/tcp")
    }

    #[test]
    fn one_wake_up_accepts_every_queued_connection() {
        let accepted = within(
            LIMIT,
            "accept_ready with 3 connections queued to return at once. If its last accept \
             blocks, the listener is still blocking: AcceptWorker::new must make it \
             non-blocking",
            || {
                let listener = listener();
                let w = worker(&listener);
                let addr = listener.local_addr().unwrap();
                let _clients: Vec<TcpStream> =
                    (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
                while queued(&listener) < 3 {
                    std::thread::yield_now();
                }
                assert!(w.wait(1000).unwrap(), "three connections queued: readable");
                match w.accept_ready(&listener) {
                    Ok(accepted) => accepted.len(),
                    Err(e) => panic!(
                        "accept_ready returned Err({e}) with 3 connections queued: the accept \
                     after the last connection answers EAGAIN (WouldBlock), which ends the \
                     loop with Ok(the connections), it is not an error"
                    ),
                }
            },
        );
        assert_eq!(
            accepted, 3,
            "three connections were queued and one accept_ready took {accepted}: accept \
             until EAGAIN. A worker that takes one per wake-up leaves the rest waiting for \
             its next turn, and no other worker is woken for them"
        );
    }
}
