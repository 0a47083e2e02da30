//! # Chapter 07, exercise 1: read until EAGAIN
//!
//! Read first: the book's chapter 07 ("Partial read" and "Drain until
//! EAGAIN"), and in [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)
//! the suggested way to use EPOLLET: "with nonblocking file descriptors;
//! and by waiting for an event only after read(2) or write(2) return
//! EAGAIN". Run `cargo run -p ch07-level-vs-edge -- partial-read --mode edge`.
//!
//! Under EPOLLET the kernel says "readable" once per arrival of new data.
//! Whatever you leave unread gets no second event: the connection stalls
//! (nothing is lost, the bytes wait in the kernel). So after an event, read
//! until the kernel says EAGAIN.
//!
//! Write [`drain`]: read from the non-blocking `fd`, at most `chunk` bytes
//! per `read`, appending everything to `sink`, until EAGAIN or end of file.
//! Retry EINTR. Return how many bytes were read and whether end of file
//! (a read that returned 0) was seen.
//!
//! Check with `cargo lab check ch07_drain`.

use std::os::fd::BorrowedFd;

use nix::errno::Errno;

/// What [`drain`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// How many bytes were read (and appended to the sink).
    pub bytes: usize,
    /// The peer closed its side: a read returned 0.
    pub eof: bool,
}

/// Reads `fd` until EAGAIN or end of file, `chunk` bytes at a time.
pub fn drain(fd: BorrowedFd<'_>, chunk: usize, sink: &mut Vec<u8>) -> nix::Result<Drained> {
    let mut buf = vec![0u8; chunk];
    let mut bytes = 0;
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return Ok(Drained { bytes, eof: true }),
            Ok(n) => {
                bytes += n;
                sink.extend_from_slice(&buf[..n]);
            }
            Err(Errno::EAGAIN) => return Ok(Drained { bytes, eof: false }),
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

    const LIMIT: Duration = Duration::from_secs(5);

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

    #[test]
    fn reads_everything_not_just_one_chunk() {
        let got = within(
            LIMIT,
            "drain to return after reading 10 bytes, 4 at a time",
            || {
                let (epoll, mut peer, b) = edge_pair();
                peer.write_all(b"0123456789").unwrap();
                assert_eq!(events(&epoll), 1);
                let mut sink = Vec::new();
                let drained = drain(b.as_fd(), 4, &mut sink).unwrap();
                (drained, sink, events(&epoll))
            },
        );
        let (drained, sink, events_after) = got;
        assert_eq!(
            sink,
            b"0123456789",
            "the peer wrote 10 bytes and you read {} of them ({:?}). With EPOLLET there \
             will be no second event for the rest: read again and again until read \
             fails with EAGAIN",
            sink.len(),
            String::from_utf8_lossy(&sink)
        );
        assert_eq!(
            drained,
            Drained {
                bytes: 10,
                eof: false
            }
        );
        assert_eq!(events_after, 0, "drained: nothing more to report");
    }

    #[test]
    fn eagain_is_not_an_error_and_empty_is_zero_bytes() {
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
                eof: false
            }),
            "EAGAIN means 'empty for now': the loop is done, it is not an error"
        );
        assert!(sink.is_empty());
    }

    #[test]
    fn end_of_file_is_reported_after_the_last_data() {
        let (drained, sink) = within(LIMIT, "drain to stop at end of file", || {
            let (_epoll, mut peer, b) = edge_pair();
            peer.write_all(b"bye").unwrap();
            drop(peer);
            let mut sink = Vec::new();
            (drain(b.as_fd(), 2, &mut sink).unwrap(), sink)
        });
        assert_eq!(sink, b"bye", "the data before end of file must be kept");
        assert_eq!(
            drained,
            Drained {
                bytes: 3,
                eof: true
            },
            "read returned 0 after the data: that is end of file (eof: true); stop there, \
             reading again would return 0 forever"
        );
    }

    #[test]
    fn each_new_arrival_is_read_after_its_event() {
        let total = within(LIMIT, "three rounds of write, event, drain", || {
            let (epoll, mut peer, b) = edge_pair();
            let mut sink = Vec::new();
            for round in 0..3u8 {
                peer.write_all(&[round; 100]).unwrap();
                assert_eq!(events(&epoll), 1, "round {round}: new data, one event");
                drain(b.as_fd(), 7, &mut sink).unwrap();
                assert_eq!(events(&epoll), 0, "round {round}: drained, no event");
            }
            sink
        });
        assert_eq!(total.len(), 300, "every byte of three rounds, in order");
        assert!(total[..100].iter().all(|&x| x == 0) && total[200..].iter().all(|&x| x == 2));
    }
}
