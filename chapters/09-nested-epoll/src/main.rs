//! `ch09-nested-epoll`: an epoll instance is a file that poll, select and
//! other epoll instances can watch; the modes of both edges of a nest; the
//! checks the kernel makes when one instance is added to another (cycles,
//! depth); and why anyone nests at all (a library with its own loop).

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ch09_nested_epoll::{Dispatch, Inbox, Mode};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use lab_kit::epoll::{self, Op, create1, ctl};
use lab_kit::names::name_token;
use lab_kit::{fixtures, note, trace};
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::select::FdSet;

const PACKAGE: &str = "ch09-nested-epoll";
const ABOUT: &str =
    "nested epoll: an epoll fd is pollable, outer vs inner modes, cycles, depth, composing loops";

#[derive(Parser)]
#[command(name = PACKAGE, about = ABOUT)]
struct Cli {
    #[command(subcommand)]
    scenario: Option<Scenario>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Level,
    Edge,
}

impl ModeArg {
    fn mode(self) -> Mode {
        match self {
            ModeArg::Level => Mode::Level,
            ModeArg::Edge => Mode::Edge,
        }
    }
}

#[derive(Args)]
struct MatrixFlags {
    /// How the outer instance watches the inner one (both if not given).
    #[arg(long, value_enum)]
    outer: Option<ModeArg>,
    /// How the inner instance watches the socket (both if not given).
    #[arg(long, value_enum)]
    inner: Option<ModeArg>,
}

#[derive(Args)]
struct ModeFlag {
    /// How the main loop watches the library's fd: level-triggered (the
    /// default) or edge-triggered (EPOLLET).
    #[arg(long, value_enum, default_value = "level")]
    mode: ModeArg,
}

#[derive(Subcommand)]
enum Scenario {
    /// poll, select and another epoll all see an epoll fd readable; never writable; looking consumes nothing
    EpollIsPollable,
    /// Outer LT/ET x inner LT/ET, the kernel selftest's cases 17-32 in small
    Matrix(MatrixFlags),
    /// e1 inside e2 inside e1 is ELOOP; an epoll inside itself is EINVAL; a diamond is allowed
    Cycle,
    /// A chain of epoll instances, one more each time, until the kernel refuses
    DepthLimit,
    /// A library with its own epoll hands out one fd; dispatch one event under an ET edge and it stalls
    Compose(ModeFlag),
}

fn main() -> std::process::ExitCode {
    lab_kit::cli::run_main(run)
}

fn run() -> Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(scenario) = cli.scenario else {
        lab_kit::transcript::print_scenarios(PACKAGE, ABOUT, &Cli::command());
        return Ok(());
    };
    trace::enable();
    match scenario {
        Scenario::EpollIsPollable => epoll_is_pollable(),
        Scenario::Matrix(flags) => matrix(flags),
        Scenario::Cycle => cycle(),
        Scenario::DepthLimit => depth_limit(),
        Scenario::Compose(m) => compose(m.mode.mode()),
    }
}

/// Tokens for `data`, named so events print by name.
const SOCK: u64 = 1;
const INNER: u64 = 2;
const STOP: u64 = 3;
const INBOX: u64 = 4;
const CONN_A: u64 = 5;
const CONN_B: u64 = 6;

/// A wait that looks and returns (timeout 0), with room for `max` events.
fn look(ep: &Epoll, max: usize) -> Result<usize> {
    let mut events = vec![EpollEvent::empty(); max];
    Ok(epoll::wait(ep, &mut events, Some(Duration::ZERO))?)
}

/// `poll([fd: POLLIN], timeout=0)`, printed; returns how many were ready.
fn poll_in(fd: impl AsFd, flags: PollFlags) -> Result<i32> {
    let mut fds = [PollFd::new(fd.as_fd(), flags)];
    Ok(trace::poll(&mut fds, PollTimeout::ZERO)?)
}

// ---------------------------------------------------------------------------
// epoll-is-pollable

// ANCHOR: pollable
fn epoll_is_pollable() -> Result<()> {
    name_token(SOCK, "sock");
    name_token(INNER, "inner");
    lab_kit::names::set_baseline()?;
    let (peer, sock) = fixtures::socketpair("peer", "sock")?;
    let inner = create1(EpollCreateFlags::EPOLL_CLOEXEC, "inner")?;
    ctl(
        &inner.0,
        Op::Add,
        sock.as_raw_fd(),
        EpollFlags::EPOLLIN,
        SOCK,
    )?;
    note("An outer instance watches the inner one, asking for input and output:");
    let outer = create1(EpollCreateFlags::EPOLL_CLOEXEC, "outer")?;
    let both = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT;
    ctl(&outer.0, Op::Add, inner.0.as_raw_fd(), both, INNER)?;
    note("Nothing has arrived. Three ways to ask whether inner is ready:");
    poll_in(&inner.0, PollFlags::POLLIN | PollFlags::POLLOUT)?;
    select_read_write(&inner.0)?;
    look(&outer, 8)?;
    trace::blank();
    note("The peer writes; sock becomes readable. The same three questions:");
    trace::write(&peer, b"hello")?;
    poll_in(&inner.0, PollFlags::POLLIN | PollFlags::POLLOUT)?;
    select_read_write(&inner.0)?;
    look(&outer, 8)?;
    note("Did looking take anything from inner? Its own wait, twice:");
    look(&inner, 8)?;
    look(&inner, 8)?;
    trace::read(&sock, &mut [0; 64])?;
    note("sock is empty now. Is inner still readable?");
    poll_in(&inner.0, PollFlags::POLLIN)?;
    trace::blank();
    note("A subtler case. Data arrives and is read before anyone waits on inner.");
    note("The arrival's callback linked sock onto inner's ready list, and no wait");
    note("has taken it off. Is inner readable?");
    trace::write(&peer, b"x")?;
    trace::read(&sock, &mut [0; 64])?;
    look(&outer, 8)?;
    poll_in(&inner.0, PollFlags::POLLIN)?;
    note("Polling an epoll fd does not stop at \"the ready list has entries\":");
    note("it asks each entry's file again (ep_eventpoll_poll -> ep_item_poll), and");
    note("drops the entries that are not really ready.");
    Ok(())
}
// ANCHOR_END: pollable

/// `select` with `fd` in both the read and the write set, timeout 0.
fn select_read_write(fd: impl AsFd) -> Result<i32> {
    let nfds = fd.as_fd().as_raw_fd() + 1;
    let mut read = FdSet::new();
    read.insert(fd.as_fd());
    let mut write = FdSet::new();
    write.insert(fd.as_fd());
    Ok(trace::select(
        nfds,
        Some(&mut read),
        Some(&mut write),
        Some(Duration::ZERO),
    )?)
}

// ---------------------------------------------------------------------------
// matrix

/// One nest: `peer` writes to `sock`, `inner` watches `sock`, `outer`
/// watches `inner`, each edge in its own mode.
struct Nest {
    peer: UnixStream,
    _sock: UnixStream,
    inner: Epoll,
    outer: Epoll,
}

/// Builds a [`Nest`]; every call printed.
fn nest(outer_mode: Mode, inner_mode: Mode) -> Result<Nest> {
    let (peer, sock) = fixtures::socketpair("peer", "sock")?;
    let inner = create1(EpollCreateFlags::EPOLL_CLOEXEC, "inner")?;
    let flags = inner_mode.flags(EpollFlags::EPOLLIN);
    ctl(&inner.0, Op::Add, sock.as_raw_fd(), flags, SOCK)?;
    let outer = create1(EpollCreateFlags::EPOLL_CLOEXEC, "outer")?;
    let flags = outer_mode.flags(EpollFlags::EPOLLIN);
    ctl(&outer.0, Op::Add, inner.0.as_raw_fd(), flags, INNER)?;
    Ok(Nest {
        peer,
        _sock: sock,
        inner,
        outer,
    })
}

/// Builds a [`Nest`] quietly and says so on one `[setup]` line.
fn quiet_nest(outer_mode: Mode, inner_mode: Mode) -> Result<Nest> {
    let built = trace::quietly(|| nest(outer_mode, inner_mode))?;
    trace::view("setup", "setup", || {
        format!(
            "socketpair+epoll_create1(inner)+ADD(sock, {})\
             +epoll_create1(outer)+ADD(inner, {}) => ok",
            epoll::epoll_flags(inner_mode.flags(EpollFlags::EPOLLIN)),
            epoll::epoll_flags(outer_mode.flags(EpollFlags::EPOLLIN)),
        )
    });
    Ok(built)
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Level => "level",
        Mode::Edge => "edge",
    }
}

/// The selftest numbers (tools/testing/selftests/filesystems/epoll/
/// epoll_wakeup_test.c) of one case: two outer waits, poll + wait twice,
/// two threads in epoll_wait, one in epoll_wait and one in poll.
fn selftests(outer: Mode, inner: Mode) -> [u32; 4] {
    let offset = match (outer, inner) {
        (Mode::Level, Mode::Level) => 0,
        (Mode::Level, Mode::Edge) => 1,
        (Mode::Edge, Mode::Level) => 2,
        (Mode::Edge, Mode::Edge) => 3,
    };
    [17 + offset, 21 + offset, 25 + offset, 29 + offset]
}

/// What one case of the matrix saw.
struct CaseResult {
    outer: Mode,
    inner: Mode,
    waits: [usize; 2],
    inner_wait: usize,
    outer_after_inner: usize,
    poll_waits: [(i32, usize); 2],
    two_waiters: usize,
    waiter_and_poller: usize,
}

fn matrix(flags: MatrixFlags) -> Result<()> {
    name_token(SOCK, "sock");
    name_token(INNER, "inner");
    name_token(STOP, "stop");
    let outers = flags
        .outer
        .map_or(vec![Mode::Level, Mode::Edge], |m| vec![m.mode()]);
    let inners = flags
        .inner
        .map_or(vec![Mode::Level, Mode::Edge], |m| vec![m.mode()]);
    note("outer watches inner, inner watches sock; the peer writes one byte.");
    note("Each case is run like the kernel's selftest (epoll_wakeup_test.c), on");
    note("a fresh nest each time.");
    let mut results = Vec::new();
    for &outer in &outers {
        for &inner in &inners {
            trace::blank();
            results.push(matrix_case(outer, inner)?);
        }
    }
    trace::blank();
    note("One line per case, by selftest number: the two outer waits, the inner");
    note("wait, the outer wait after it | poll+wait, twice | waiters (of 2) that");
    note("got the event | the same, one of them in poll.");
    for r in &results {
        trace::view("matrix", "matrix", || {
            let t = selftests(r.outer, r.inner);
            format!(
                "outer {}, inner {} => {}: {}, {}; inner {}; outer {} \
                 | {}: {}+{}, {}+{} | {}: {} | {}: {}",
                mode_name(r.outer),
                mode_name(r.inner),
                t[0],
                r.waits[0],
                r.waits[1],
                r.inner_wait,
                r.outer_after_inner,
                t[1],
                r.poll_waits[0].0,
                r.poll_waits[0].1,
                r.poll_waits[1].0,
                r.poll_waits[1].1,
                t[2],
                r.two_waiters,
                t[3],
                r.waiter_and_poller,
            )
        });
    }
    Ok(())
}

// ANCHOR: matrix_case
fn matrix_case(outer_mode: Mode, inner_mode: Mode) -> Result<CaseResult> {
    let t = selftests(outer_mode, inner_mode);
    note(&format!(
        "Case: outer {}, inner {}.",
        mode_name(outer_mode),
        mode_name(inner_mode)
    ));
    note(&format!(
        "epoll{}: two outer waits, then the inner wait, then the outer one again.",
        t[0]
    ));
    let n = nest(outer_mode, inner_mode)?;
    trace::write(&n.peer, b"w")?;
    let waits = [look(&n.outer, 1)?, look(&n.outer, 1)?];
    let inner_wait = look(&n.inner, 1)?;
    let outer_after_inner = look(&n.outer, 1)?;

    note(&format!(
        "epoll{}: poll on outer, then an outer wait; twice.",
        t[1]
    ));
    let n = quiet_nest(outer_mode, inner_mode)?;
    trace::write(&n.peer, b"w")?;
    let mut poll_waits = [(0, 0); 2];
    for pw in &mut poll_waits {
        let polled = poll_in(&n.outer.0, PollFlags::POLLIN)?;
        *pw = (polled, look(&n.outer, 1)?);
    }

    note(&format!(
        "epoll{}: two threads asleep in epoll_wait(outer); then one write.",
        t[2]
    ));
    let two_waiters = waiters(outer_mode, inner_mode, Waiter::EpollWait)?;
    note(&format!(
        "epoll{}: one thread in epoll_wait(outer), one in poll(outer) then",
        t[3]
    ));
    note("epoll_wait(outer, timeout=0); then one write.");
    let waiter_and_poller = waiters(outer_mode, inner_mode, Waiter::PollThenWait)?;
    Ok(CaseResult {
        outer: outer_mode,
        inner: inner_mode,
        waits,
        inner_wait,
        outer_after_inner,
        poll_waits,
        two_waiters,
        waiter_and_poller,
    })
}
// ANCHOR_END: matrix_case

/// How the second of two waiting threads waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiter {
    /// `epoll_wait(outer, timeout=-1)`, like the first.
    EpollWait,
    /// `poll([outer: POLLIN], -1)`, then `epoll_wait(outer, timeout=0)`.
    PollThenWait,
}

/// How long to watch, after the first waiter returned, for another one. A
/// bounded wait used only to see that nothing *more* happens: a waiter the
/// kernel woke returns in microseconds.
const MORE_WINDOW: Duration = Duration::from_millis(100);

/// Two threads wait on a fresh nest's outer instance (the first always in
/// `epoll_wait`, the second as `second` says); once both are asleep in the
/// kernel the peer writes one byte. Returns how many of them got inner's
/// event. A `stop` socket, also watched by outer, ends the waits of those
/// the event did not wake.
fn waiters(outer_mode: Mode, inner_mode: Mode, second: Waiter) -> Result<usize> {
    let n = quiet_nest(outer_mode, inner_mode)?;
    let (stop_peer, stop) = trace::quietly(|| -> Result<(UnixStream, UnixStream)> {
        let (stop_peer, stop) = fixtures::socketpair("stop-peer", "stop")?;
        ctl(
            &n.outer.0,
            Op::Add,
            stop.as_raw_fd(),
            EpollFlags::EPOLLIN,
            STOP,
        )?;
        Ok((stop_peer, stop))
    })?;
    trace::view("setup", "setup", || {
        "socketpair(stop-peer, stop)+epoll_ctl(outer, ADD, stop, EPOLLIN) => ok".to_string()
    });
    let outer = std::sync::Arc::new(n.outer);
    let (done, results) = mpsc::channel::<Vec<u64>>();
    let mut threads = Vec::new();
    let mut tids = Vec::new();
    for (i, kind) in [Waiter::EpollWait, second].into_iter().enumerate() {
        let outer = outer.clone();
        let done = done.clone();
        let (tid_send, tid) = mpsc::channel();
        threads.push(
            std::thread::Builder::new()
                .name(format!("waiter-{}", i + 1))
                .spawn(move || {
                    let _ = tid_send.send(nix::unistd::gettid());
                    let _ = done.send(wait_once(&outer, kind));
                })?,
        );
        tids.push(tid.recv()?);
    }
    for tid in &tids {
        lab_kit::proc::wait_until_asleep(*tid, Duration::from_secs(2), |a| {
            a.is_epoll_wait() || a.number == libc::SYS_poll || a.number == libc::SYS_ppoll
        })
        .context("a waiter never fell asleep in epoll_wait or poll")?;
    }
    trace::view("proc", "proc", || {
        let second = match second {
            Waiter::EpollWait => "epoll_wait",
            Waiter::PollThenWait => "poll",
        };
        format!("waiter-1 asleep in epoll_wait, waiter-2 asleep in {second} => yes")
    });
    trace::write(&n.peer, b"w")?;
    let mut got = Vec::new();
    got.push(
        results
            .recv_timeout(Duration::from_secs(2))
            .context("no waiter returned within 2 s of the write")?,
    );
    // Anyone else the kernel woke returns now; a waiter still asleep after
    // this is one the event did not wake.
    if let Ok(more) = results.recv_timeout(MORE_WINDOW) {
        got.push(more);
    }
    trace::quietly(|| trace::write(&stop_peer, b"s"))?;
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a waiter panicked"))?;
    }
    got.extend(results.try_iter());
    drop(stop);
    let woken = got.iter().filter(|tokens| tokens.contains(&INNER)).count();
    trace::tally("waiters whose wait returned inner's event", woken);
    Ok(woken)
}

/// One waiter's wait on `outer`: the tokens its epoll_wait returned.
fn wait_once(outer: &Epoll, kind: Waiter) -> Vec<u64> {
    let mut events = [EpollEvent::empty(); 2];
    let n = match kind {
        Waiter::EpollWait => outer.wait(&mut events, nix::sys::epoll::EpollTimeout::NONE),
        Waiter::PollThenWait => {
            let mut fds = [PollFd::new(outer.0.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => outer.wait(&mut events, nix::sys::epoll::EpollTimeout::ZERO),
                Err(e) => Err(e),
            }
        }
    };
    events[..n.unwrap_or(0)].iter().map(|e| e.data()).collect()
}

// ---------------------------------------------------------------------------
// cycle

// ANCHOR: cycle
fn cycle() -> Result<()> {
    name_token(SOCK, "sock");
    let e1 = create1(EpollCreateFlags::EPOLL_CLOEXEC, "e1")?;
    let e2 = create1(EpollCreateFlags::EPOLL_CLOEXEC, "e2")?;
    let e3 = create1(EpollCreateFlags::EPOLL_CLOEXEC, "e3")?;
    for (ep, name) in [(&e1, "e1"), (&e2, "e2"), (&e3, "e3")] {
        name_token(token_of(ep), name);
    }
    note("e1 inside e2:");
    add(&e2, &e1)?;
    note("e2 inside e1 would close a loop (e1 -> e2 -> e1):");
    let _ = add(&e1, &e2);
    note("A longer loop: e2 inside e3, then e3 inside e1 (e1 -> e3 -> e2 -> e1):");
    add(&e3, &e2)?;
    let _ = add(&e1, &e3);
    note("And an epoll instance inside itself:");
    let _ = add(&e1, &e1);
    trace::blank();
    note("A diamond is not a loop: top watches left and right, and both watch");
    note("bottom. Two paths lead to bottom, none leads back to top.");
    let [top, left, right, bottom] = ["top", "left", "right", "bottom"]
        .map(|name| create1(EpollCreateFlags::EPOLL_CLOEXEC, name));
    let (top, left, right, bottom) = (top?, left?, right?, bottom?);
    for (ep, name) in [(&left, "left"), (&right, "right"), (&bottom, "bottom")] {
        name_token(token_of(ep), name);
    }
    add(&left, &bottom)?;
    add(&right, &bottom)?;
    add(&top, &left)?;
    add(&top, &right)?;
    let (peer, sock) = fixtures::socketpair("peer", "sock")?;
    ctl(
        &bottom.0,
        Op::Add,
        sock.as_raw_fd(),
        EpollFlags::EPOLLIN,
        SOCK,
    )?;
    note("One write under bottom. What does top report?");
    trace::write(&peer, b"w")?;
    look(&top, 8)?;
    Ok(())
}
// ANCHOR_END: cycle

/// The token an epoll instance is registered under: its own number, named
/// after it, so an event from it prints by name.
fn token_of(ep: &Epoll) -> u64 {
    ep.0.as_raw_fd() as u64 + 1000
}

/// `epoll_ctl(outer, ADD, inner, EPOLLIN)`, printed.
fn add(outer: &Epoll, inner: &Epoll) -> nix::Result<()> {
    ctl(
        &outer.0,
        Op::Add,
        inner.0.as_raw_fd(),
        EpollFlags::EPOLLIN,
        token_of(inner),
    )
}

// ---------------------------------------------------------------------------
// depth-limit

/// More than the kernel has ever allowed; the loop stops at the refusal.
const MOST_INSTANCES: usize = 12;

// ANCHOR: depth_limit
fn depth_limit() -> Result<()> {
    name_token(SOCK, "sock");
    note("ep-1 watches a socket; each new instance watches the one before it.");
    let (peer, sock) = fixtures::socketpair("peer", "sock")?;
    let first = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep-1")?;
    name_token(token_of(&first), "ep-1");
    ctl(
        &first.0,
        Op::Add,
        sock.as_raw_fd(),
        EpollFlags::EPOLLIN,
        SOCK,
    )?;
    let mut chain = vec![first];
    loop {
        if chain.len() == MOST_INSTANCES {
            bail!("the kernel accepted a chain of {MOST_INSTANCES} epoll instances");
        }
        let name = format!("ep-{}", chain.len() + 1);
        let next = create1(EpollCreateFlags::EPOLL_CLOEXEC, &name)?;
        name_token(token_of(&next), &name);
        let below = chain.last().expect("the chain starts with ep-1");
        match add(&next, below) {
            Ok(()) => chain.push(next),
            Err(_) => break,
        }
    }
    trace::tally("epoll instances in the chain (ep-1 .. top)", chain.len());
    trace::tally("epoll-in-epoll links in the chain", chain.len() - 1);
    note("Does the accepted chain work? A write to sock, then a wait on the top:");
    trace::write(&peer, b"w")?;
    look(chain.last().expect("at least ep-1"), 8)?;
    Ok(())
}
// ANCHOR_END: depth_limit

// ---------------------------------------------------------------------------
// compose

// ANCHOR: compose
fn compose(mode: Mode) -> Result<()> {
    match mode {
        Mode::Level => note("The main loop watches the library's fd level-triggered."),
        Mode::Edge => note("The main loop watches the library's fd edge-triggered (EPOLLET)."),
    }
    note("The library: its own epoll instance and two connections it reads.");
    let mut inbox = Inbox::new("inbox")?;
    let (peer_a, conn_a) = fixtures::socketpair("peer-a", "conn-a")?;
    let (peer_b, conn_b) = fixtures::socketpair("peer-b", "conn-b")?;
    inbox.add(CONN_A, "conn-a", conn_a)?;
    inbox.add(CONN_B, "conn-b", conn_b)?;
    note("The main loop: its own instance, and the one fd the library hands out.");
    name_token(INBOX, "inbox");
    let main = create1(EpollCreateFlags::EPOLL_CLOEXEC, "main")?;
    let flags = mode.flags(EpollFlags::EPOLLIN);
    ctl(&main.0, Op::Add, inbox.fd().as_raw_fd(), flags, INBOX)?;
    trace::write(&peer_a, b"a1")?;
    trace::write(&peer_b, b"b1")?;
    look(&main, 8)?;
    note("inbox is readable: the main loop calls dispatch(). This one handles one");
    note("event and returns:");
    inbox.dispatch(Dispatch::OneEvent)?;
    look(&main, 8)?;
    match mode {
        Mode::Level => {
            note("Level: the main loop is told again, and dispatches again.");
            inbox.dispatch(Dispatch::OneEvent)?;
            look(&main, 8)?;
        }
        Mode::Edge => {
            note("Edge: silence. Is conn-b's message still there? Ask the library's fd,");
            note("and peek at conn-b:");
            poll_in(inbox.fd(), PollFlags::POLLIN)?;
            if let Some(conn_b) = inbox.connection(CONN_B) {
                trace::peek(conn_b, &mut [0; 64])?;
            }
            note("Something new inside the library: one more message on conn-a.");
            trace::write(&peer_a, b"a2")?;
            look(&main, 8)?;
            note("The fix: dispatch drains its own ready list (timeout 0, until 0).");
            inbox.dispatch(Dispatch::Drain)?;
            look(&main, 8)?;
        }
    }
    drop((peer_a, peer_b));
    Ok(())
}
// ANCHOR_END: compose
