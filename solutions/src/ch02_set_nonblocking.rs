//! # Chapter 02, exercise 1: set O_NONBLOCK, and only O_NONBLOCK
//!
//! Read first: the book's chapter 02 ("The kernel's view" and "Keep the other flags").
//!
//! Then, in [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html),
//! the section on file status flags: `F_GETFL` returns the status flags of
//! the open file description, `F_SETFL` *replaces* them with its argument.
//!
//! Write [`set_nonblocking`] (turn `O_NONBLOCK` on) and [`set_blocking`]
//! (turn it off), each leaving every other flag, such as `O_APPEND`, as it
//! was, and each safe to call twice. Return fcntl's errors to the caller
//! (EBADF for a descriptor that is not open): don't unwrap them.
//!
//! Check with `cargo lab check ch02_set_nonblocking`.

use std::os::fd::AsFd;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// The status flags of `fd`'s open file description (`F_GETFL`).
fn status_flags(fd: impl AsFd) -> nix::Result<OFlag> {
    fcntl(fd, FcntlArg::F_GETFL).map(OFlag::from_bits_retain)
}

/// Turns `O_NONBLOCK` on for `fd`, keeping its other status flags.
pub fn set_nonblocking(fd: impl AsFd) -> nix::Result<()> {
    let flags = status_flags(&fd)?;
    fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// Turns `O_NONBLOCK` off for `fd`, keeping its other status flags.
pub fn set_blocking(fd: impl AsFd) -> nix::Result<()> {
    let flags = status_flags(&fd)?;
    fcntl(&fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)).map(drop)
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::errno::Errno;
    use nix::fcntl::{FcntlArg, fcntl};
    use std::fs::File;
    use std::os::fd::BorrowedFd;
    use std::os::unix::net::UnixStream;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::Duration;

    /// A correct answer takes two fcntl calls: microseconds.
    const LIMIT: Duration = Duration::from_secs(2);

    const SPIN: &str = "set_nonblocking or set_blocking to return: two fcntl calls, \
                        F_GETFL then F_SETFL, and no loop";

    fn flags_of(fd: impl AsFd) -> OFlag {
        OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).unwrap())
    }

    /// Flags as `O_RDWR|O_APPEND|O_NONBLOCK`.
    fn shown(flags: OFlag) -> String {
        lab_kit::trace::oflags(flags)
    }

    /// A new, unlinked regular file whose status flags are `flags`.
    fn file_with(name: &str, flags: OFlag) -> File {
        let file = lab_kit::fixtures::regular_file(name, b"").unwrap();
        fcntl(&file, FcntlArg::F_SETFL(flags)).unwrap();
        file
    }

    /// The message a panic carried.
    fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
        payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message")
    }

    #[test]
    fn a_read_on_an_empty_socket_returns_eagain() {
        let result = within(
            LIMIT,
            "read on an empty socket after set_nonblocking to return EAGAIN at once. \
             It is still asleep, so the socket is still blocking: O_NONBLOCK was not set \
             (or set_nonblocking itself does not return)",
            move || {
                let (_peer, conn) = UnixStream::pair().unwrap();
                set_nonblocking(&conn).unwrap();
                nix::unistd::read(&conn, &mut [0u8; 16])
            },
        );
        assert_eq!(
            result,
            Err(Errno::EAGAIN),
            "a read on an empty non-blocking socket should fail with EAGAIN"
        );
    }

    #[test]
    fn keeps_o_append() {
        let (before, after) = within(LIMIT, SPIN, || {
            let file = file_with("ch02-keep-append", OFlag::O_APPEND);
            let before = flags_of(&file);
            set_nonblocking(&file).unwrap();
            (before, flags_of(&file))
        });
        assert!(
            after.contains(OFlag::O_NONBLOCK),
            "after set_nonblocking the file's flags lack O_NONBLOCK: {}",
            shown(after)
        );
        assert!(
            after.contains(OFlag::O_APPEND),
            "after set_nonblocking your fd lost O_APPEND ({}). F_SETFL replaces \
             all the status flags: read them with F_GETFL first and OR in O_NONBLOCK.",
            shown(after)
        );
        assert_eq!(
            shown(after),
            shown(before | OFlag::O_NONBLOCK),
            "the flags were {} before set_nonblocking: only O_NONBLOCK should be added",
            shown(before)
        );
    }

    #[test]
    fn twice_is_still_nonblocking() {
        let (before, after) = within(LIMIT, SPIN, || {
            let file = file_with("ch02-twice", OFlag::O_APPEND);
            let before = flags_of(&file);
            set_nonblocking(&file).unwrap();
            set_nonblocking(&file).unwrap();
            (before, flags_of(&file))
        });
        assert!(
            after.contains(OFlag::O_NONBLOCK),
            "set_nonblocking twice turned O_NONBLOCK off again ({}): it toggles the flag \
             (XOR, ^) instead of setting it (OR, |)",
            shown(after)
        );
        assert_eq!(
            shown(after),
            shown(before | OFlag::O_NONBLOCK),
            "after set_nonblocking twice: only O_NONBLOCK should be added to {}",
            shown(before)
        );
    }

    #[test]
    fn set_blocking_clears_only_o_nonblocking() {
        let (before, after) = within(LIMIT, SPIN, || {
            let file = file_with("ch02-clear-only", OFlag::O_APPEND | OFlag::O_NONBLOCK);
            let before = flags_of(&file);
            set_blocking(&file).unwrap();
            (before, flags_of(&file))
        });
        assert!(
            !after.contains(OFlag::O_NONBLOCK),
            "after set_blocking the file still has O_NONBLOCK: {}",
            shown(after)
        );
        assert!(
            after.contains(OFlag::O_APPEND),
            "after set_blocking your fd lost O_APPEND ({}). Read the flags with \
             F_GETFL and remove only O_NONBLOCK: flags & !O_NONBLOCK (or flags.remove).",
            shown(after)
        );
        assert_eq!(
            shown(after),
            shown(before - OFlag::O_NONBLOCK),
            "the flags were {} before set_blocking: only O_NONBLOCK should go",
            shown(before)
        );
    }

    #[test]
    fn set_blocking_keeps_a_blocking_socket_blocking() {
        let (after_once, after_twice) = within(LIMIT, SPIN, || {
            let (_peer, conn) = UnixStream::pair().unwrap();
            set_blocking(&conn).unwrap();
            let once = flags_of(&conn);
            set_blocking(&conn).unwrap();
            (once, flags_of(&conn))
        });
        for (calls, after) in [("once", after_once), ("twice", after_twice)] {
            assert!(
                !after.contains(OFlag::O_NONBLOCK),
                "set_blocking ({calls}) on a blocking socket turned O_NONBLOCK on ({}): it \
                 toggles the flag (XOR, ^) instead of clearing it (& !O_NONBLOCK)",
                shown(after)
            );
        }
    }

    #[test]
    fn a_descriptor_that_is_not_open_is_an_error() {
        let (nonblocking, blocking) = within(LIMIT, SPIN, || {
            // Far above anything this process opens (and above its
            // RLIMIT_NOFILE): no open file has this number.
            // SAFETY: deliberately not an open descriptor, which is what is
            // being tested; fcntl only looks the number up.
            let not_open = unsafe { BorrowedFd::borrow_raw(1_000_000) };
            (
                catch_unwind(AssertUnwindSafe(|| set_nonblocking(not_open))),
                catch_unwind(AssertUnwindSafe(|| set_blocking(not_open))),
            )
        });
        for (name, outcome) in [("set_nonblocking", nonblocking), ("set_blocking", blocking)] {
            match outcome {
                Ok(result) => assert_eq!(
                    result,
                    Err(Errno::EBADF),
                    "{name} on a descriptor that is not open: fcntl fails with EBADF, and \
                     {name} should return that error (`?`), not hide it"
                ),
                Err(payload) => panic!(
                    "{name} panicked ({}) on a descriptor that is not open: return \
                     fcntl's error with `?` instead",
                    panic_message(payload.as_ref())
                ),
            }
        }
    }
}
