//! Traced system calls: the kernel speaks, not us.
//!
//! Each wrapper makes the real call, then prints one transcript line built
//! from the real arguments and the real result, for example
//! `read(conn, 64) -> EAGAIN (Resource temporarily unavailable)`.
//! A scenario never `println!`s what a call returned; it calls these.
//!
//! Printing is per thread and off until [`enable`] is called, so a scenario's
//! main thread can speak while helper threads (a peer, a server) stay quiet
//! and the transcript stays deterministic. Every wrapper also counts itself
//! ([`count_of`]), printing or not, so a chapter can show how many calls a
//! loop really made; [`quietly`] runs a noisy loop without printing it.
//!
//! The wrappers return exactly what nix returns; they never retry EINTR or
//! hide an error, because the lesson is often the error.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::select::FdSet;
use nix::sys::socket::Shutdown;
use nix::sys::time::{TimeVal, TimeValLike};

use crate::names::{name_of, number_of};

/// The calls an event loop makes over and over each have a counter of their
/// own: this is the counter's place. A server counts millions of them, so
/// finding the counter must cost nothing: [`emit`] is inlined into each
/// wrapper, where the name is a literal, and the compiler then picks the
/// counter at compile time. Other names are counted in a list.
#[inline]
fn busy_slot(call: &str) -> Option<usize> {
    match call {
        "read" => Some(0),
        "write" => Some(1),
        "epoll_wait" => Some(2),
        "epoll_ctl" => Some(3),
        "poll" => Some(4),
        "select" => Some(5),
        _ => None,
    }
}

thread_local! {
    static PRINTING: Cell<bool> = const { Cell::new(false) };
    /// The counts of the busy calls, in the order of [`busy_slot`].
    static BUSY_COUNTS: [Cell<u64>; 6] = const { [const { Cell::new(0) }; 6] };
    /// One `(call, count)` for every other name, in the order first seen.
    static OTHER_COUNTS: RefCell<Vec<(&'static str, u64)>> = const { RefCell::new(Vec::new()) };
}

/// From now on, traced calls made by *this thread* print their line.
pub fn enable() {
    PRINTING.set(true);
}

/// Whether traced calls made by this thread print their line now. Wrappers
/// use it to skip building text that nobody will see (a server's loop
/// runs its calls quietly, millions of times).
pub fn printing() -> bool {
    PRINTING.get()
}

/// Runs `f` with this thread's printing off (calls are still counted).
pub fn quietly<R>(f: impl FnOnce() -> R) -> R {
    let was = PRINTING.replace(false);
    let result = f();
    PRINTING.set(was);
    result
}

/// How many times this thread made the traced call `call` (e.g. `"read"`).
pub fn count_of(call: &str) -> u64 {
    match busy_slot(call) {
        Some(i) => BUSY_COUNTS.with(|counts| counts[i].get()),
        None => OTHER_COUNTS.with_borrow(|counts| {
            counts
                .iter()
                .find(|(name, _)| *name == call)
                .map_or(0, |(_, n)| *n)
        }),
    }
}

/// Sets all of this thread's call counts back to zero.
pub fn reset_counts() {
    BUSY_COUNTS.with(|counts| counts.iter().for_each(|c| c.set(0)));
    OTHER_COUNTS.with_borrow_mut(|counts| counts.clear());
}

/// Counts one `call` and, if this thread prints, prints the line `line()`
/// builds. Chapters use it to trace a call lab-kit does not wrap yet.
#[inline]
pub fn emit(call: &'static str, line: impl FnOnce() -> String) {
    match busy_slot(call) {
        Some(i) => BUSY_COUNTS.with(|counts| counts[i].set(counts[i].get() + 1)),
        None => OTHER_COUNTS.with_borrow_mut(|counts| {
            match counts.iter_mut().find(|(name, _)| *name == call) {
                Some((_, n)) => *n += 1,
                None => counts.push((call, 1)),
            }
        }),
    }
    if PRINTING.get() {
        println!("{}", line());
    }
}

/// Counts one `what` and, if this thread prints, prints a line that is
/// *not* one system call: the lab's own view of something (an fdinfo
/// listing, a count, a backend method, a helper that makes several calls).
/// Such lines look different on purpose: `[tag] body`, with `=>` where a
/// syscall line would have `->`, e.g. `[tally] reads that returned EAGAIN => 1000`.
/// A line with `->` is always exactly one real call.
pub fn view(what: &'static str, tag: &str, body: impl FnOnce() -> String) {
    emit(what, || format!("[{tag}] {}", body()));
}

/// Prints commentary: each line of `text` prefixed with `# `. Commentary
/// explains; it never states what a call returned (the traced line does).
pub fn note(text: &str) {
    if PRINTING.get() {
        for line in text.lines() {
            if line.is_empty() {
                println!("#");
            } else {
                println!("# {line}");
            }
        }
    }
}

/// Prints an empty line, to separate the steps of a scenario.
pub fn blank() {
    if PRINTING.get() {
        println!();
    }
}

// ---------------------------------------------------------------------------
// How values look in a transcript.

/// `EAGAIN (Resource temporarily unavailable)`: the name, then the C
/// library's text for it (strerror(3), what `perror` would print).
pub fn errno(e: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(e as i32).to_string();
    // std appends " (os error N)"; the number adds nothing to the name.
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    format!("{e:?} ({text})")
}

/// `ok(value)` for success, [`errno`] for failure.
pub fn result<T>(r: &nix::Result<T>, ok: impl FnOnce(&T) -> String) -> String {
    match r {
        Ok(value) => ok(value),
        Err(e) => errno(*e),
    }
}

/// Bytes as a quoted string with escapes; long buffers are shortened and
/// their length given, so a 16 KiB read is one readable line.
pub fn bytes(data: &[u8]) -> String {
    const SHOWN: usize = 24;
    let escaped: String = data
        .iter()
        .take(SHOWN)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if data.len() > SHOWN {
        format!("\"{escaped}\"... ({} bytes)", data.len())
    } else {
        format!("\"{escaped}\"")
    }
}

/// File status flags as `O_RDWR|O_NONBLOCK`: the access mode first, then the
/// other flags by name, then any bits nix has no name for, in hex.
pub fn oflags(flags: OFlag) -> String {
    let access = match flags & OFlag::O_ACCMODE {
        mode if mode == OFlag::O_WRONLY => "O_WRONLY",
        mode if mode == OFlag::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    };
    let mut parts = vec![access.to_string()];
    let mut rest = flags - OFlag::O_ACCMODE;
    // O_LARGEFILE is forced on by 64-bit kernels and is noise here; nix names
    // it 0 on x86-64, so mask its kernel value (0o100000) explicitly.
    rest = OFlag::from_bits_retain(rest.bits() & !0o100000);
    for (name, flag) in rest.iter_names() {
        // nix lists Linux's aliases first (O_NDELAY is O_NONBLOCK's number,
        // O_FSYNC and O_RSYNC are O_SYNC's): print the names fcntl(2) uses.
        let name = match name {
            "O_NDELAY" => "O_NONBLOCK",
            "O_FSYNC" | "O_RSYNC" => "O_SYNC",
            other => other,
        };
        parts.push(name.to_string());
        rest.remove(flag);
    }
    if !rest.is_empty() {
        parts.push(format!("{:#x}", rest.bits()));
    }
    parts.join("|")
}

/// Poll flags in one fixed order, `POLLIN|POLLHUP`, or `0` for none.
pub fn poll_flags(flags: PollFlags) -> String {
    const ORDER: [(PollFlags, &str); 10] = [
        (PollFlags::POLLIN, "POLLIN"),
        (PollFlags::POLLPRI, "POLLPRI"),
        (PollFlags::POLLOUT, "POLLOUT"),
        (PollFlags::POLLRDNORM, "POLLRDNORM"),
        (PollFlags::POLLRDBAND, "POLLRDBAND"),
        (PollFlags::POLLWRNORM, "POLLWRNORM"),
        (PollFlags::POLLWRBAND, "POLLWRBAND"),
        (PollFlags::POLLERR, "POLLERR"),
        (PollFlags::POLLHUP, "POLLHUP"),
        (PollFlags::POLLNVAL, "POLLNVAL"),
    ];
    let mut parts: Vec<String> = ORDER
        .iter()
        .filter(|(flag, _)| flags.contains(*flag))
        .map(|(_, name)| name.to_string())
        .collect();
    let known = ORDER
        .iter()
        .fold(PollFlags::empty(), |acc, (f, _)| acc | *f);
    let unknown = flags.bits() & !known.bits();
    if unknown != 0 {
        parts.push(format!("{unknown:#x}"));
    }
    if parts.is_empty() {
        "0".to_string()
    } else {
        parts.join("|")
    }
}

/// A timeout: `0`, `250ms`, `2s`, or `NULL` (block until something happens).
pub fn timeout(t: Option<Duration>) -> String {
    match t {
        None => "NULL".to_string(),
        Some(d) if d.is_zero() => "0".to_string(),
        Some(d) if d.subsec_millis() == 0 => format!("{}s", d.as_secs()),
        Some(d) => format!("{}ms", d.as_millis()),
    }
}

fn raw(fd: &impl AsFd) -> RawFd {
    fd.as_fd().as_raw_fd()
}

// ---------------------------------------------------------------------------
// The calls.

/// [read(2)](https://man7.org/linux/man-pages/man2/read.2.html):
/// `read(conn, 64) -> 5 "hello"`, `-> 0 (end of file)`, `-> EAGAIN (...)`.
pub fn read(fd: impl AsFd, buf: &mut [u8]) -> nix::Result<usize> {
    let r = nix::unistd::read(&fd, buf);
    emit("read", || {
        let shown = result(&r, |&n| match n {
            0 => "0 (end of file)".to_string(),
            n => format!("{n} {}", bytes(&buf[..n])),
        });
        format!("read({}, {}) -> {shown}", name_of(raw(&fd)), buf.len())
    });
    r
}

/// [write(2)](https://man7.org/linux/man-pages/man2/write.2.html):
/// `write(peer, "hello") -> 5`. A short count is a partial write.
pub fn write(fd: impl AsFd, data: &[u8]) -> nix::Result<usize> {
    let r = nix::unistd::write(&fd, data);
    emit("write", || {
        let shown = result(&r, |n| n.to_string());
        format!("write({}, {}) -> {shown}", name_of(raw(&fd)), bytes(data))
    });
    r
}

/// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html) `F_GETFL`:
/// `fcntl(conn, F_GETFL) -> O_RDWR`.
pub fn get_flags(fd: impl AsFd) -> nix::Result<OFlag> {
    let r = nix::fcntl::fcntl(&fd, FcntlArg::F_GETFL).map(OFlag::from_bits_retain);
    emit("fcntl", || {
        let shown = result(&r, |&flags| oflags(flags));
        format!("fcntl({}, F_GETFL) -> {shown}", name_of(raw(&fd)))
    });
    r
}

/// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html) `F_SETFL`:
/// `fcntl(conn, F_SETFL, O_RDWR|O_NONBLOCK) -> 0`. F_SETFL *replaces* the
/// status flags (only O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME and O_NONBLOCK
/// can change; the access mode is ignored).
pub fn set_flags(fd: impl AsFd, flags: OFlag) -> nix::Result<()> {
    let r = nix::fcntl::fcntl(&fd, FcntlArg::F_SETFL(flags)).map(drop);
    emit("fcntl", || {
        let shown = result(&r, |_| "0".to_string());
        format!(
            "fcntl({}, F_SETFL, {}) -> {shown}",
            name_of(raw(&fd)),
            oflags(flags)
        )
    });
    r
}

/// [accept(2)](https://man7.org/linux/man-pages/man2/accept.2.html): takes
/// one connection off the listener's queue and names it:
/// `accept(listener) -> conn-1`, or `-> EAGAIN (...)` on an empty queue of a
/// non-blocking listener.
pub fn accept(listener: impl AsFd, name: &str) -> nix::Result<OwnedFd> {
    let r = nix::sys::socket::accept(raw(&listener)).map(|fd| {
        // SAFETY: accept returned a new descriptor that nobody else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    if let Ok(conn) = &r {
        crate::names::name(conn, name);
    }
    emit("accept", || {
        let shown = result(&r, |conn| name_of(raw(conn)));
        format!("accept({}) -> {shown}", name_of(raw(&listener)))
    });
    r
}

/// [close(2)](https://man7.org/linux/man-pages/man2/close.2.html):
/// `close(conn-1) -> 0`. The name stays attached to the number until the
/// kernel hands the number out again, so a later call on the stale number
/// still reads `conn-1`.
pub fn close(fd: OwnedFd) -> nix::Result<()> {
    let number = fd.into_raw_fd();
    let r = nix::unistd::close(number);
    emit("close", || {
        let shown = result(&r, |_| "0".to_string());
        format!("close({}) -> {shown}", name_of(number))
    });
    r
}

/// [shutdown(2)](https://man7.org/linux/man-pages/man2/shutdown.2.html):
/// `shutdown(peer, SHUT_WR) -> 0`.
pub fn shutdown(fd: impl AsFd, how: Shutdown) -> nix::Result<()> {
    let r = nix::sys::socket::shutdown(raw(&fd), how);
    emit("shutdown", || {
        let how = match how {
            Shutdown::Read => "SHUT_RD",
            Shutdown::Write => "SHUT_WR",
            Shutdown::Both => "SHUT_RDWR",
        };
        let shown = result(&r, |_| "0".to_string());
        format!("shutdown({}, {how}) -> {shown}", name_of(raw(&fd)))
    });
    r
}

/// Names the descriptors in an fd_set: `{a, b}`, sorted by name.
fn fd_set_names(set: &Option<&mut FdSet>) -> String {
    match set {
        None => "NULL".to_string(),
        Some(set) => {
            let mut names: Vec<String> = set.fds(None).map(|fd| name_of(fd.as_raw_fd())).collect();
            names.sort();
            format!("{{{}}}", names.join(", "))
        }
    }
}

/// [select(2)](https://man7.org/linux/man-pages/man2/select.2.html) on a read
/// and a write set:
/// `select(nfds=base+3, read={a, b}, write={}, timeout=0) -> 1: read={a}, write={}`.
/// The sets are printed before the call (what you asked) and after (what the
/// kernel left in them: select overwrites its arguments).
pub fn select<'fd>(
    nfds: i32,
    mut read: Option<&mut FdSet<'fd>>,
    mut write: Option<&mut FdSet<'fd>>,
    wait: Option<Duration>,
) -> nix::Result<i32> {
    // What was asked, as text, before the kernel overwrites the sets; only
    // when it will be printed (a quiet loop does not pay for it).
    let asked = printing().then(|| {
        format!(
            "select(nfds={}, read={}, write={}, timeout={})",
            number_of(nfds),
            fd_set_names(&read),
            fd_set_names(&write),
            timeout(wait)
        )
    });
    let mut tv = wait.map(|d| TimeVal::microseconds(d.as_micros() as i64));
    let r = nix::sys::select::select(
        nfds,
        read.as_deref_mut(),
        write.as_deref_mut(),
        None,
        tv.as_mut(),
    );
    emit("select", || {
        let shown = result(&r, |n| {
            format!(
                "{n}: read={}, write={}",
                fd_set_names(&read),
                fd_set_names(&write)
            )
        });
        format!("{} -> {shown}", asked.unwrap_or_default())
    });
    r
}

/// [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html):
/// `poll([a: POLLIN, b: POLLIN], timeout=0) -> 1: [a: POLLIN|POLLHUP]`.
/// After the arrow: the entries whose `revents` the kernel set.
pub fn poll(fds: &mut [PollFd], wait: PollTimeout) -> nix::Result<i32> {
    // Only when it will be printed: a quiet loop over 10,000 descriptors
    // would otherwise format 10,000 names per call.
    let asked: Vec<String> = if printing() {
        fds.iter()
            .map(|p| format!("{}: {}", name_of(raw(p)), poll_flags(p.events())))
            .collect()
    } else {
        Vec::new()
    };
    let r = nix::poll::poll(fds, wait);
    emit("poll", || {
        let wait = match wait.as_millis() {
            None => "-1 (forever)".to_string(),
            Some(ms) => timeout(Some(Duration::from_millis(ms.into()))),
        };
        let shown = result(&r, |n| {
            let ready: Vec<String> = fds
                .iter()
                .filter_map(|p| {
                    let revents = p.revents().unwrap_or(PollFlags::empty());
                    (!revents.is_empty())
                        .then(|| format!("{}: {}", name_of(raw(p)), poll_flags(revents)))
                })
                .collect();
            format!("{n}: [{}]", ready.join(", "))
        });
        format!("poll([{}], timeout={wait}) -> {shown}", asked.join(", "))
    });
    r
}

/// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html) `F_DUPFD`:
/// a duplicate of `fd` on the lowest free number `>= min`, named `name`:
/// `fcntl(r, F_DUPFD, 1024) -> high (fd 1024)`. The number is printed (via
/// [`number_of`], so relative to the baseline if one is set) because where
/// a scenario asks for a number, the number is the lesson.
pub fn dup_from(fd: impl AsFd, min: RawFd, name: &str) -> nix::Result<OwnedFd> {
    let r = nix::fcntl::fcntl(&fd, FcntlArg::F_DUPFD(min)).map(|new| {
        // SAFETY: F_DUPFD returned a new descriptor that nobody else owns.
        unsafe { OwnedFd::from_raw_fd(new) }
    });
    if let Ok(new) = &r {
        crate::names::name(new, name);
    }
    emit("fcntl", || {
        let shown = result(&r, |new| {
            format!("{} (fd {})", name_of(raw(new)), number_of(raw(new)))
        });
        format!(
            "fcntl({}, F_DUPFD, {}) -> {shown}",
            name_of(raw(&fd)),
            number_of(min)
        )
    });
    r
}

/// Prints a measurement taken from real results, such as a count of calls
/// made quietly: `[tally] epoll_wait calls that returned at once => 10000`.
/// Counts the scenario computed, not commentary: `value` must come from the
/// real calls.
pub fn tally(what: &str, value: impl std::fmt::Display) {
    view("tally", "tally", || format!("{what} => {value}"));
}

/// [recv(2)](https://man7.org/linux/man-pages/man2/recv.2.html) with
/// `MSG_PEEK`: look at queued bytes without taking them:
/// `recv(b, 64, MSG_PEEK) -> 6 "efghij"`.
pub fn peek(fd: impl AsFd, buf: &mut [u8]) -> nix::Result<usize> {
    use nix::sys::socket::{MsgFlags, recv};
    // MSG_DONTWAIT: a peek at an empty socket answers EAGAIN instead of
    // blocking, whatever the descriptor's own O_NONBLOCK says.
    let r = recv(raw(&fd), buf, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT);
    emit("recv", || {
        let shown = result(&r, |&n| match n {
            0 => "0 (end of file)".to_string(),
            n => format!("{n} {}", bytes(&buf[..n])),
        });
        format!(
            "recv({}, {}, MSG_PEEK) -> {shown}",
            name_of(raw(&fd)),
            buf.len()
        )
    });
    r
}

/// [setsockopt(2)](https://man7.org/linux/man-pages/man2/setsockopt.2.html)
/// `SO_RCVTIMEO`: a blocking read on this socket gives up after `limit` with
/// EAGAIN ([socket(7)](https://man7.org/linux/man-pages/man7/socket.7.html)):
/// `setsockopt(b, SO_RCVTIMEO, 200ms) -> 0`.
pub fn set_read_timeout(fd: impl AsFd, limit: Duration) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
    let tv = TimeVal::microseconds(limit.as_micros() as i64);
    let r = setsockopt(&fd, ReceiveTimeout, &tv);
    emit("setsockopt", || {
        let shown = result(&r, |_| "0".to_string());
        format!(
            "setsockopt({}, SO_RCVTIMEO, {}) -> {shown}",
            name_of(raw(&fd)),
            timeout(Some(limit))
        )
    });
    r
}

// ---------------------------------------------------------------------------
// dup, open, mmap (chapter 05 shows each of them).

/// [dup(2)](https://man7.org/linux/man-pages/man2/dup.2.html): a second
/// descriptor for the same open file, on the lowest free number, named
/// `name`: `dup(conn-1) -> conn-1-dup`.
pub fn dup(fd: impl AsFd, name: &str) -> nix::Result<OwnedFd> {
    let r = nix::unistd::dup(&fd);
    if let Ok(new) = &r {
        crate::names::name(new, name);
    }
    emit("dup", || {
        let shown = result(&r, |new| name_of(raw(new)));
        format!("dup({}) -> {shown}", name_of(raw(&fd)))
    });
    r
}

/// [open(2)](https://man7.org/linux/man-pages/man2/open.2.html) of an
/// existing path, named `name`:
/// `open("/dev/null", O_RDONLY|O_CLOEXEC) -> /dev/null`.
pub fn open(path: &str, flags: OFlag, name: &str) -> nix::Result<OwnedFd> {
    let r = nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty());
    if let Ok(fd) = &r {
        crate::names::name(fd, name);
    }
    emit("open", || {
        let shown = result(&r, |fd| name_of(raw(fd)));
        format!("open({path:?}, {}) -> {shown}", oflags(flags))
    });
    r
}

/// A region of memory made by [`mmap`], unmapped when dropped. Only its
/// address is handed out ([`Mapping::as_ptr`]); reading or writing through
/// it is up to the caller, in an `unsafe` block of its own.
#[derive(Debug)]
pub struct Mapping {
    addr: std::ptr::NonNull<nix::libc::c_void>,
    len: usize,
}

impl Mapping {
    /// The first byte of the region.
    pub fn as_ptr(&self) -> *mut nix::libc::c_void {
        self.addr.as_ptr()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr` and `len` describe a region that mmap returned and
        // that only this value owns; nothing refers to it after the drop.
        unsafe {
            nix::libc::munmap(self.addr.as_ptr(), self.len);
        }
    }
}

/// `PROT_READ|PROT_WRITE`, or `PROT_NONE`.
fn prot_flags(prot: i32) -> String {
    use nix::libc::{PROT_EXEC, PROT_READ, PROT_WRITE};
    let names: Vec<&str> = [
        (PROT_READ, "PROT_READ"),
        (PROT_WRITE, "PROT_WRITE"),
        (PROT_EXEC, "PROT_EXEC"),
    ]
    .iter()
    .filter(|(bit, _)| prot & bit != 0)
    .map(|(_, name)| *name)
    .collect();
    if names.is_empty() {
        "PROT_NONE".to_string()
    } else {
        names.join("|")
    }
}

/// `MAP_SHARED`, `MAP_PRIVATE|MAP_ANONYMOUS`, other bits in hex.
fn map_flags(flags: i32) -> String {
    use nix::libc::{MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED};
    let mut names = Vec::new();
    let mut rest = flags;
    for (bit, name) in [
        (MAP_SHARED, "MAP_SHARED"),
        (MAP_PRIVATE, "MAP_PRIVATE"),
        (MAP_ANONYMOUS, "MAP_ANONYMOUS"),
    ] {
        if flags & bit != 0 {
            names.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    names.join("|")
}

/// [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html) of `len`
/// bytes at an address the kernel picks (never `MAP_FIXED`, so no existing
/// memory is replaced), from `fd` at offset 0, or anonymous memory if `fd`
/// is `None`. The region is named `name`, since its address differs on
/// every run: `mmap(NULL, 4096, PROT_READ, MAP_SHARED, ep, 0) -> ENODEV (...)`.
pub fn mmap(
    fd: Option<std::os::fd::BorrowedFd>,
    len: usize,
    prot: i32,
    flags: i32,
    name: &str,
) -> nix::Result<Mapping> {
    let raw_fd = fd.map_or(-1, |fd| fd.as_raw_fd());
    // SAFETY: a NULL hint without MAP_FIXED lets the kernel choose a free
    // range, so no existing mapping (no Rust object) is touched; the result
    // is checked before it is used.
    let addr = unsafe { nix::libc::mmap(std::ptr::null_mut(), len, prot, flags, raw_fd, 0) };
    let r = if addr == nix::libc::MAP_FAILED {
        Err(Errno::last())
    } else {
        std::ptr::NonNull::new(addr)
            .map(|addr| Mapping { addr, len })
            .ok_or(Errno::EINVAL)
    };
    emit("mmap", || {
        let shown = result(&r, |_| name.to_string());
        let shown_fd = fd.map_or("-1".to_string(), |fd| name_of(fd.as_raw_fd()));
        format!(
            "mmap(NULL, {len}, {}, {}, {shown_fd}, 0) -> {shown}",
            prot_flags(prot),
            map_flags(flags)
        )
    });
    r
}

/// [setsockopt(2)](https://man7.org/linux/man-pages/man2/setsockopt.2.html)
/// `SO_LINGER` ([socket(7)](https://man7.org/linux/man-pages/man7/socket.7.html)):
/// `setsockopt(client, SO_LINGER, {l_onoff=1, l_linger=0}) -> 0`. With
/// `Some(0)`, a later close discards unsent data and sends a reset (RST)
/// instead of a FIN; `None` turns lingering off (the default).
pub fn set_linger(fd: impl AsFd, seconds: Option<u32>) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::Linger};
    let linger = nix::libc::linger {
        l_onoff: i32::from(seconds.is_some()),
        l_linger: seconds.unwrap_or(0) as i32,
    };
    let r = setsockopt(&fd, Linger, &linger);
    emit("setsockopt", || {
        let shown = result(&r, |_| "0".to_string());
        format!(
            "setsockopt({}, SO_LINGER, {{l_onoff={}, l_linger={}}}) -> {shown}",
            name_of(raw(&fd)),
            linger.l_onoff,
            linger.l_linger
        )
    });
    r
}

#[cfg(test)]
mod mmap_tests {
    use super::{map_flags, prot_flags};
    use nix::libc;

    #[test]
    fn mmap_flags_print_by_name() {
        assert_eq!(prot_flags(libc::PROT_NONE), "PROT_NONE");
        assert_eq!(
            prot_flags(libc::PROT_READ | libc::PROT_WRITE),
            "PROT_READ|PROT_WRITE"
        );
        assert_eq!(
            map_flags(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS),
            "MAP_PRIVATE|MAP_ANONYMOUS"
        );
        assert_eq!(map_flags(libc::MAP_SHARED), "MAP_SHARED");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_counted_per_thread_busy_or_not() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        reset_counts();
        write(&a, b"xy").unwrap();
        read(&b, &mut [0; 1]).unwrap();
        peek(&b, &mut [0; 1]).unwrap();
        read(&b, &mut [0; 1]).unwrap();
        assert_eq!(
            (count_of("read"), count_of("write"), count_of("recv")),
            (2, 1, 1)
        );
        let elsewhere = std::thread::spawn(|| count_of("read")).join().unwrap();
        assert_eq!(elsewhere, 0, "counts are per thread");
        reset_counts();
        assert_eq!((count_of("read"), count_of("recv")), (0, 0));
    }
}
