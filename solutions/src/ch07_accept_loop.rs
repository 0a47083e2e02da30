//! # Chapter 07, exercise 2: the edge-triggered accept loop
//!
//! Read first: the book's chapter 07 ("Accept under edge"), and
//! [accept(2)](https://man7.org/linux/man-pages/man2/accept.2.html):
//! RETURN VALUE, ERRORS (EAGAIN on a non-blocking socket with no pending
//! connection) and NOTES (what a new socket inherits on Linux). Run
//! `cargo run -p ch07-level-vs-edge -- accept --mode edge`.
//!
//! Three clients that connect before the server waits make *one* event on
//! an edge-triggered listener. A server that accepts one connection per
//! event leaves the other two in the queue until a fourth client comes.
//!
//! Write [`accept_all`]:
//!
//! - accept from the non-blocking `listener` until the queue is empty
//!   (EAGAIN, `io::ErrorKind::WouldBlock`), and return every connection
//!   accepted;
//! - make each of them non-blocking before you return it: they will be
//!   registered edge-triggered and read until EAGAIN, and on Linux a socket
//!   that `accept` returns does not inherit `O_NONBLOCK` from the listener;
//! - any other error is returned as it is.
//!
//! Check with `cargo lab check ch07_accept_loop`.

use std::io;
use std::net::{TcpListener, TcpStream};

/// Accepts every pending connection of a non-blocking `listener`, and
/// returns them non-blocking.
pub fn accept_all(listener: &TcpListener) -> io::Result<Vec<TcpStream>> {
    let mut accepted = Vec::new();
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                // The new socket is blocking whatever the listener is.
                stream.set_nonblocking(true)?;
                accepted.push(stream);
            }
            // The queue is empty: the next connection fires a new event.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(accepted),
            Err(e) => return Err(e),
        }
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, socket};
    use std::io::{Read, Write};
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::time::Duration;

    /// A correct accept_all returns within microseconds.
    const LIMIT: Duration = Duration::from_secs(2);

    fn edge_listener() -> (Epoll, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLET;
        epoll
            .add(listener.as_fd(), EpollEvent::new(flags, 1))
            .unwrap();
        (epoll, listener)
    }

    fn events(epoll: &Epoll, timeout: u16) -> usize {
        epoll.wait(&mut [EpollEvent::empty(); 4], timeout).unwrap()
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

    /// Connects `count` clients and waits until the kernel has queued them
    /// all (a connection joins the queue when the handshake's last ACK
    /// arrives, which may come a moment after connect returned).
    fn connect_clients(listener: &TcpListener, count: usize) -> Vec<TcpStream> {
        let addr = listener.local_addr().unwrap();
        let clients = (0..count)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        while queued(listener) < count {
            std::thread::yield_now();
        }
        clients
    }

    /// accept_all, on a listener where it has no reason to fail.
    fn accept_ok(listener: &TcpListener) -> Vec<TcpStream> {
        accept_all(listener).unwrap_or_else(|e| {
            panic!(
                "accept_all returned Err({e}) on a healthy listener. EAGAIN \
                 (io::ErrorKind::WouldBlock) means the queue is empty: it ends the loop, it is \
                 not an error"
            )
        })
    }

    #[test]
    fn one_event_accepts_every_queued_connection() {
        let (event_before, accepted, event_after) =
            within(LIMIT, "accept_all with 3 connections queued", || {
                let (epoll, listener) = edge_listener();
                let _clients = connect_clients(&listener, 3);
                let event_before = events(&epoll, 0);
                let accepted = accept_ok(&listener);
                (event_before, accepted.len(), events(&epoll, 0))
            });
        assert_eq!(event_before, 1, "three connections queued: one edge event");
        assert_eq!(
            accepted, 3,
            "three connections were queued and you accepted {accepted}. Under EPOLLET the \
             listener reports once for all three: accept in a loop until EAGAIN \
             (io::ErrorKind::WouldBlock), or the rest wait until another client connects"
        );
        assert_eq!(event_after, 0, "the queue is empty: no more events");
    }

    #[test]
    fn an_empty_queue_is_no_error() {
        let accepted = within(
            LIMIT,
            "accept_all on an empty non-blocking listener to return at once",
            || {
                let (_epoll, listener) = edge_listener();
                accept_all(&listener)
                    .map(|v| v.len())
                    .map_err(|e| e.to_string())
            },
        );
        assert_eq!(
            accepted,
            Ok(0),
            "nothing pending: accept fails with EAGAIN (WouldBlock), which ends the loop \
             with what was accepted so far (nothing), not with an error"
        );
    }

    #[test]
    fn accepted_connections_are_non_blocking() {
        let blocking = within(LIMIT, "accept_all with 2 connections queued", || {
            let (_epoll, listener) = edge_listener();
            let _clients = connect_clients(&listener, 2);
            let accepted = accept_ok(&listener);
            assert_eq!(accepted.len(), 2, "two connections were queued");
            accepted
                .iter()
                .filter(|conn| {
                    let flags = fcntl(conn, FcntlArg::F_GETFL).unwrap();
                    !OFlag::from_bits_truncate(flags).contains(OFlag::O_NONBLOCK)
                })
                .count()
        });
        assert_eq!(
            blocking, 0,
            "{blocking} of the 2 accepted connections are blocking. On Linux a socket that \
             accept returns does not inherit O_NONBLOCK from the listener (accept(2), \
             NOTES), and under EPOLLET you will read it until EAGAIN: on a blocking socket \
             that last read waits forever. Call set_nonblocking(true) on each"
        );
    }

    #[test]
    fn accepted_connections_work() {
        let echoed = within(LIMIT, "a byte through each accepted connection", || {
            let (_epoll, listener) = edge_listener();
            let mut clients = connect_clients(&listener, 2);
            let mut conns = accept_ok(&listener);
            for (i, client) in clients.iter_mut().enumerate() {
                client.write_all(&[i as u8]).unwrap();
            }
            let mut ok = 0;
            for conn in &mut conns {
                conn.set_nonblocking(false).unwrap();
                let mut b = [0u8; 1];
                conn.read_exact(&mut b).unwrap();
                ok += 1;
            }
            ok
        });
        assert_eq!(echoed, 2, "each accepted stream is a live connection");
    }

    #[test]
    fn a_failing_accept_is_returned() {
        let result = within(
            LIMIT,
            "accept_all to return the error of a socket that is not listening (if it never \
             returns, it retries an error that will never go away)",
            || {
                // A TCP socket that is bound but not listening: accept on it
                // fails with EINVAL.
                let fd: OwnedFd = socket(
                    AddressFamily::Inet,
                    SockType::Stream,
                    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                    None,
                )
                .unwrap();
                bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
                let not_listening = TcpListener::from(fd);
                accept_all(&not_listening).map(|v| v.len())
            },
        );
        match result {
            Err(e) => assert_eq!(
                e.raw_os_error(),
                Some(nix::libc::EINVAL),
                "accept on a socket that is not listening fails with EINVAL; return that \
                 error as it is"
            ),
            Ok(n) => panic!(
                "accept failed with EINVAL (the socket is not listening) and accept_all \
                 returned Ok({n}): only EAGAIN (WouldBlock) means 'the queue is empty'. \
                 Return any other error"
            ),
        }
    }
}
