//! # Chapter 07, exercise 2: the edge-triggered accept loop
//!
//! Read first: the book's chapter 07 ("Accept under edge"), and
//! [accept(2)](https://man7.org/linux/man-pages/man2/accept.2.html):
//! RETURN VALUE, and ERRORS (EAGAIN on a non-blocking socket with no
//! pending connection; ECONNABORTED). Run
//! `cargo run -p ch07-level-vs-edge -- accept --mode edge`.
//!
//! Three clients that connect before the server waits make *one* event on
//! an edge-triggered listener. A server that accepts one connection per
//! event leaves the other two in the queue until a fourth client comes.
//!
//! Write [`accept_all`]: accept from the non-blocking `listener` until the
//! queue is empty (EAGAIN), and return every connection accepted. A client
//! that gave up before you accepted it (ECONNABORTED) or a signal (EINTR)
//! is no reason to stop.
//!
//! Check with `cargo lab check ch07_accept_loop`.

use std::io;
use std::net::{TcpListener, TcpStream};

/// Accepts every pending connection of a non-blocking `listener`.
pub fn accept_all(listener: &TcpListener) -> io::Result<Vec<TcpStream>> {
    let mut accepted = Vec::new();
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => accepted.push(stream),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(accepted),
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionAborted
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
    use std::os::fd::AsFd;
    use std::time::Duration;

    const LIMIT: Duration = Duration::from_secs(5);

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

    #[test]
    fn one_event_accepts_every_queued_connection() {
        let (accepted, later_events) =
            within(LIMIT, "accept_all with 3 connections queued", || {
                let (epoll, listener) = edge_listener();
                let addr = listener.local_addr().unwrap();
                let _clients: Vec<TcpStream> =
                    (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
                // Loopback connects complete at once; give the event up to 1 s.
                assert_eq!(events(&epoll, 1000), 1, "three connections, one edge event");
                let accepted = accept_all(&listener).unwrap();
                (accepted.len(), events(&epoll, 0))
            });
        assert_eq!(
            accepted, 3,
            "three connections were queued and you accepted {accepted}. Under EPOLLET the \
             listener reports once for all three: accept in a loop until EAGAIN \
             (io::ErrorKind::WouldBlock), or the rest wait until another client connects"
        );
        assert_eq!(later_events, 0, "the queue is empty: no more events");
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
    fn accepted_connections_work() {
        use std::io::{Read, Write};
        let echoed = within(LIMIT, "a byte through each accepted connection", || {
            let (epoll, listener) = edge_listener();
            let addr = listener.local_addr().unwrap();
            let mut clients: Vec<TcpStream> =
                (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
            events(&epoll, 1000);
            let mut conns = accept_all(&listener).unwrap();
            let mut ok = 0;
            for (i, client) in clients.iter_mut().enumerate() {
                client.write_all(&[i as u8]).unwrap();
            }
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
}
