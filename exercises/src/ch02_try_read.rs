//! # Chapter 02, exercise 2: EAGAIN, data, or end of file
//!
//! Read first: the book's chapter 02 ("The kernel's view",
//! "A read on an empty socket" and "EAGAIN is not end of file").
//!
//! Then [read(2)](https://man7.org/linux/man-pages/man2/read.2.html):
//! RETURN VALUE ("On success, the number of bytes read ... zero indicates end
//! of file") and ERRORS (EAGAIN: "The file descriptor fd refers to a file
//! other than a socket and has been marked nonblocking (O_NONBLOCK), and the
//! read would block", and the same for sockets).
//!
//! A read of a non-blocking socket has three ordinary answers: some bytes,
//! "nothing yet" (EAGAIN), and "nothing ever again" (0, end of file). Write
//! [`try_read`], which makes one read and tells them apart with
//! [`ReadOutcome`]: it takes what fits in `buf` and leaves the rest queued
//! for the next call. Any other error is returned as an error.
//!
//! Check with `cargo lab check ch02_try_read`.

use std::os::fd::AsFd;

use nix::errno::Errno;

/// What one read of a non-blocking descriptor found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes (never 0) are now at the front of the buffer.
    Data(usize),
    /// Nothing to read yet (EAGAIN): the peer may still send.
    WouldBlock,
    /// End of file: the peer closed or shut down its side.
    Closed,
}

/// Reads once from the non-blocking `fd` into `buf` (which is not empty).
pub fn try_read(fd: impl AsFd, buf: &mut [u8]) -> nix::Result<ReadOutcome> {
    // TODO: call `nix::unistd::read(&fd, buf)` and match its result: 0,
    // n > 0, Err(Errno::EAGAIN), and any other error.
    todo!("ch02: tell data, EAGAIN and end of file apart")
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::trace::bytes;
    use lab_kit::watchdog::within;
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::io::Write;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// One read of a non-blocking socket takes microseconds.
    const LIMIT: Duration = Duration::from_secs(2);

    const AT_ONCE: &str = "try_read on a non-blocking socket to return at once. Still \
                           running means it loops waiting for data, or it made the \
                           socket blocking. One read, whatever it returns: EAGAIN is an \
                           answer (WouldBlock), not a reason to try again";

    /// A connected pair; `conn` (the second) is non-blocking.
    fn pair() -> (UnixStream, OwnedFd) {
        let (peer, conn) = UnixStream::pair().unwrap();
        conn.set_nonblocking(true).unwrap();
        (peer, conn.into())
    }

    /// One try_read on `fd` with a `size`-byte buffer: its result and the
    /// bytes it says it read (the front of the buffer).
    fn read_once(fd: &OwnedFd, size: usize) -> (nix::Result<ReadOutcome>, Vec<u8>) {
        let mut buf = vec![0u8; size];
        let result = try_read(fd, &mut buf);
        let n = match result {
            Ok(ReadOutcome::Data(n)) => n.min(size),
            _ => 0,
        };
        (result, buf[..n].to_vec())
    }

    #[test]
    fn an_empty_socket_would_block() {
        let result = within(LIMIT, AT_ONCE, || {
            let (_peer, conn) = pair();
            read_once(&conn, 64).0
        });
        match result {
            Ok(ReadOutcome::WouldBlock) => {}
            Err(Errno::EAGAIN) => panic!(
                "try_read returned Err(EAGAIN). EAGAIN is not an error: it means \"no \
                 data yet, try again later\". Map it to ReadOutcome::WouldBlock."
            ),
            Ok(ReadOutcome::Closed) => panic!(
                "try_read said Closed on an empty socket whose peer is still connected. \
                 EAGAIN is not end of file: end of file is read returning 0. EAGAIN is \
                 ReadOutcome::WouldBlock."
            ),
            other => panic!("an empty socket: expected Ok(WouldBlock), got {other:?}"),
        }
    }

    #[test]
    fn data_is_data() {
        let (result, got) = within(LIMIT, AT_ONCE, || {
            let (mut peer, conn) = pair();
            peer.write_all(b"hello").unwrap();
            read_once(&conn, 64)
        });
        assert_eq!(
            result,
            Ok(ReadOutcome::Data(5)),
            "the peer sent \"hello\" and the buffer holds 64 bytes: expected Data(5), \
             the count read(2) returned (not the buffer's size)"
        );
        assert!(
            got == b"hello",
            "the peer sent \"hello\" but the front of the buffer holds {}",
            bytes(&got)
        );
    }

    #[test]
    fn a_closed_peer_is_closed() {
        let result = within(LIMIT, AT_ONCE, || {
            let (peer, conn) = pair();
            drop(peer);
            read_once(&conn, 64).0
        });
        match result {
            Ok(ReadOutcome::Closed) => {}
            Ok(ReadOutcome::Data(0)) => panic!(
                "try_read returned Data(0): read(2) returning 0 means end of file (the \
                 peer closed). Map 0 to ReadOutcome::Closed; Data is never empty."
            ),
            Ok(ReadOutcome::WouldBlock) => panic!(
                "try_read said WouldBlock after the peer closed. read(2) returned 0, which \
                 is end of file, not \"nothing yet\": a loop waiting for more would wait \
                 forever. Map 0 to ReadOutcome::Closed."
            ),
            other => panic!("the peer closed: expected Ok(Closed), got {other:?}"),
        }
    }

    #[test]
    fn queued_bytes_come_before_closed() {
        let outcomes = within(LIMIT, AT_ONCE, || {
            let (mut peer, conn) = pair();
            peer.write_all(b"bye").unwrap();
            drop(peer);
            [
                read_once(&conn, 64),
                read_once(&conn, 64),
                read_once(&conn, 64),
            ]
        });
        let [(first, got), (second, _), (third, _)] = outcomes;
        assert!(
            first == Ok(ReadOutcome::Data(3)) && got == b"bye",
            "the peer wrote \"bye\" and closed: the bytes come first, so the first \
             try_read should give Data(3) with \"bye\"; it gave {first:?} with {}",
            bytes(&got)
        );
        assert_eq!(second, Ok(ReadOutcome::Closed), "then end of file");
        assert_eq!(third, Ok(ReadOutcome::Closed), "and end of file again");
    }

    #[test]
    fn reads_once_what_fits_in_the_buffer() {
        let outcomes = within(LIMIT, AT_ONCE, || {
            let (mut peer, conn) = pair();
            peer.write_all(b"0123456789").unwrap();
            [
                read_once(&conn, 4),
                read_once(&conn, 4),
                read_once(&conn, 4),
            ]
        });
        let expected = [
            (Ok(ReadOutcome::Data(4)), &b"0123"[..]),
            (Ok(ReadOutcome::Data(4)), &b"4567"[..]),
            (Ok(ReadOutcome::Data(2)), &b"89"[..]),
        ];
        for (k, ((result, got), (want, want_bytes))) in outcomes.iter().zip(expected).enumerate() {
            assert!(
                *result == want && got == want_bytes,
                "the peer sent \"0123456789\" and try_read is called three times with a \
                 4-byte buffer. Call {}: expected {want:?} with {}, got {result:?} with {}. \
                 One try_read is one read: it takes what fits in the buffer and leaves the \
                 rest queued for the next call",
                k + 1,
                bytes(want_bytes),
                bytes(got)
            );
        }
    }

    #[test]
    fn other_errors_are_errors() {
        let result = within(LIMIT, AT_ONCE, || {
            // Reading the write end of a pipe fails with EBADF (read(2), ERRORS).
            let (_read_end, write_end) = nix::unistd::pipe().unwrap();
            let flags = OFlag::from_bits_retain(fcntl(&write_end, FcntlArg::F_GETFL).unwrap());
            fcntl(&write_end, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).unwrap();
            read_once(&write_end, 64).0
        });
        assert_eq!(
            result,
            Err(Errno::EBADF),
            "reading a pipe's write end fails with EBADF, a real error: only EAGAIN \
             means WouldBlock, and only 0 means Closed; return other errors as Err"
        );
    }
}
