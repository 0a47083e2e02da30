//! `ch05-epoll-api`: the three epoll calls, the kernel's interest and ready
//! lists, and every `epoll_ctl` error, each as a scenario with a transcript.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use lab_kit::epoll::{self, Op, create1, ctl, show_interest_list};
use lab_kit::names::{name_of, name_token};
use lab_kit::trace::Mapping;
use lab_kit::{fixtures, note, proc, trace};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::Shutdown;
use nix::unistd::Pid;

const PACKAGE: &str = "ch05-epoll-api";

#[derive(Parser)]
#[command(name = PACKAGE, about = "epoll_create1, epoll_ctl, epoll_wait: the kernel's view")]
struct Cli {
    #[command(subcommand)]
    scenario: Option<Scenario>,
}

#[derive(Subcommand)]
enum Scenario {
    /// The three calls on a socketpair: create an instance, register, wait
    ThreeCalls,
    /// The interest list as the kernel holds it (/proc/self/fdinfo) through ADD, MOD, DEL, ONESHOT
    InterestList,
    /// A ready entry stays in the tree: fdinfo lists it while it is on the ready list
    ReadyStaysInTree,
    /// `data` is your token: the event carries it, not the descriptor
    DataToken,
    /// timeout 0 returns at once; a finite timeout returns 0 when it expires; O_NONBLOCK on ep changes nothing
    Timeouts,
    /// Every error of epoll_create, epoll_ctl and epoll_wait that is safe to show
    Errors,
    /// EPOLLERR and EPOLLHUP are reported though nobody asked for them
    HangupUnasked,
    /// A peer closes: a Unix socket reports EPOLLHUP, a TCP connection only EPOLLIN|EPOLLRDHUP
    PeerClose,
    /// A wait reports the state at wait time, not what caused the wake-up
    StateAtWaitTime,
    /// maxevents = 1 with three ready level-triggered fds: a, b, c, a
    MaxeventsRotation,
    /// No shared ring: mmap of an epoll descriptor fails, and no region of memory belongs to it
    NoMmap,
    /// epoll_create(1), epoll_create(1000) and epoll_create1(0) build the same thing; size <= 0 is EINVAL
    CreateSize,
}

fn main() -> Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(scenario) = cli.scenario else {
        lab_kit::transcript::print_scenarios(PACKAGE, "the epoll API", &Cli::command());
        return Ok(());
    };
    trace::enable();
    match scenario {
        Scenario::ThreeCalls => three_calls(),
        Scenario::InterestList => interest_list(),
        Scenario::ReadyStaysInTree => ready_stays_in_tree(),
        Scenario::DataToken => data_token(),
        Scenario::Timeouts => timeouts(),
        Scenario::Errors => errors(),
        Scenario::HangupUnasked => hangup_unasked(),
        Scenario::PeerClose => peer_close(),
        Scenario::StateAtWaitTime => state_at_wait_time(),
        Scenario::MaxeventsRotation => maxevents_rotation(),
        Scenario::NoMmap => no_mmap(),
        Scenario::CreateSize => create_size(),
    }
}

/// The `data` tokens of these scenarios, named so events print by name.
const A: u64 = 1;
const B: u64 = 2;
const C: u64 = 3;
const NOTES: u64 = 4;
const DEV_NULL: u64 = 5;
const EP: u64 = 6;
const CONN: u64 = 7;
const CONN_DUP: u64 = 8;

fn name_tokens() {
    name_token(A, "a");
    name_token(B, "b");
    name_token(C, "c");
}

/// Room for up to eight events per wait.
fn event_buffer() -> Vec<EpollEvent> {
    vec![EpollEvent::empty(); 8]
}

/// The scenario's commentary announced `wanted`; the traced line has shown
/// what the kernel said. If the kernel said something else, stop with an
/// error instead of going on as if the lesson held.
fn expect<T>(result: nix::Result<T>, wanted: Errno) -> Result<()> {
    match result {
        Err(e) if e == wanted => Ok(()),
        Err(e) => anyhow::bail!("expected {wanted:?}, the kernel said {e:?}"),
        Ok(_) => anyhow::bail!("expected {wanted:?}, the call succeeded"),
    }
}

fn now() -> Option<Duration> {
    Some(Duration::ZERO)
}

// ANCHOR: three_calls
fn three_calls() -> Result<()> {
    name_tokens();
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    note("epoll_create1 makes an empty instance: an interest list and a ready list.");
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    note("Register b for reading. `data` is ours: the kernel hands it back in each event.");
    ctl(&ep.0, Op::Add, b.as_raw_fd(), EpollFlags::EPOLLIN, B)?;
    let mut events = event_buffer();
    note("Nothing to read yet: with timeout 0 the wait returns at once, empty.");
    epoll::wait(&ep, &mut events, now())?;
    trace::write(&peer, b"hello")?;
    note("The write ran b's wake-up callback, which put b on the ready list.");
    epoll::wait(&ep, &mut events, now())?;
    trace::read(&b, &mut [0; 64])?;
    note("Level-triggered: once b is drained, the wait has nothing to report.");
    epoll::wait(&ep, &mut events, now())?;
    Ok(())
}
// ANCHOR_END: three_calls

// ANCHOR: interest_list
fn interest_list() -> Result<()> {
    name_tokens();
    let (_peer_a, a) = fixtures::socketpair("peer-a", "a")?;
    let (peer_b, b) = fixtures::socketpair("peer-b", "b")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    note("/proc/self/fdinfo/<epfd> lists the interest list: one line per registration.");
    show_interest_list(&ep)?;
    ctl(&ep.0, Op::Add, a.as_raw_fd(), EpollFlags::EPOLLIN, A)?;
    note("The kernel stores EPOLLIN plus EPOLLERR|EPOLLHUP: it adds those two to every mask.");
    show_interest_list(&ep)?;
    ctl(
        &ep.0,
        Op::Mod,
        a.as_raw_fd(),
        EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT,
        A,
    )?;
    show_interest_list(&ep)?;
    ctl(&ep.0, Op::Del, a.as_raw_fd(), EpollFlags::empty(), 0)?;
    note("DEL removes the entry from the tree.");
    show_interest_list(&ep)?;

    trace::blank();
    note("EPOLLONESHOT: after one event the entry is disabled but stays in the tree.");
    let oneshot = EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT;
    ctl(&ep.0, Op::Add, b.as_raw_fd(), oneshot, B)?;
    show_interest_list(&ep)?;
    trace::write(&peer_b, b"ping")?;
    let mut events = event_buffer();
    epoll::wait(&ep, &mut events, now())?;
    note("Fired: only the kernel's private bits are left in the mask, so nothing matches.");
    show_interest_list(&ep)?;
    note("The 4 bytes are still unread, yet the wait is empty: the entry is disarmed.");
    epoll::wait(&ep, &mut events, now())?;
    note("MOD re-arms it, and the kernel re-checks readiness right away.");
    ctl(&ep.0, Op::Mod, b.as_raw_fd(), oneshot, B)?;
    show_interest_list(&ep)?;
    epoll::wait(&ep, &mut events, now())?;
    Ok(())
}
// ANCHOR_END: interest_list

fn data_token() -> Result<()> {
    let (client_1, conn_1) = fixtures::socketpair("client-1", "conn-1")?;
    let (_client_2, conn_2) = fixtures::socketpair("client-2", "conn-2")?;
    // Connection ids, not descriptor numbers: a closed fd's number can be
    // handed out again, a connection id never is.
    name_token(1001, "token 1001 (conn-1)");
    name_token(1002, "token 1002 (conn-2)");
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    note("`data` is a u64 the kernel stores and returns untouched; here, a connection id.");
    ctl(
        &ep.0,
        Op::Add,
        conn_1.as_raw_fd(),
        EpollFlags::EPOLLIN,
        1001,
    )?;
    ctl(
        &ep.0,
        Op::Add,
        conn_2.as_raw_fd(),
        EpollFlags::EPOLLIN,
        1002,
    )?;
    trace::write(&client_1, b"hi")?;
    let mut events = event_buffer();
    note("The event says which registration is ready only through its data.");
    epoll::wait(&ep, &mut events, now())?;

    trace::blank();
    note("The interest list is keyed by (open file, fd number). A dup is a new key,");
    note("so the same socket can be registered twice, with its own data:");
    let conn_1_dup = trace::dup(&conn_1, "conn-1-dup")?;
    name_token(1003, "token 1003 (conn-1-dup)");
    ctl(
        &ep.0,
        Op::Add,
        conn_1_dup.as_raw_fd(),
        EpollFlags::EPOLLIN,
        1003,
    )?;
    note("One socket with data waiting, two registrations, two events:");
    epoll::wait(&ep, &mut events, now())?;
    Ok(())
}

fn timeouts() -> Result<()> {
    name_tokens();
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    ctl(&ep.0, Op::Add, b.as_raw_fd(), EpollFlags::EPOLLIN, B)?;
    let mut events = event_buffer();
    note("timeout 0: look at the ready list and return at once. A poll, not a wait.");
    epoll::wait(&ep, &mut events, now())?;
    note("timeout 100ms: sleep until something is ready or the time is up; 0 means time up.");
    note("(\"Up to 100ms\" is not exact: the kernel rounds it up to its clock's granularity,");
    note("and the wake-up may come a little late; see epoll_wait(2).)");
    epoll::wait(&ep, &mut events, Some(Duration::from_millis(100)))?;
    trace::write(&peer, b"x")?;
    note("Something is ready already: a finite timeout returns at once too.");
    epoll::wait(&ep, &mut events, Some(Duration::from_millis(100)))?;
    trace::read(&b, &mut [0; 8])?;

    trace::blank();
    note("O_NONBLOCK on the epoll descriptor itself: fcntl accepts it...");
    let flags = trace::get_flags(&ep.0)?;
    trace::set_flags(&ep.0, flags | OFlag::O_NONBLOCK)?;
    trace::get_flags(&ep.0)?;
    note("...and epoll_wait ignores it: only the timeout decides. timeout -1 waits with");
    note("no deadline. Another thread writes to peer, but only once it has seen this");
    note("thread asleep inside epoll_wait (/proc/self/task/<id>/stat and .../syscall).");
    note("Only this thread prints, so what the writer saw and did is reported after.");
    let waiter = nix::unistd::gettid();
    let writer = thread::spawn(move || write_once_asleep(peer, waiter));
    let waited = epoll::wait(&ep, &mut events, None);
    let (_peer, report) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    trace::view("writer", "writer thread", || {
        format!(
            "/proc/self/task/<this thread>/stat, syscall => asleep in epoll_wait: {}",
            report.saw_asleep
        )
    });
    trace::view("writer", "writer thread", || {
        let shown = trace::result(&report.written, |n| n.to_string());
        format!("write(peer, \"wake up\") => {shown}")
    });
    waited?;
    report.written?;
    anyhow::ensure!(
        report.saw_asleep,
        "the writer never saw this thread asleep in epoll_wait"
    );
    Ok(())
}

/// What the writer thread of [`timeouts`] saw and did.
struct WriterReport {
    /// It saw the waiting thread asleep inside epoll_wait before it wrote.
    saw_asleep: bool,
    /// Its write to the peer socket.
    written: nix::Result<usize>,
}

/// Waits (up to 10 s) until thread `waiter` sleeps inside epoll_wait, then
/// writes to `peer`. It writes even if it never saw that, so the wait ends.
fn write_once_asleep(peer: UnixStream, waiter: Pid) -> (UnixStream, WriterReport) {
    // lab_kit::proc reads the thread's state and system call from /proc.
    let saw_asleep =
        proc::wait_until_asleep(waiter, Duration::from_secs(10), |call| call.is_epoll_wait())
            .is_some();
    let written = trace::write(&peer, b"wake up");
    (
        peer,
        WriterReport {
            saw_asleep,
            written,
        },
    )
}

// ANCHOR: errors
fn errors() -> Result<()> {
    name_tokens();
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    let ep_fd = ep.0.as_raw_fd();
    let b_fd = b.as_raw_fd();
    let read = EpollFlags::EPOLLIN;

    note("EEXIST: the same (file, fd) registered twice.");
    ctl(&ep.0, Op::Add, b_fd, read, B)?;
    expect(ctl(&ep.0, Op::Add, b_fd, read, B), Errno::EEXIST)?;

    note("ENOENT: MOD or DEL of something never registered.");
    let (_peer_a, a) = fixtures::socketpair("peer-a", "a")?;
    expect(ctl(&ep.0, Op::Mod, a.as_raw_fd(), read, A), Errno::ENOENT)?;
    let none = EpollFlags::empty();
    expect(ctl(&ep.0, Op::Del, a.as_raw_fd(), none, 0), Errno::ENOENT)?;

    note("EPERM: a regular file, or /dev/null, has no wait queue to hook into.");
    note("(select and poll call such files always ready; epoll refuses them.)");
    let file = fixtures::regular_file("notes.txt", b"text")?;
    name_token(NOTES, "notes.txt");
    expect(
        ctl(&ep.0, Op::Add, file.as_raw_fd(), read, NOTES),
        Errno::EPERM,
    )?;
    let dev_null = trace::open("/dev/null", OFlag::O_RDONLY | OFlag::O_CLOEXEC, "/dev/null")?;
    name_token(DEV_NULL, "/dev/null");
    expect(
        ctl(&ep.0, Op::Add, dev_null.as_raw_fd(), read, DEV_NULL),
        Errno::EPERM,
    )?;

    note("EINVAL: an epoll instance cannot watch itself.");
    name_token(EP, "ep");
    expect(ctl(&ep.0, Op::Add, ep_fd, read, EP), Errno::EINVAL)?;
    note("EINVAL: the first argument must be an epoll instance.");
    expect(ctl(&b, Op::Add, a.as_raw_fd(), read, A), Errno::EINVAL)?;
    note("EINVAL: EPOLL_CLOEXEC is the only flag. 0x800 is O_NONBLOCK, the flag some");
    note("posts call EPOLL_NONBLOCK; a non-blocking wait is timeout 0 instead.");
    let bad_flag = EpollCreateFlags::from_bits_retain(nix::libc::O_NONBLOCK);
    expect(create1(bad_flag, "ep-2"), Errno::EINVAL)?;
    note("EINVAL: the old epoll_create(size) ignores size, but it must be positive.");
    expect(epoll::create(0, "ep-3"), Errno::EINVAL)?;
    note("EINVAL: epoll_wait needs room for at least one event (maxevents > 0).");
    expect(epoll::wait(&ep, &mut [], now()), Errno::EINVAL)?;

    note("EBADF: a descriptor that is not open (any more).");
    let (_peer_c, c) = fixtures::socketpair("peer-c", "c")?;
    let c_fd = c.as_raw_fd();
    trace::close(OwnedFd::from(c))?;
    expect(ctl(&ep.0, Op::Add, c_fd, read, C), Errno::EBADF)?;

    trace::blank();
    note("EFAULT: epoll_ctl reads your struct epoll_event, and epoll_wait writes the");
    note("events, through pointers. Hand them a page that may not be touched at all:");
    let page = trace::mmap(
        None,
        4096,
        libc::PROT_NONE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        "no-access page",
    )?;
    expect(
        ctl_from_page(&ep, Op::Add, a.as_raw_fd(), &page),
        Errno::EFAULT,
    )?;
    note("epoll_wait writes only the events it delivers. With none ready, it has nothing");
    note("to write and never touches the page:");
    wait_into_page(&ep, &page, 8)?;
    trace::write(&peer, b"x")?;
    expect(wait_into_page(&ep, &page, 8), Errno::EFAULT)?;
    note("The event could not be copied, so the kernel put b back on the ready list:");
    epoll::wait(&ep, &mut event_buffer(), now())?;

    trace::blank();
    note("ENOSPC: ADD beyond /proc/sys/fs/epoll/max_user_watches, a limit on the");
    note("registrations of one user across all instances (epoll(7)). Its value depends");
    note("on the machine's memory, so only a comparison is shown:");
    show_max_user_watches()?;
    Ok(())
}
// ANCHOR_END: errors

/// `epoll_ctl(ep, op, fd, event)` with `event` pointing into `page`, traced
/// by hand (lab-kit's `ctl` always passes a valid event).
fn ctl_from_page(ep: &Epoll, op: Op, fd: RawFd, page: &Mapping) -> nix::Result<()> {
    // SAFETY: the kernel only reads through the pointer, and `page` is a
    // PROT_NONE mapping this process owns: the read fails with EFAULT,
    // and no Rust value lives there.
    let rc = unsafe { libc::epoll_ctl(ep.0.as_raw_fd(), op.code(), fd, page.as_ptr().cast()) };
    let r = Errno::result(rc).map(drop);
    trace::emit("epoll_ctl", || {
        let shown = trace::result(&r, |_| "0".to_string());
        format!(
            "epoll_ctl({}, {}, {}, event=no-access page) -> {shown}",
            name_of(ep.0.as_raw_fd()),
            op.name(),
            name_of(fd)
        )
    });
    r
}

// ANCHOR: wait_into_page
/// `epoll_wait(ep, events, max, 0)` with `events` pointing into `page`.
fn wait_into_page(ep: &Epoll, page: &Mapping, max: i32) -> nix::Result<usize> {
    // SAFETY: the kernel writes through the pointer only to deliver events,
    // and `page` is a PROT_NONE mapping this process owns: any write fails
    // with EFAULT, and no Rust value lives there.
    let rc = unsafe { libc::epoll_wait(ep.0.as_raw_fd(), page.as_ptr().cast(), max, 0) };
    let r = Errno::result(rc).map(|n| n as usize);
    trace::emit("epoll_wait", || {
        let shown = trace::result(&r, |n| format!("{n}"));
        format!(
            "epoll_wait({}, events=no-access page, max={max}, timeout=0) -> {shown}",
            name_of(ep.0.as_raw_fd())
        )
    });
    r
}
// ANCHOR_END: wait_into_page

/// `[proc] /proc/sys/fs/epoll/max_user_watches >= 10000 => true`. The value
/// itself is 4% of low memory divided by the cost of one registration, so
/// it differs from machine to machine; a transcript must not.
fn show_max_user_watches() -> Result<()> {
    const PATH: &str = "/proc/sys/fs/epoll/max_user_watches";
    let text = std::fs::read_to_string(PATH).with_context(|| format!("read {PATH}"))?;
    let limit: u64 = text
        .trim()
        .parse()
        .with_context(|| format!("parse {PATH}"))?;
    trace::view("proc", "proc", || {
        format!("{PATH} >= 10000 => {}", limit >= 10_000)
    });
    Ok(())
}

fn hangup_unasked() -> Result<()> {
    name_tokens();
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    note("Register b asking for nothing at all (events = 0).");
    ctl(&ep.0, Op::Add, b.as_raw_fd(), EpollFlags::empty(), B)?;
    note("The kernel's copy of the mask has EPOLLERR|EPOLLHUP anyway:");
    show_interest_list(&ep)?;
    let mut events = event_buffer();
    epoll::wait(&ep, &mut events, now())?;
    note("The peer closes its end of the Unix socket pair:");
    trace::close(OwnedFd::from(peer))?;
    epoll::wait(&ep, &mut events, now())?;
    note("Level-triggered, so b would be reported on every wait until it is removed:");
    ctl(&ep.0, Op::Del, b.as_raw_fd(), EpollFlags::empty(), 0)?;

    trace::blank();
    note("A pipe's write end, watched for EPOLLOUT, after every read end is closed:");
    let (read_end, write_end) = fixtures::pipe("pipe-r", "pipe-w")?;
    name_token(C, "pipe-w");
    ctl(
        &ep.0,
        Op::Add,
        write_end.as_raw_fd(),
        EpollFlags::EPOLLOUT,
        C,
    )?;
    trace::close(read_end)?;
    note("A write now would fail with EPIPE; epoll says EPOLLERR without being asked.");
    epoll::wait(&ep, &mut events, now())?;
    Ok(())
}

fn state_at_wait_time() -> Result<()> {
    name_tokens();
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    let watch = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
    ctl(&ep.0, Op::Add, b.as_raw_fd(), watch, B)?;
    trace::write(&peer, b"x")?;
    note("b is on the ready list now. Read the byte before waiting:");
    trace::read(&b, &mut [0; 8])?;
    note("epoll_wait re-polls every entry it takes off the ready list and reports its");
    note("state now: nothing to read, so nothing is reported.");
    let mut events = event_buffer();
    epoll::wait(&ep, &mut events, now())?;

    trace::blank();
    note("Two things happen before the next wait: data, then the peer shuts down writing.");
    trace::write(&peer, b"last words")?;
    trace::shutdown(&peer, nix::sys::socket::Shutdown::Write)?;
    note("One event carries both conditions, as they are at wait time:");
    epoll::wait(&ep, &mut events, now())?;
    Ok(())
}

fn maxevents_rotation() -> Result<()> {
    name_tokens();
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    let mut pairs = Vec::new();
    for (name, token) in [("a", A), ("b", B), ("c", C)] {
        let (peer, fd) = fixtures::socketpair(&format!("peer-{name}"), name)?;
        ctl(&ep.0, Op::Add, fd.as_raw_fd(), EpollFlags::EPOLLIN, token)?;
        pairs.push((peer, fd));
    }
    for (peer, _) in &pairs {
        trace::write(peer, b"data")?;
    }
    note("a, b and c are all readable, and nobody reads. Waits with room for one event:");
    let mut one = [EpollEvent::empty()];
    for _ in 0..4 {
        epoll::wait(&ep, &mut one, now())?;
    }
    note("Each wait takes the head of the ready list; a level-triggered entry that is");
    note("still ready goes back at the tail. No descriptor starves the others.");
    note("With room for eight, one wait returns all three:");
    epoll::wait(&ep, &mut event_buffer(), now())?;
    Ok(())
}

/// `poll([ep: POLLIN], timeout=0)`: an epoll descriptor is readable while
/// its ready list holds an entry that is really ready. Polling it takes
/// nothing off the list.
fn poll_ep(ep: &Epoll) -> Result<()> {
    let mut fds = [PollFd::new(ep.0.as_fd(), PollFlags::POLLIN)];
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    Ok(())
}

fn ready_stays_in_tree() -> Result<()> {
    name_tokens();
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    ctl(&ep.0, Op::Add, b.as_raw_fd(), EpollFlags::EPOLLIN, B)?;
    note("b is in the interest list (the tree):");
    show_interest_list(&ep)?;
    note("Is anything on the ready list? An epoll descriptor can itself be polled:");
    note("it is readable while its ready list holds a ready entry. Nothing yet:");
    poll_ep(&ep)?;
    trace::write(&peer, b"x")?;
    note("The write's callback linked b onto the ready list:");
    poll_ep(&ep)?;
    note("and b is still in the tree. The ready list links the same entry a second");
    note("time; nothing moved out of the tree:");
    show_interest_list(&ep)?;
    let mut events = event_buffer();
    epoll::wait(&ep, &mut events, now())?;
    note("Level-triggered and still readable: the wait put b back on the ready list.");
    poll_ep(&ep)?;
    show_interest_list(&ep)?;
    trace::read(&b, &mut [0; 8])?;
    note("Now the wait finds b empty and leaves it off the ready list:");
    epoll::wait(&ep, &mut events, now())?;
    poll_ep(&ep)?;
    note("Off the ready list, still in the tree, until DEL (or the last close):");
    show_interest_list(&ep)?;
    Ok(())
}

fn peer_close() -> Result<()> {
    let listener = fixtures::listener("listener")?;
    let client = fixtures::connect(listener.local_addr()?, "client")?;
    let conn = trace::accept(&listener, "conn")?;
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    name_token(CONN, "conn");
    name_token(B, "b");
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    note("conn (TCP) and b (a Unix socket pair), both watched for EPOLLIN|EPOLLRDHUP:");
    let watch = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
    ctl(&ep.0, Op::Add, conn.as_raw_fd(), watch, CONN)?;
    ctl(&ep.0, Op::Add, b.as_raw_fd(), watch, B)?;
    note("And the same TCP socket once more, through a dup, asking for nothing (events = 0):");
    let conn_dup = trace::dup(&conn, "conn-dup")?;
    name_token(CONN_DUP, "conn-dup");
    ctl(
        &ep.0,
        Op::Add,
        conn_dup.as_raw_fd(),
        EpollFlags::empty(),
        CONN_DUP,
    )?;
    let mut events = event_buffer();
    epoll::wait(&ep, &mut events, now())?;
    note("The TCP client closes. Its FIN crosses the loopback network stack, so this");
    note("wait may sleep for it; 5s is only a limit (it returns once conn is ready).");
    trace::close(OwnedFd::from(client))?;
    epoll::wait(&ep, &mut events, Some(Duration::from_secs(5)))?;
    note("The Unix peer closes:");
    trace::close(OwnedFd::from(peer))?;
    epoll::wait(&ep, &mut events, now())?;
    note("Both peers are gone, yet only b has EPOLLHUP. A Unix socket whose peer is");
    note("closed is shut in both directions. conn is shut for reading only (the FIN):");
    note("conn could still send, so the kernel does not call it hung up, and conn-dup,");
    note("which hears only EPOLLERR and EPOLLHUP, has heard nothing.");
    trace::read(&conn, &mut [0; 8])?;
    note("conn shuts down its own sending side. Now both directions are shut:");
    trace::shutdown(&conn, Shutdown::Write)?;
    epoll::wait(&ep, &mut events, now())?;
    Ok(())
}

/// `[proc] /proc/self/fd/ep => anon_inode:[eventpoll]`: what the kernel
/// says a descriptor refers to.
fn show_fd_target(fd: impl AsFd) -> Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    let target = std::fs::read_link(format!("/proc/self/fd/{raw}"))?;
    trace::view("proc", "proc", || {
        format!("/proc/self/fd/{} => {}", name_of(raw), target.display())
    });
    Ok(())
}

/// The path column of a /proc/self/maps line (empty for anonymous memory):
/// `start-end perms offset dev inode   path`.
fn maps_path(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        rest = rest
            .find(char::is_whitespace)
            .map_or("", |end| &rest[end..]);
    }
    rest.trim()
}

/// `[proc] /proc/self/maps => regions backed by ep: 0, by notes.txt: 1`:
/// how many regions of this process's memory each descriptor's file backs
/// ([proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html)).
/// A region's path is what `/proc/self/fd/N` links to.
fn show_regions_backed_by(fds: &[RawFd]) -> Result<()> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut counts = Vec::new();
    for &fd in fds {
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
        let target = target.to_string_lossy();
        let regions = maps
            .lines()
            .filter(|line| maps_path(line) == target)
            .count();
        counts.push(format!("by {}: {regions}", name_of(fd)));
    }
    trace::view("proc", "proc", || {
        format!("/proc/self/maps => regions backed {}", counts.join(", "))
    });
    Ok(())
}

fn no_mmap() -> Result<()> {
    name_tokens();
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    ctl(&ep.0, Op::Add, b.as_raw_fd(), EpollFlags::EPOLLIN, B)?;
    trace::write(&peer, b"hello")?;
    epoll::wait(&ep, &mut event_buffer(), now())?;
    note("Some posts say epoll shares its ready list with you through mmap. Try to map");
    note("the epoll descriptor into memory:");
    show_fd_target(&ep.0)?;
    let mapped = trace::mmap(
        Some(ep.0.as_fd()),
        4096,
        libc::PROT_READ,
        libc::MAP_SHARED,
        "ep-map",
    );
    expect(mapped, Errno::ENODEV)?;
    note("ENODEV: the epoll file has no mmap method (eventpoll_fops, fs/eventpoll.c).");
    note("A file that can be mapped, for comparison:");
    let file = fixtures::regular_file("notes.txt", b"text")?;
    let _notes_map = trace::mmap(
        Some(file.as_fd()),
        4096,
        libc::PROT_READ,
        libc::MAP_SHARED,
        "notes-map",
    )?;
    note("/proc/self/maps lists every region of this process's memory and its file:");
    show_regions_backed_by(&[ep.0.as_raw_fd(), file.as_raw_fd()])?;
    note("So epoll_wait delivers by copying: one struct epoll_event per delivered event");
    note("into your array. Its size depends on the architecture (EPOLL_PACKED in");
    note("include/uapi/linux/eventpoll.h: packed on x86-64 only):");
    let size = std::mem::size_of::<libc::epoll_event>();
    let expected = if cfg!(target_arch = "x86_64") { 12 } else { 16 };
    trace::view("layout", "layout", || {
        format!(
            "size_of::<epoll_event>() == if x86_64 {{ 12 }} else {{ 16 }} => {}",
            size == expected
        )
    });
    Ok(())
}

fn create_size() -> Result<()> {
    name_tokens();
    note("epoll_create(size) is the call of 2002. size was a hint for a hash table that");
    note("is long gone; epoll_create1(flags) took its place in Linux 2.6.27. Make one of each:");
    let small = epoll::create(1, "ep-1")?;
    let large = epoll::create(1000, "ep-1000")?;
    let new = create1(EpollCreateFlags::empty(), "ep-new")?;
    let instances = [&small, &large, &new];
    note("The same kind of file, opened the same way:");
    for ep in instances {
        show_fd_target(&ep.0)?;
        trace::get_flags(&ep.0)?;
    }
    note("size 1 is no limit: each instance takes two registrations.");
    let (peer_a, a) = fixtures::socketpair("peer-a", "a")?;
    let (peer_b, b) = fixtures::socketpair("peer-b", "b")?;
    for ep in instances {
        ctl(&ep.0, Op::Add, a.as_raw_fd(), EpollFlags::EPOLLIN, A)?;
        ctl(&ep.0, Op::Add, b.as_raw_fd(), EpollFlags::EPOLLIN, B)?;
    }
    trace::write(&peer_a, b"x")?;
    trace::write(&peer_b, b"y")?;
    note("The same events, and the same interest list as the kernel shows it:");
    for ep in instances {
        epoll::wait(ep, &mut event_buffer(), now())?;
    }
    for ep in instances {
        show_interest_list(ep)?;
    }
    note("What is left of size: it must be positive (fs/eventpoll.c, epoll_create).");
    expect(epoll::create(0, "ep-0"), Errno::EINVAL)?;
    expect(epoll::create(-1, "ep-minus-1"), Errno::EINVAL)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::maps_path;

    #[test]
    fn maps_path_is_the_sixth_column_with_its_spaces() {
        let file = "7f2c1a000000-7f2c1a001000 r--s 00000000 00:2a 1234   /tmp/x (deleted)";
        assert_eq!(maps_path(file), "/tmp/x (deleted)");
        let anon = "7f2c1a000000-7f2c1a001000 rw-p 00000000 00:00 0 ";
        assert_eq!(maps_path(anon), "");
        let epoll = "7f2c1a000000-7f2c1a001000 r--s 00000000 00:0f 77 anon_inode:[eventpoll]";
        assert_eq!(maps_path(epoll), "anon_inode:[eventpoll]");
    }
}
