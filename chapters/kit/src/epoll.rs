//! Traced epoll calls: `epoll_create1`, `epoll_ctl`, `epoll_wait`, and a
//! window into the kernel's interest list through `/proc/self/fdinfo`.
//!
//! Like the other wrappers in [`crate::trace`], each makes the real call and
//! prints one line from the real arguments and result:
//!
//! ```text
//! epoll_ctl(ep, ADD, conn, EPOLLIN|EPOLLET, data=conn) -> 0
//! epoll_wait(ep, max=8, timeout=0) -> 1: [conn: EPOLLIN]
//! ```
//!
//! Events are shown by the name of their `data` token ([`crate::names::name_token`]),
//! sorted by name within one wait; flags always in the same order.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::names::{name, name_of, token_name};
use crate::trace::{emit, errno, result, timeout, view};

/// The three `epoll_ctl` operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Mod,
    Del,
}

impl Op {
    /// `ADD`, `MOD` or `DEL`, as transcripts print it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Mod => "MOD",
            Op::Del => "DEL",
        }
    }

    /// `EPOLL_CTL_ADD`, `EPOLL_CTL_MOD` or `EPOLL_CTL_DEL`, for a raw call.
    pub fn code(self) -> i32 {
        match self {
            Op::Add => nix::libc::EPOLL_CTL_ADD,
            Op::Mod => nix::libc::EPOLL_CTL_MOD,
            Op::Del => nix::libc::EPOLL_CTL_DEL,
        }
    }
}

/// Epoll flags in one fixed order, `EPOLLIN|EPOLLOUT|EPOLLET`, or `0`.
/// Bits nix has no name for are shown in hex.
pub fn epoll_flags(flags: EpollFlags) -> String {
    const ORDER: [(EpollFlags, &str); 15] = [
        (EpollFlags::EPOLLIN, "EPOLLIN"),
        (EpollFlags::EPOLLPRI, "EPOLLPRI"),
        (EpollFlags::EPOLLOUT, "EPOLLOUT"),
        (EpollFlags::EPOLLRDNORM, "EPOLLRDNORM"),
        (EpollFlags::EPOLLRDBAND, "EPOLLRDBAND"),
        (EpollFlags::EPOLLWRNORM, "EPOLLWRNORM"),
        (EpollFlags::EPOLLWRBAND, "EPOLLWRBAND"),
        (EpollFlags::EPOLLMSG, "EPOLLMSG"),
        (EpollFlags::EPOLLERR, "EPOLLERR"),
        (EpollFlags::EPOLLHUP, "EPOLLHUP"),
        (EpollFlags::EPOLLRDHUP, "EPOLLRDHUP"),
        (EpollFlags::EPOLLEXCLUSIVE, "EPOLLEXCLUSIVE"),
        (EpollFlags::EPOLLWAKEUP, "EPOLLWAKEUP"),
        (EpollFlags::EPOLLONESHOT, "EPOLLONESHOT"),
        (EpollFlags::EPOLLET, "EPOLLET"),
    ];
    let mut parts: Vec<String> = ORDER
        .iter()
        .filter(|(flag, _)| flags.contains(*flag))
        .map(|(_, name)| name.to_string())
        .collect();
    let known = ORDER.iter().fold(0, |acc, (f, _)| acc | f.bits());
    let unknown = flags.bits() & !known;
    if unknown != 0 {
        parts.push(format!("{unknown:#x}"));
    }
    if parts.is_empty() {
        "0".to_string()
    } else {
        parts.join("|")
    }
}

/// [epoll_create1(2)](https://man7.org/linux/man-pages/man2/epoll_create1.2.html):
/// `epoll_create1(EPOLL_CLOEXEC) -> ep`. Any flag but `EPOLL_CLOEXEC` is EINVAL.
pub fn create1(flags: EpollCreateFlags, ep_name: &str) -> nix::Result<Epoll> {
    let r = Epoll::new(flags);
    if let Ok(ep) = &r {
        name(&ep.0, ep_name);
    }
    emit("epoll_create1", || {
        let shown_flags = if flags == EpollCreateFlags::EPOLL_CLOEXEC {
            "EPOLL_CLOEXEC".to_string()
        } else if flags.is_empty() {
            "0".to_string()
        } else {
            format!("{:#x}", flags.bits())
        };
        let shown = result(&r, |ep| name_of(ep.0.as_raw_fd()));
        format!("epoll_create1({shown_flags}) -> {shown}")
    });
    r
}

/// [epoll_create(2)](https://man7.org/linux/man-pages/man2/epoll_create.2.html),
/// the original call: `epoll_create(1000) -> ep`. The kernel checks only
/// that `size > 0` (else EINVAL) and then builds exactly what
/// `epoll_create1(0)` builds (`do_epoll_create` in fs/eventpoll.c). On
/// architectures without this system call (arm64, riscv64), the C library
/// makes the same `size` check itself and calls `epoll_create1(0)`.
pub fn create(size: i32, ep_name: &str) -> nix::Result<Epoll> {
    // SAFETY: epoll_create takes a plain integer and returns a new
    // descriptor or -1; no memory is passed.
    let fd = unsafe { nix::libc::epoll_create(size) };
    let r = Errno::result(fd).map(|fd| {
        // SAFETY: epoll_create returned a new descriptor that nobody else owns.
        Epoll(unsafe { OwnedFd::from_raw_fd(fd) })
    });
    if let Ok(ep) = &r {
        name(&ep.0, ep_name);
    }
    emit("epoll_create", || {
        let shown = result(&r, |ep| name_of(ep.0.as_raw_fd()));
        format!("epoll_create({size}) -> {shown}")
    });
    r
}

/// [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html):
/// `epoll_ctl(ep, ADD, conn, EPOLLIN, data=conn) -> 0`.
///
/// `fd` is a bare number on purpose: the errors are the lesson, and some of
/// them (EBADF after close) need a number that is no longer open. `data` is
/// the token that comes back in every event for this registration.
pub fn ctl(ep: impl AsFd, op: Op, fd: RawFd, flags: EpollFlags, data: u64) -> nix::Result<()> {
    let mut event = EpollEvent::new(flags, data);
    let event_ptr: *mut EpollEvent = &mut event;
    // SAFETY: epoll_ctl reads one `struct epoll_event` from a pointer that is
    // valid for the whole call (EpollEvent is repr(transparent) over it);
    // the descriptor numbers are plain integers the kernel validates itself.
    let rc = unsafe {
        nix::libc::epoll_ctl(
            ep.as_fd().as_raw_fd(),
            op.code(),
            fd,
            event_ptr.cast::<nix::libc::epoll_event>(),
        )
    };
    let r = Errno::result(rc).map(drop);
    emit("epoll_ctl", || {
        let shown = result(&r, |_| "0".to_string());
        let what = match op {
            // DEL ignores the event argument (since Linux 2.6.9).
            Op::Del => String::new(),
            _ => format!(", {}, data={}", epoll_flags(flags), token_name(data)),
        };
        format!(
            "epoll_ctl({}, {}, {}{what}) -> {shown}",
            name_of(ep.as_fd().as_raw_fd()),
            op.name(),
            name_of(fd)
        )
    });
    r
}

/// [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html)
/// with room for `events.len()` events (`maxevents`):
/// `epoll_wait(ep, max=8, timeout=0) -> 2: [a: EPOLLIN, b: EPOLLIN|EPOLLHUP]`.
/// `None` waits without a limit (timeout -1). The delivered events are the
/// first `n` of `events`, in the kernel's order; the line sorts them by name.
pub fn wait(ep: &Epoll, events: &mut [EpollEvent], wait: Option<Duration>) -> nix::Result<usize> {
    let limit = match wait {
        None => EpollTimeout::NONE,
        // Whole milliseconds, rounded UP: rounding 0.5 ms down to 0 would
        // turn a loop that means to sleep into one that spins.
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms)
                .ok()
                .and_then(|ms| EpollTimeout::try_from(ms).ok())
                .unwrap_or(EpollTimeout::MAX)
        }
    };
    let r = ep.wait(events, limit);
    emit("epoll_wait", || {
        let shown = result(&r, |&n| {
            let mut ready: Vec<String> = events[..n]
                .iter()
                .map(|e| format!("{}: {}", token_name(e.data()), epoll_flags(e.events())))
                .collect();
            ready.sort();
            format!("{n}: [{}]", ready.join(", "))
        });
        let shown_timeout = match wait {
            None => "-1".to_string(),
            some => timeout(some),
        };
        format!(
            "epoll_wait({}, max={}, timeout={shown_timeout}) -> {shown}",
            name_of(ep.0.as_raw_fd()),
            events.len()
        )
    });
    r
}

/// One line of `/proc/self/fdinfo/<epfd>`: one registration in the kernel's
/// interest list (its red-black tree), as `fs/eventpoll.c`
/// `ep_show_fdinfo` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The registered descriptor number (`tfd:`).
    pub fd: RawFd,
    /// The interest mask the kernel holds (`events:`), including the bits it
    /// adds itself (EPOLLERR|EPOLLHUP) and its private ones.
    pub events: u32,
    /// The `data` given at ADD/MOD (`data:`).
    pub data: u64,
}

/// Reads the interest list of `ep` from `/proc/self/fdinfo/<epfd>`, in the
/// kernel's tree order: by `struct file` address, then fd number (not the
/// order of registration, and not the same from one run to the next).
pub fn interest_list(ep: &Epoll) -> std::io::Result<Vec<Registration>> {
    let path = format!("/proc/self/fdinfo/{}", ep.0.as_raw_fd());
    let text = std::fs::read_to_string(path)?;
    Ok(parse_fdinfo(&text))
}

/// Parses the `tfd:` lines of an epoll fdinfo file:
/// `tfd:        5 events:       19 data:                5  pos:0 ino:... sdev:...`.
/// Numbers after `events:` and `data:` are hex; other lines are skipped.
pub fn parse_fdinfo(text: &str) -> Vec<Registration> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let mut field = |label: &str| {
                if words.next()? != label {
                    return None;
                }
                words.next()
            };
            let fd = field("tfd:")?.parse().ok()?;
            let events = u32::from_str_radix(field("events:")?, 16).ok()?;
            let data = u64::from_str_radix(field("data:")?, 16).ok()?;
            Some(Registration { fd, events, data })
        })
        .collect()
}

/// Prints the interest list as the kernel holds it, sorted by name:
/// `[fdinfo ep] => [conn: EPOLLIN|EPOLLERR|EPOLLHUP data=conn]` (a view
/// read from `/proc/self/fdinfo`, not one system call, so no `->`).
pub fn show_interest_list(ep: &Epoll) -> std::io::Result<Vec<Registration>> {
    let r = interest_list(ep);
    view(
        "fdinfo",
        &format!("fdinfo {}", name_of(ep.0.as_raw_fd())),
        || {
            let shown = match &r {
                Ok(list) => {
                    let mut entries: Vec<String> = list
                        .iter()
                        .map(|reg| {
                            format!(
                                "{}: {} data={}",
                                name_of(reg.fd),
                                epoll_flags(EpollFlags::from_bits_retain(reg.events as i32)),
                                token_name(reg.data)
                            )
                        })
                        .collect();
                    // The kernel's tree is ordered by `struct file` address,
                    // which differs from run to run: sort by name to compare.
                    entries.sort();
                    format!("[{}]", entries.join(", "))
                }
                Err(e) => match e.raw_os_error() {
                    Some(code) => errno(Errno::from_raw(code)),
                    None => e.to_string(),
                },
            };
            format!("=> {shown}")
        },
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format_and_skips_other_lines() {
        let text = "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n\
                    tfd:        5 events:       19 data:                7  pos:0 ino:3a sdev:8\n\
                    tfd:       12 events: 4000001d data: ffffffffffffffff  pos:0 ino:3b sdev:8\n";
        assert_eq!(
            parse_fdinfo(text),
            vec![
                Registration {
                    fd: 5,
                    events: 0x19,
                    data: 7
                },
                Registration {
                    fd: 12,
                    events: 0x4000_001d,
                    data: u64::MAX
                },
            ]
        );
    }

    #[test]
    fn flags_print_in_fixed_order_with_unknown_bits_in_hex() {
        let flags = EpollFlags::EPOLLET | EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP;
        assert_eq!(epoll_flags(flags), "EPOLLIN|EPOLLHUP|EPOLLET");
        assert_eq!(epoll_flags(EpollFlags::empty()), "0");
        // 1 << 27 is the kernel's EPOLL_URING_WAKE, which nix does not name.
        assert_eq!(
            epoll_flags(EpollFlags::from_bits_retain(0x4000_0000 | 0x0800_0000)),
            "EPOLLONESHOT|0x8000000"
        );
    }
}
