//! # Chapter 07, exercise 1: read until EAGAIN, and count what it costs
//!
//! Read first: the book's chapter 07 ("Partial read: a stall, not a loss"
//! and "Does edge mode save system calls?"), and in
//! [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html) the
//! suggested way to use EPOLLET: "with nonblocking file descriptors; and by
//! waiting for an event only after read(2) or write(2) return EAGAIN". Run
//! `cargo run -p ch07-level-vs-edge -- partial-read --mode edge`.
//!
//! Under EPOLLET the kernel says "readable" once per arrival of new data.
//! Whatever you leave unread gets no second event: the connection stalls
//! (nothing is lost, the bytes wait in the kernel). So after an event, read
//! until the kernel says EAGAIN.
//!
//! Write [`drain`]:
//!
//! - read the non-blocking `fd` with a buffer of `chunk` bytes (at most
//!   `chunk` bytes per `read`), appending everything to `sink`;
//! - stop at EAGAIN (empty for now, not an error) or at end of file (a read
//!   that returned 0: set `eof`); return any other error;
//! - say how many bytes were read and how many `read` calls it took, the
//!   last one included: the call that returns EAGAIN or 0 is the price
//!   edge-triggered mode pays on every event.
//!
//! (On a stream socket a short read already means the buffer was empty,
//! and mio and tokio rely on that. Here, follow epoll(7)'s rule and read
//! until EAGAIN: the tests count the calls.)
//!
//! Check with `cargo lab check ch07_drain`.

use std::os::fd::BorrowedFd;

use nix::errno::Errno;

/// What [`drain`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// How many bytes were read (and appended to the sink).
    pub bytes: usize,
    /// How many `read` calls were made, the last one (EAGAIN or 0) included.
    pub reads: usize,
    /// The peer closed its side: a read returned 0.
    pub eof: bool,
}

/// Reads `fd` until EAGAIN or end of file, `chunk` bytes at a time.
pub fn drain(fd: BorrowedFd<'_>, chunk: usize, sink: &mut Vec<u8>) -> nix::Result<Drained> {
    let mut buf = vec![0u8; chunk];
    let mut drained = Drained::default();
    loop {
        drained.reads += 1;
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => {
                drained.eof = true;
                return Ok(drained);
            }
            Ok(n) => {
                drained.bytes += n;
                sink.extend_from_slice(&buf[..n]);
            }
            // Empty for now: the next new data fires a new event.
            Err(Errno::EAGAIN) => return Ok(drained),
            Err(Errno::EINTR) => continue,
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
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// A correct drain returns within microseconds.
    const LIMIT: Duration = Duration::from_secs(2);

    /// An edge-triggered registration of a non-blocking `b`, with its peer.
    fn edge_pair() -> (Epoll, UnixStream, UnixStream) {
        let (peer, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLET;
        epoll.add(b.as_fd(), EpollEvent::new(flags, 1)).unwrap();
        (epoll, peer, b)
    }

    fn events(epoll: &Epoll) -> usize {
        epoll.wait(&mut [EpollEvent::empty(); 4], 0u8).unwrap()
    }

    /// drain, on a socket where it has no reason to fail.
    fn drain_ok(fd: BorrowedFd<'_>, chunk: usize, sink: &mut Vec<u8>) -> Drained {
        drain(fd, chunk, sink).unwrap_or_else(|e| {
            panic!(
                "drain returned Err({e}) on a healthy socket. EAGAIN means 'empty for now': it \
                 ends the loop, it is not an error"
            )
        })
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn reads_everything_not_just_one_chunk() {
        let (drained, sink, events_after) = within(
            LIMIT,
            "drain to return after reading 10 bytes, 4 at a time",
            || {
                let (epoll, mut peer, b) = edge_pair();
                peer.write_all(b"0123456789").unwrap();
                assert_eq!(events(&epoll), 1);
                let mut sink = Vec::new();
                let drained = drain_ok(b.as_fd(), 4, &mut sink);
                (drained, sink, events(&epoll))
            },
        );
        assert!(
            sink == b"0123456789",
            "the peer wrote \"0123456789\" and your sink holds {:?}. With EPOLLET there will be \
             no second event for the rest: read again and again until read fails with EAGAIN \
             (and append only the bytes each read returned)",
            text(&sink)
        );
        assert_eq!(
            drained,
            Drained {
                bytes: 10,
                reads: 4,
                eof: false
            },
            "10 bytes in chunks of 4 take 4 read calls: 4 + 4 + 2 bytes, then the read that \
             returns EAGAIN (a short read is not the end: keep reading until EAGAIN)"
        );
        assert_eq!(events_after, 0, "drained: nothing more to report");
    }

    #[test]
    fn eagain_is_not_an_error_and_costs_one_read() {
        let (drained, sink) = within(
            LIMIT,
            "drain on an empty non-blocking socket to return at once (its first read is EAGAIN)",
            || {
                let (_epoll, _peer, b) = edge_pair();
                let mut sink = Vec::new();
                (drain(b.as_fd(), 4, &mut sink), sink)
            },
        );
        assert_eq!(
            drained,
            Ok(Drained {
                bytes: 0,
                reads: 1,
                eof: false
            }),
            "EAGAIN means 'empty for now': the loop is done, it is not an error. Finding that \
             out took one read call"
        );
        assert!(sink.is_empty());
    }

    #[test]
    fn end_of_file_is_reported_after_the_last_data() {
        let (drained, sink) = within(
            LIMIT,
            "drain to stop at end of file (if it never returns: after end of file, read \
             returns 0 every time, so a loop that goes on after 0 never ends)",
            || {
                let (_epoll, mut peer, b) = edge_pair();
                peer.write_all(b"bye").unwrap();
                drop(peer);
                let mut sink = Vec::new();
                (drain_ok(b.as_fd(), 2, &mut sink), sink)
            },
        );
        assert!(
            sink == b"bye",
            "the data before end of file must be kept: expected \"bye\", got {:?}",
            text(&sink)
        );
        assert_eq!(
            drained,
            Drained {
                bytes: 3,
                reads: 3,
                eof: true
            },
            "\"bye\" in chunks of 2, then end of file: 3 read calls (2 bytes, 1 byte, then 0). \
             A read that returns 0 is end of file (eof: true); stop there, reading again would \
             return 0 forever"
        );
    }

    #[test]
    fn counts_every_read_call() {
        let cases = [(8, 4), (5, 1), (100, 7), (4096, 4096)];
        let counted = within(LIMIT, "four drains to return", move || {
            cases.map(|(len, chunk)| {
                let (_epoll, mut peer, b) = edge_pair();
                peer.write_all(&vec![b'x'; len]).unwrap();
                let mut sink = Vec::new();
                drain_ok(b.as_fd(), chunk, &mut sink)
            })
        });
        for ((len, chunk), drained) in cases.into_iter().zip(counted) {
            let with_data = len.div_ceil(chunk);
            assert_eq!(
                drained,
                Drained {
                    bytes: len,
                    reads: with_data + 1,
                    eof: false
                },
                "{len} bytes in chunks of {chunk}: {with_data} reads with data (at most \
                 `chunk` bytes each: the buffer is `chunk` bytes long), then the read that \
                 returns EAGAIN, {} calls in all. Count every call, the last one included",
                with_data + 1
            );
        }
    }

    #[test]
    fn each_new_arrival_is_read_after_its_event() {
        let total = within(LIMIT, "three rounds of write, event, drain", || {
            let (epoll, mut peer, b) = edge_pair();
            let mut sink = Vec::new();
            for round in 0..3u8 {
                peer.write_all(&[b'a' + round; 100]).unwrap();
                assert_eq!(events(&epoll), 1, "round {round}: new data, one event");
                drain_ok(b.as_fd(), 7, &mut sink);
                assert_eq!(events(&epoll), 0, "round {round}: drained, no event");
            }
            sink
        });
        let expected = [[b'a'; 100], [b'b'; 100], [b'c'; 100]].concat();
        assert!(
            total == expected,
            "three rounds of 100 bytes (a's, b's, c's) should give 300 bytes in order; got {} \
             bytes: {:?}",
            total.len(),
            text(&total)
        );
    }

    #[test]
    fn a_read_error_is_returned() {
        let (drained, sink) = within(LIMIT, "drain to return the reset", || {
            let (_epoll, peer, b) = edge_pair();
            // The peer closes with data of ours unread: the kernel resets
            // the connection, and after the data a read fails with
            // ECONNRESET.
            (&b).write_all(b"never read").unwrap();
            (&peer).write_all(b"data").unwrap();
            drop(peer);
            let mut sink = Vec::new();
            (drain(b.as_fd(), 16, &mut sink), sink)
        });
        assert!(
            sink == b"data",
            "the data before the reset must be kept: expected \"data\", got {:?}",
            text(&sink)
        );
        assert_eq!(
            drained,
            Err(Errno::ECONNRESET),
            "after the data, read failed with ECONNRESET (the peer closed with data unread). \
             Only EAGAIN means 'empty for now': return any other error"
        );
    }
}
