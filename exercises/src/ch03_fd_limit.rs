//! # Chapter 03, exercise 2: FD_SETSIZE, refused politely
//!
//! Read first: the book's chapter 03 ("FD_SETSIZE: descriptor 1024 is refused, without a panic"
//! and "Pitfalls").
//!
//! Then, in [select(2)](https://man7.org/linux/man-pages/man2/select.2.html),
//! the WARNING under DESCRIPTION ("select() can monitor only file descriptors
//! numbers that are less than FD_SETSIZE (1024)") and BUGS.
//! Run `cargo run -p ch03-select -- fd-setsize` to see the limit.
//!
//! An `fd_set` is a fixed array of FD_SETSIZE = 1024 bits. A server that
//! has more than about a thousand files open gets descriptor numbers that
//! have no bit. nix's `FdSet::insert` panics on such a number (setting the
//! bit would write past the end of the set), so code that may meet one must
//! check first and return an error. Write:
//! - [`fits_in_fd_set`]: does descriptor `fd` have a bit?
//! - [`read_set`]: the read set and `nfds` (the highest descriptor + 1, 0
//!   for an empty list) for a list of descriptors in any order, or
//!   [`TooHigh`] (never a panic) naming the first descriptor in the list
//!   that has no bit.
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
            "fd {} is not below FD_SETSIZE ({FD_SETSIZE}): an fd_set has no bit for it; use poll or epoll",
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
    use std::time::Duration;

    use lab_kit::watchdog::within;
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use std::os::fd::FromRawFd;

    /// These functions make no system call: microseconds.
    const LIMIT: Duration = Duration::from_secs(2);

    const NO_LOOP: &str = "fits_in_fd_set and read_set to return at once: one pass over \
                           the list, no other loop";

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
        let cases = [
            (0, true),
            (5, true),
            (1023, true),
            (1024, false),
            (5000, false),
            (-1, false),
        ];
        let answers = within(LIMIT, NO_LOOP, move || {
            cases.map(|(fd, fits)| (fd, fits, fits_in_fd_set(fd)))
        });
        for (fd, fits, answer) in answers {
            assert_eq!(
                answer, fits,
                "fits_in_fd_set({fd}): an fd_set has bits 0 to FD_SETSIZE-1 = 1023, \
                 and no descriptor is negative"
            );
        }
    }

    #[test]
    fn nfds_is_the_highest_plus_one() {
        within(LIMIT, NO_LOOP, || {
            let (a, _wa) = nix::unistd::pipe().expect("pipe");
            let (c, _wc) = nix::unistd::pipe().expect("pipe");
            let (low, high) = if a.as_raw_fd() < c.as_raw_fd() {
                (a.as_fd(), c.as_fd())
            } else {
                (c.as_fd(), a.as_fd())
            };
            let (l, h) = (low.as_raw_fd(), high.as_raw_fd());
            // Both orders: the highest is not always the last.
            for (order, fds) in [("ascending", [low, high]), ("descending", [high, low])] {
                let watch = read_set_no_panic(&fds).expect("small descriptors fit");
                assert_eq!(
                    watch.nfds,
                    h + 1,
                    "read_set of fds {:?} ({order}): nfds counts bits, so to watch fd {h} \
                     select must look at bits 0..={h}: nfds = the highest + 1 = {}, \
                     whatever the order of the list",
                    fds.map(|fd| fd.as_raw_fd()),
                    h + 1
                );
                assert!(
                    watch.set.contains(low) && watch.set.contains(high),
                    "read_set of fds {l} and {h}: both should be in the set"
                );
            }
            let empty = read_set_no_panic(&[]).expect("an empty list");
            assert_eq!(empty.nfds, 0, "no descriptors: nfds = 0");
        });
    }

    #[test]
    fn a_set_select_can_use() {
        let (n, readable, r) = within(
            LIMIT,
            "select with your set and nfds, and a zero timeout, to return at once",
            || {
                let (r, w) = descriptor_at_least(1000);
                assert!(
                    r.as_raw_fd() < 1024,
                    "this test needs a free number in 1000..1024"
                );
                nix::unistd::write(&w, b"x").expect("write");
                let (quiet, _w2) = nix::unistd::pipe().expect("pipe");
                let mut watch =
                    read_set_no_panic(&[r.as_fd(), quiet.as_fd()]).expect("fds below 1024 fit");
                let mut zero = nix::sys::time::TimeVal::new(0, 0);
                let n = nix::sys::select::select(watch.nfds, &mut watch.set, None, None, &mut zero)
                    .expect("select");
                (n, watch.set.contains(r.as_fd()), r.as_raw_fd())
            },
        );
        assert!(
            n == 1 && readable,
            "select with your set and nfds should find fd {r} readable (it holds a byte); \
             it found {n} ready"
        );
    }

    #[test]
    fn descriptor_1024_is_refused_not_a_panic() {
        within(LIMIT, NO_LOOP, || {
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
                    "read_set accepted fd {} (nfds {}): an fd_set has no bit for it, so this \
                     set cannot hold it. Return Err(TooHigh {{ fd }})",
                    high.as_raw_fd(),
                    watch.nfds
                ),
            }
        });
    }

    #[test]
    fn the_first_descriptor_without_a_bit_is_named() {
        within(LIMIT, NO_LOOP, || {
            let (low, _w) = nix::unistd::pipe().expect("pipe");
            let (first, _w1) = descriptor_at_least(1024);
            let (second, _w2) = descriptor_at_least(first.as_raw_fd() + 1);
            let fds = [low.as_fd(), first.as_fd(), second.as_fd()];
            let numbers = fds.map(|fd| fd.as_raw_fd());
            match read_set_no_panic(&fds) {
                Err(TooHigh { fd }) => assert_eq!(
                    fd,
                    first.as_raw_fd(),
                    "read_set of fds {numbers:?}: two have no bit; TooHigh should name the \
                     first of them in the list, {}, and return as soon as it meets it",
                    first.as_raw_fd()
                ),
                Ok(watch) => panic!(
                    "read_set of fds {numbers:?} returned Ok (nfds {}): two of them have no \
                     bit. Return Err(TooHigh {{ fd }})",
                    watch.nfds
                ),
            }
        });
    }
}
