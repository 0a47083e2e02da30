//! # Chapter 03, exercise 2: FD_SETSIZE, refused politely
//!
//! Read first: the book's chapter 03 ("FD_SETSIZE" and "Pitfalls"), and in
//! [select(2)](https://man7.org/linux/man-pages/man2/select.2.html) the
//! WARNING under DESCRIPTION ("select() can monitor only file descriptors
//! numbers that are less than FD_SETSIZE (1024)") and BUGS.
//! Run `cargo run -p ch03-select -- fd-setsize` to see the limit.
//!
//! An `fd_set` is a fixed array of FD_SETSIZE = 1024 bits. A server that
//! has more than about a thousand files open gets descriptor numbers that
//! have no bit. nix's `FdSet::insert` panics on such a number (setting the
//! bit would write past the end of the set), so code that may meet one must
//! check first and return an error. Write:
//! - [`fits_in_fd_set`]: does descriptor `fd` have a bit?
//! - [`read_set`]: the read set and `nfds` for a list of descriptors, or
//!   [`TooHigh`] (never a panic) if one of them has no bit.
//!
//! Check with `cargo lab check ch03_fd_limit`.

use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::sys::select::{FD_SETSIZE, FdSet};

/// A descriptor that an `fd_set` has no bit for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooHigh {
    /// The number that was refused.
    pub fd: RawFd,
}

impl fmt::Display for TooHigh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fd {} is not below FD_SETSIZE ({FD_SETSIZE}): select cannot watch it; use poll or epoll",
            self.fd
        )
    }
}

impl std::error::Error for TooHigh {}

/// What select needs for a read set: the bits, and how many of them to look at.
#[derive(Debug)]
pub struct WatchSet<'fd> {
    /// One bit per descriptor.
    pub set: FdSet<'fd>,
    /// The highest descriptor + 1 (0 for an empty list).
    pub nfds: i32,
}

/// Whether `fd` has a bit in an `fd_set`: `0 <= fd < FD_SETSIZE`.
pub fn fits_in_fd_set(fd: RawFd) -> bool {
    // TODO: compare with FD_SETSIZE (a usize); mind negative numbers.
    todo!("ch03: does fd have a bit in an fd_set?")
}

/// The read set and nfds for `fds`, or the first descriptor that does not
/// fit.
pub fn read_set<'fd>(fds: &[BorrowedFd<'fd>]) -> Result<WatchSet<'fd>, TooHigh> {
    // TODO: insert each descriptor into a new FdSet, and compute nfds.
    // Refuse a descriptor that has no bit with Err(TooHigh { fd }) - before
    // FdSet::insert sees it.
    todo!("ch03: build a read set, refusing fd >= FD_SETSIZE")
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, OwnedFd};
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use nix::fcntl::{FcntlArg, fcntl};
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use std::os::fd::FromRawFd;

    /// A pipe's read end duplicated onto the lowest free number >= `min`
    /// (fcntl F_DUPFD), after raising the soft RLIMIT_NOFILE if needed.
    fn descriptor_at_least(min: RawFd) -> (OwnedFd, OwnedFd) {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        let wanted = (min as u64) + 64;
        if soft < wanted {
            assert!(
                hard >= wanted,
                "the hard RLIMIT_NOFILE ({hard}) is below {wanted}"
            );
            setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).expect("setrlimit");
        }
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let high = fcntl(&r, FcntlArg::F_DUPFD(min)).expect("fcntl F_DUPFD");
        // SAFETY: F_DUPFD returned a new descriptor that nobody else owns.
        (unsafe { OwnedFd::from_raw_fd(high) }, w)
    }

    /// Runs `read_set` and turns a panic into a test failure that teaches.
    fn read_set_no_panic<'fd>(fds: &[BorrowedFd<'fd>]) -> Result<WatchSet<'fd>, TooHigh> {
        match catch_unwind(AssertUnwindSafe(|| read_set(fds))) {
            Ok(result) => result,
            Err(payload) => {
                let why = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                panic!(
                    "read_set panicked ({why}). nix's FdSet::insert asserts fd < FD_SETSIZE: \
                     check each number with fits_in_fd_set first and return \
                     Err(TooHigh {{ fd }}), so a server can close that one connection and go on"
                )
            }
        }
    }

    #[test]
    fn which_numbers_have_a_bit() {
        for (fd, fits) in [
            (0, true),
            (5, true),
            (1023, true),
            (1024, false),
            (5000, false),
            (-1, false),
        ] {
            assert_eq!(
                fits_in_fd_set(fd),
                fits,
                "fits_in_fd_set({fd}): an fd_set has bits 0 to FD_SETSIZE-1 = 1023, \
                 and no descriptor is negative"
            );
        }
    }

    #[test]
    fn nfds_is_the_highest_plus_one() {
        let (a, b) = nix::unistd::pipe().expect("pipe");
        let (c, _d) = nix::unistd::pipe().expect("pipe");
        let watch = read_set_no_panic(&[a.as_fd(), c.as_fd()]).expect("small descriptors fit");
        let highest = a.as_raw_fd().max(c.as_raw_fd());
        assert_eq!(
            watch.nfds,
            highest + 1,
            "nfds counts bits: to watch fd {highest}, select must look at bits 0..={highest}, \
             so nfds = {}",
            highest + 1
        );
        assert!(watch.set.contains(a.as_fd()) && watch.set.contains(c.as_fd()));
        drop(b);
        let empty = read_set_no_panic(&[]).expect("an empty list");
        assert_eq!(empty.nfds, 0, "no descriptors: nfds = 0");
    }

    #[test]
    fn a_set_select_can_use() {
        let (r, w) = descriptor_at_least(1000);
        assert!(
            r.as_raw_fd() < 1024,
            "this test needs a free number in 1000..1024"
        );
        nix::unistd::write(&w, b"x").expect("write");
        let (quiet, _w2) = nix::unistd::pipe().expect("pipe");
        let mut watch = read_set_no_panic(&[quiet.as_fd(), r.as_fd()]).expect("fds below 1024 fit");
        let mut zero = nix::sys::time::TimeVal::new(0, 0);
        let n = nix::sys::select::select(watch.nfds, &mut watch.set, None, None, &mut zero)
            .expect("select");
        assert_eq!(
            n,
            1,
            "select with your set and nfds should find fd {} readable (it holds a byte)",
            r.as_raw_fd()
        );
        assert!(watch.set.contains(r.as_fd()));
    }

    #[test]
    fn descriptor_1024_is_refused_not_a_panic() {
        let (high, _w) = descriptor_at_least(1024);
        let (low, _w2) = nix::unistd::pipe().expect("pipe");
        let result = read_set_no_panic(&[low.as_fd(), high.as_fd()]);
        match result {
            Err(TooHigh { fd }) => assert_eq!(
                fd,
                high.as_raw_fd(),
                "TooHigh should name the descriptor that has no bit"
            ),
            Ok(watch) => panic!(
                "read_set accepted fd {} (nfds {}): an fd_set has no bit for it, so select \
                 could never watch it. Return Err(TooHigh {{ fd }})",
                high.as_raw_fd(),
                watch.nfds
            ),
        }
    }
}
