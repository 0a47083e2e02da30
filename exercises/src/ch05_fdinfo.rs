//! # Chapter 05, exercise 2: read the kernel's interest list
//!
//! Read first: the book's chapter 05
//! ("A window into the kernel: `/proc/self/fdinfo`"), and the
//! `/proc/pid/fdinfo` part of [proc_pid_fdinfo(5)](https://man7.org/linux/man-pages/man5/proc_pid_fdinfo.5.html)
//! ("For epoll file descriptors"). Run
//! `cargo run -p ch05-epoll-api -- interest-list` to see it change.
//!
//! For an epoll descriptor, `/proc/self/fdinfo/<epfd>` has one line per
//! registration, printed by the kernel's `ep_show_fdinfo` (fs/eventpoll.c):
//!
//! ```text
//! pos:    0
//! flags:  02000002
//! mnt_id: 15
//! ino:    1057
//! tfd:        5 events:       19 data:                7  pos:0 ino:3a sdev:8
//! ```
//!
//! Write [`parse_interest_list`]: keep only the `tfd:` lines, in the order
//! they come, and read the descriptor number (decimal), the event mask (hex,
//! 32 bits) and the data (hex, 64 bits), both without a `0x`. A `tfd:` line
//! that does not parse is skipped. The tests run it on real fdinfo text they
//! produce.
//!
//! Check with `cargo lab check ch05_fdinfo`.

use std::os::fd::RawFd;

/// One registration, as the kernel holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Registration {
    /// The registered descriptor (`tfd:`, decimal).
    pub fd: RawFd,
    /// The interest mask the kernel stores (`events:`, hex).
    pub events: u32,
    /// The `data` given at ADD or MOD (`data:`, hex).
    pub data: u64,
}

/// Parses the text of `/proc/self/fdinfo/<epfd>` into its registrations,
/// in the order the kernel printed them. Lines that are not `tfd:` lines are
/// skipped; a `tfd:` line that does not parse is skipped too.
pub fn parse_interest_list(fdinfo: &str) -> Vec<Registration> {
    fdinfo.lines().filter_map(parse_line).collect()
}

/// `tfd: <fd> events: <hex> data: <hex> ...` -> a [`Registration`].
fn parse_line(line: &str) -> Option<Registration> {
    // TODO: split the line into words. A registration line reads
    // `tfd: FD events: HEX data: HEX ...`: check each label, parse FD as
    // decimal and the two others with `u32::from_str_radix(.., 16)` /
    // `u64::from_str_radix(.., 16)`. Return None for any other line.
    todo!("ch05: parse one fdinfo line")
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// Parsing takes microseconds; this only stops a stuck test.
    const LIMIT: Duration = Duration::from_secs(2);

    fn fdinfo_of(epoll: &Epoll) -> String {
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", epoll.0.as_raw_fd())).unwrap()
    }

    /// A copy of `fd` under a number of at least 100, whose decimal and hex
    /// spellings differ.
    fn high_numbered_copy(fd: impl AsFd) -> OwnedFd {
        let number = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(100)).unwrap();
        // SAFETY: fcntl just created this descriptor, and nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(number) }
    }

    const IN: u32 = EpollFlags::EPOLLIN.bits() as u32;
    const OUT: u32 = EpollFlags::EPOLLOUT.bits() as u32;
    const ET: u32 = EpollFlags::EPOLLET.bits() as u32;
    const ERR_HUP: u32 = (EpollFlags::EPOLLERR.bits() | EpollFlags::EPOLLHUP.bits()) as u32;

    #[test]
    fn an_empty_instance_has_no_registrations() {
        let (parsed, text) = within(LIMIT, "parse_interest_list to return", || {
            let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
            let text = fdinfo_of(&epoll);
            (parse_interest_list(&text), text)
        });
        assert_eq!(
            parsed,
            vec![],
            "an epoll instance with nothing registered has no tfd: lines; \
             skip the pos:/flags:/mnt_id:/ino: lines. The text was:\n{text}"
        );
    }

    #[test]
    fn reads_fd_events_and_data_of_real_registrations() {
        let (mut parsed, mut expected, text) =
            within(LIMIT, "parse_interest_list to return", || {
                let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
                let (_peer_a, a) = UnixStream::pair().unwrap();
                let (_peer_b, b) = UnixStream::pair().unwrap();
                let (_peer_c, c) = UnixStream::pair().unwrap();
                let c = high_numbered_copy(c);
                // Data values whose hex and decimal spellings differ; the
                // largest data there is; the edge-triggered bit, the highest
                // bit of the mask.
                epoll
                    .add(a.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 26))
                    .unwrap();
                epoll
                    .add(
                        b.as_fd(),
                        EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT, 0xbeef),
                    )
                    .unwrap();
                epoll
                    .add(
                        c.as_fd(),
                        EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, u64::MAX),
                    )
                    .unwrap();
                let text = fdinfo_of(&epoll);
                let expected = vec![
                    Registration {
                        fd: a.as_raw_fd(),
                        events: IN | ERR_HUP,
                        data: 26,
                    },
                    Registration {
                        fd: b.as_raw_fd(),
                        events: IN | OUT | ERR_HUP,
                        data: 0xbeef,
                    },
                    Registration {
                        fd: c.as_raw_fd(),
                        events: IN | ERR_HUP | ET,
                        data: u64::MAX,
                    },
                ];
                (parse_interest_list(&text), expected, text)
            });
        // The kernel prints in its tree's order (by file address), not in
        // the order of registration: compare sorted.
        parsed.sort();
        expected.sort();
        assert_eq!(
            parsed, expected,
            "the fd is printed in decimal (here one above 100), events and data in hex without \
             0x (EPOLLIN|EPOLLERR|EPOLLHUP is `19`; with EPOLLET, the top bit of a u32, \
             `80000019`; the largest data is 16 f's, a u64). The kernel adds EPOLLERR|EPOLLHUP \
             itself. The text was:\n{text}"
        );
    }

    #[test]
    fn sees_mod_and_del() {
        let (after_mod, after_del, text) = within(LIMIT, "parse_interest_list to return", || {
            let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
            let (_peer, a) = UnixStream::pair().unwrap();
            epoll
                .add(a.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 1))
                .unwrap();
            epoll
                .modify(
                    a.as_fd(),
                    &mut EpollEvent::new(EpollFlags::EPOLLOUT, 0xffff_ffff_ffff),
                )
                .unwrap();
            let text = fdinfo_of(&epoll);
            let after_mod = (parse_interest_list(&text), a.as_raw_fd());
            epoll.delete(a.as_fd()).unwrap();
            (after_mod, parse_interest_list(&fdinfo_of(&epoll)), text)
        });
        let (parsed, fd) = after_mod;
        assert_eq!(
            parsed,
            vec![Registration {
                fd,
                events: OUT | ERR_HUP,
                data: 0xffff_ffff_ffff
            }],
            "after MOD the line shows the new mask and data (data is 64 bits). The text \
             was:\n{text}"
        );
        assert_eq!(after_del, vec![], "after DEL the line is gone");
    }

    #[test]
    fn keeps_the_kernels_order_and_skips_lines_that_are_not_registrations() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n\
                    tfd:       12 events:       1d data:                0  pos:0 ino:3a sdev:8\n\
                    tfd: garbage\n\
                    tfd:        9 events:        4 data:               ff  pos:0 ino:3b sdev:8\n";
        let parsed = within(LIMIT, "parse_interest_list to return", move || {
            parse_interest_list(text)
        });
        assert_eq!(
            parsed,
            vec![
                Registration {
                    fd: 12,
                    events: 0x1d,
                    data: 0
                },
                Registration {
                    fd: 9,
                    events: 0x4,
                    data: 0xff
                },
            ],
            "keep every well-formed tfd: line, in the order of the text (skip a bad line and \
             go on with the next); the fd is decimal, events and data hex. The text \
             was:\n{text}"
        );
    }
}
