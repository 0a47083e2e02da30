//! `ch05-epoll-api`: the three epoll calls, the kernel's interest and ready
//! lists, and every `epoll_ctl` error, each as a scenario with a transcript.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use lab_kit::epoll::{self, Op, create1, ctl, show_interest_list};
use lab_kit::names::{name, name_token};
use lab_kit::{fixtures, note, trace};
use nix::errno::Errno;
use nix::sys::epoll::{EpollCreateFlags, EpollEvent, EpollFlags};

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
    /// `data` is your token: the event carries it, not the descriptor
    DataToken,
    /// timeout 0 returns at once; a finite timeout returns 0 when it expires
    Timeouts,
    /// Every error of epoll_create1, epoll_ctl and epoll_wait that is safe to show
    Errors,
    /// EPOLLERR and EPOLLHUP are reported though nobody asked for them
    HangupUnasked,
    /// A wait reports the state at wait time, not what caused the wake-up
    StateAtWaitTime,
    /// maxevents = 1 with three ready level-triggered fds: a, b, c, a
    MaxeventsRotation,
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
        Scenario::DataToken => data_token(),
        Scenario::Timeouts => timeouts(),
        Scenario::Errors => errors(),
        Scenario::HangupUnasked => hangup_unasked(),
        Scenario::StateAtWaitTime => state_at_wait_time(),
        Scenario::MaxeventsRotation => maxevents_rotation(),
    }
}

/// The `data` tokens of these scenarios, named so events print by name.
const A: u64 = 1;
const B: u64 = 2;
const C: u64 = 3;

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
    let conn_1_dup: OwnedFd = nix::unistd::dup(&conn_1)?;
    name(&conn_1_dup, "conn-1-dup");
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
    epoll::wait(&ep, &mut events, Some(Duration::from_millis(100)))?;
    trace::write(&peer, b"x")?;
    note("Something is ready already: a finite timeout returns at once too.");
    epoll::wait(&ep, &mut events, Some(Duration::from_millis(100)))?;
    trace::read(&b, &mut [0; 8])?;

    trace::blank();
    note("timeout -1: no deadline at all. Safe here because another thread writes");
    note("(its write is not in the transcript: only this thread prints). Whether it");
    note("writes before or during the wait, the wait returns the same one event.");
    let writer = thread::spawn(move || {
        let written = trace::write(&peer, b"wake up");
        // Hand the socket back rather than closing it here: a close before
        // the wait would add EPOLLHUP, and the transcript would depend on
        // which thread ran first.
        (peer, written)
    });
    epoll::wait(&ep, &mut events, None)?;
    let (_peer, written) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    written?;
    Ok(())
}

// ANCHOR: errors
fn errors() -> Result<()> {
    name_tokens();
    let (_peer, b) = fixtures::socketpair("peer", "b")?;
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
    expect(ctl(&ep.0, Op::Add, file.as_raw_fd(), read, C), Errno::EPERM)?;
    let dev_null = File::open("/dev/null").context("open /dev/null")?;
    name(&dev_null, "/dev/null");
    expect(
        ctl(&ep.0, Op::Add, dev_null.as_raw_fd(), read, C),
        Errno::EPERM,
    )?;

    note("EINVAL: an epoll instance cannot watch itself.");
    expect(ctl(&ep.0, Op::Add, ep_fd, read, C), Errno::EINVAL)?;
    note("EINVAL: the first argument must be an epoll instance.");
    expect(ctl(&b, Op::Add, a.as_raw_fd(), read, A), Errno::EINVAL)?;
    note("EINVAL: EPOLL_CLOEXEC is the only flag. 0x800 is O_NONBLOCK, the flag some");
    note("posts call EPOLL_NONBLOCK; a non-blocking wait is timeout 0 instead.");
    let bad_flag = EpollCreateFlags::from_bits_retain(nix::libc::O_NONBLOCK);
    expect(create1(bad_flag, "ep-2"), Errno::EINVAL)?;
    note("EINVAL: epoll_wait needs room for at least one event (maxevents > 0).");
    expect(epoll::wait(&ep, &mut [], now()), Errno::EINVAL)?;

    note("EBADF: a descriptor that is not open (any more).");
    let (_peer_c, c) = fixtures::socketpair("peer-c", "c")?;
    let c_fd = c.as_raw_fd();
    trace::close(OwnedFd::from(c))?;
    expect(ctl(&ep.0, Op::Add, c_fd, read, C), Errno::EBADF)?;
    Ok(())
}
// ANCHOR_END: errors

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
