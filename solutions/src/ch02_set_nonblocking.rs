//! # Chapter 02, exercise 1: set O_NONBLOCK, and only O_NONBLOCK
//!
//! Read first: the book's chapter 02 ("Run it": `keep-other-flags`) and
//! "File status flags" in [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html):
//! `F_GETFL` returns the status flags of the open file description,
//! `F_SETFL` *replaces* them with its argument.
//!
//! Write [`set_nonblocking`] (turn `O_NONBLOCK` on) and [`set_blocking`]
//! (turn it off), each leaving every other flag, such as `O_APPEND`, as it
//! was, and each safe to call twice.
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
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

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

    #[test]
    fn a_read_on_an_empty_socket_returns_eagain() {
        let (_peer, conn) = UnixStream::pair().unwrap();
        set_nonblocking(&conn).unwrap();
        let result = within(
            Duration::from_secs(3),
            "read on an empty socket after set_nonblocking to return EAGAIN at once. \
             It is still asleep, so the socket is still blocking: O_NONBLOCK was not set.",
            move || nix::unistd::read(&conn, &mut [0u8; 16]),
        );
        assert_eq!(
            result,
            Err(Errno::EAGAIN),
            "a read on an empty non-blocking socket should fail with EAGAIN"
        );
    }

    #[test]
    fn keeps_o_append() {
        let file = file_with("ch02-keep-append", OFlag::O_APPEND);
        set_nonblocking(&file).unwrap();
        let flags = flags_of(&file);
        assert!(
            flags.contains(OFlag::O_NONBLOCK),
            "after set_nonblocking the file's flags lack O_NONBLOCK: {}",
            shown(flags)
        );
        assert!(
            flags.contains(OFlag::O_APPEND),
            "after set_nonblocking your fd lost O_APPEND ({}). F_SETFL replaces \
             all the status flags: read them with F_GETFL first and OR in O_NONBLOCK.",
            shown(flags)
        );
    }

    #[test]
    fn twice_is_still_nonblocking() {
        let (_peer, conn) = UnixStream::pair().unwrap();
        set_nonblocking(&conn).unwrap();
        set_nonblocking(&conn).unwrap();
        assert!(
            flags_of(&conn).contains(OFlag::O_NONBLOCK),
            "set_nonblocking twice turned O_NONBLOCK off again: it toggles the flag \
             (XOR, ^) instead of setting it (OR, |)"
        );
    }

    #[test]
    fn set_blocking_clears_only_o_nonblocking() {
        let file = file_with("ch02-clear-only", OFlag::O_APPEND | OFlag::O_NONBLOCK);
        set_blocking(&file).unwrap();
        let flags = flags_of(&file);
        assert!(
            !flags.contains(OFlag::O_NONBLOCK),
            "after set_blocking the file still has O_NONBLOCK: {}",
            shown(flags)
        );
        assert!(
            flags.contains(OFlag::O_APPEND),
            "after set_blocking your fd lost O_APPEND ({}). Read the flags with \
             F_GETFL and remove only O_NONBLOCK: flags & !O_NONBLOCK (or flags.remove).",
            shown(flags)
        );
    }

    #[test]
    fn set_blocking_keeps_a_blocking_socket_blocking() {
        let (_peer, conn) = UnixStream::pair().unwrap();
        set_blocking(&conn).unwrap();
        assert!(
            !flags_of(&conn).contains(OFlag::O_NONBLOCK),
            "set_blocking on a blocking socket turned O_NONBLOCK on: it toggles the \
             flag (XOR, ^) instead of clearing it (& !O_NONBLOCK)"
        );
    }
}
