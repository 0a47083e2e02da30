//! `ch07-level-vs-edge`: every edge-triggered pitfall as a scenario, each
//! run in level and in edge mode (`--mode level|edge`).

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{Result, bail};
use ch02_nonblocking_io::set_nonblocking;
use ch07_level_vs_edge::{Mode, accept_all, drain};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use lab_kit::epoll::{self, Op, create1, ctl};
use lab_kit::names::{name_of, name_token};
use lab_kit::{fixtures, note, trace};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

const PACKAGE: &str = "ch07-level-vs-edge";

#[derive(Parser)]
#[command(name = PACKAGE, about = "level-triggered vs edge-triggered epoll")]
struct Cli {
    #[command(subcommand)]
    scenario: Option<Scenario>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Level,
    Edge,
}

#[derive(Args)]
struct ModeFlag {
    /// Register level-triggered (the default) or edge-triggered (EPOLLET).
    #[arg(long, value_enum, default_value = "level")]
    mode: ModeArg,
}

impl ModeFlag {
    fn mode(&self) -> Mode {
        match self.mode {
            ModeArg::Level => Mode::Level,
            ModeArg::Edge => Mode::Edge,
        }
    }
}

#[derive(Subcommand)]
enum Scenario {
    /// Read 4 of 10 bytes: level reports the rest again, edge goes silent (nothing is lost)
    PartialRead(ModeFlag),
    /// The read loop edge mode needs, and the same loop on a blocking descriptor
    DrainUntilEagain(ModeFlag),
    /// Three queued connections, one event: a single accept strands two under edge
    Accept(ModeFlag),
    /// EPOLLOUT on a Unix socket and on TCP: level on every wait; edge depends on the socket type
    Epollout(ModeFlag),
    /// An edge-triggered wait also reports the state at wait time (or nothing)
    StateAtWaitTime(ModeFlag),
    /// New data fires edge mode again (sockets; pipes since 5.14); becoming empty never fires
    NewDataRefires(ModeFlag),
    /// EPOLL_CTL_MOD of a ready descriptor reports it again, even under edge
    ModRearms(ModeFlag),
    /// A flooding peer and a quiet one: an unbounded drain starves the quiet one
    Starvation,
    /// Count the calls: 100 bytes in two parts, two buffer sizes, level vs edge
    SyscallCount,
}

fn main() -> Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(scenario) = cli.scenario else {
        lab_kit::transcript::print_scenarios(
            PACKAGE,
            "level-triggered vs edge-triggered epoll",
            &Cli::command(),
        );
        return Ok(());
    };
    trace::enable();
    match scenario {
        Scenario::PartialRead(m) => partial_read(m.mode()),
        Scenario::DrainUntilEagain(m) => drain_until_eagain(m.mode()),
        Scenario::Accept(m) => accept(m.mode()),
        Scenario::Epollout(m) => epollout(m.mode()),
        Scenario::StateAtWaitTime(m) => state_at_wait_time(m.mode()),
        Scenario::NewDataRefires(m) => new_data_refires(m.mode()),
        Scenario::ModRearms(m) => mod_rearms(m.mode()),
        Scenario::Starvation => starvation(),
        Scenario::SyscallCount => syscall_count(),
    }
}

/// Tokens for `data`, named so events print by name.
const B: u64 = 1;
const C: u64 = 2;
const LISTENER: u64 = 3;
const CLIENT: u64 = 4;
const PIPE_R: u64 = 5;

fn setup_names() {
    name_token(B, "b");
    name_token(C, "c");
    name_token(LISTENER, "listener");
}

/// A waits that looks and returns (timeout 0), with room for 8 events.
fn look(ep: &Epoll) -> Result<usize> {
    Ok(epoll::wait(
        ep,
        &mut [EpollEvent::empty(); 8],
        Some(Duration::ZERO),
    )?)
}

/// An epoll instance watching `b` for `flags` in `mode`.
fn watch(b: &UnixStream, flags: EpollFlags, mode: Mode) -> Result<Epoll> {
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    ctl(&ep.0, Op::Add, b.as_raw_fd(), mode.flags(flags), B)?;
    Ok(ep)
}

fn say_mode(mode: Mode) {
    match mode {
        Mode::Level => note("Mode: level-triggered (no EPOLLET)."),
        Mode::Edge => note("Mode: edge-triggered (EPOLLET)."),
    }
}

// ANCHOR: partial_read
fn partial_read(mode: Mode) -> Result<()> {
    setup_names();
    say_mode(mode);
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    set_nonblocking(&b)?;
    let ep = watch(&b, EpollFlags::EPOLLIN, mode)?;
    trace::write(&peer, b"0123456789")?;
    look(&ep)?;
    note("Read only 4 of the 10 bytes, then wait again:");
    trace::read(&b, &mut [0; 4])?;
    look(&ep)?;
    look(&ep)?;
    match mode {
        Mode::Level => note("Level: the 6 bytes left make b readable, so every wait says so."),
        Mode::Edge => {
            note("Edge: silence. No new data arrived, so no new event; the program stalls here.")
        }
    }
    note("Are the 6 bytes lost? Peek at the socket without taking anything:");
    trace::peek(&b, &mut [0; 64])?;
    note("Still queued. The peer writes one more byte:");
    trace::write(&peer, b"!")?;
    look(&ep)?;
    note("Now read until EAGAIN: everything, old and new, comes out.");
    drain(&b, 64, |_| {})?;
    look(&ep)?;
    Ok(())
}
// ANCHOR_END: partial_read

fn drain_until_eagain(mode: Mode) -> Result<()> {
    setup_names();
    say_mode(mode);
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    note("The right loop: b is non-blocking; read 4 bytes at a time until EAGAIN.");
    set_nonblocking(&b)?;
    let ep = watch(&b, EpollFlags::EPOLLIN, mode)?;
    trace::write(&peer, b"0123456789")?;
    look(&ep)?;
    drain(&b, 4, |_| {})?;
    note("EAGAIN: b is empty and the loop is done. The next data fires a new event.");
    note("(The 2-byte read already said so: on a stream socket, a read that returns less");
    note("than asked means the buffer is empty now (epoll(7), Q9). The EAGAIN read is the");
    note("price of a loop that does not rely on that.)");
    look(&ep)?;

    trace::blank();
    note("The same loop on c, which is still blocking (no O_NONBLOCK).");
    let (peer_c, c) = fixtures::socketpair("peer-c", "c")?;
    note("So that this scenario cannot hang, a blocking read on c gives up after 200ms:");
    trace::set_read_timeout(&c, Duration::from_millis(200))?;
    ctl(
        &ep.0,
        Op::Add,
        c.as_raw_fd(),
        mode.flags(EpollFlags::EPOLLIN),
        C,
    )?;
    trace::write(&peer_c, b"0123456789")?;
    look(&ep)?;
    drain(&c, 4, |_| {})?;
    note("The last read blocked: c was empty, so a blocking read sleeps until data");
    note("comes. Only the 200ms deadline ended it (EAGAIN); without it the loop would");
    note("wait forever, and every other connection with it. Hence O_NONBLOCK.");
    Ok(())
}

fn accept(mode: Mode) -> Result<()> {
    setup_names();
    say_mode(mode);
    let listener = fixtures::listener("listener")?;
    set_nonblocking(&listener)?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    let flags = mode.flags(EpollFlags::EPOLLIN);
    ctl(&ep.0, Op::Add, listener.as_raw_fd(), flags, LISTENER)?;
    let addr = listener.local_addr()?;
    note("Three clients connect before the server waits:");
    let _clients = [
        fixtures::connect(addr, "client-1")?,
        fixtures::connect(addr, "client-2")?,
        fixtures::connect(addr, "client-3")?,
    ];
    look(&ep)?;
    note("One accept per event:");
    let _first = trace::accept(&listener, "conn-1")?;
    look(&ep)?;
    look(&ep)?;
    match mode {
        Mode::Level => note("Level: the queue is not empty, so the listener stays readable."),
        Mode::Edge => note(
            "Edge: silence, with two connections still queued; their clients see a server\n\
             that does not answer. Only something new makes an event: a fourth client.",
        ),
    }
    let _fourth = fixtures::connect(addr, "client-4")?;
    look(&ep)?;
    note("The accept loop: accept until EAGAIN.");
    let _rest = accept_all(&listener, 2)?;
    look(&ep)?;
    Ok(())
}

/// Writes 64 KiB at a time to non-blocking `fd` until the kernel answers
/// EAGAIN. The writes that succeed are not printed; the one that returned
/// EAGAIN is. Returns the bytes written.
fn fill_until_eagain(fd: impl AsFd) -> Result<usize> {
    let chunk = [b'x'; 64 * 1024];
    let mut total = 0;
    loop {
        match nix::unistd::write(&fd, &chunk) {
            Ok(n) => total += n,
            Err(Errno::EAGAIN) => {
                trace::emit("write", || {
                    format!(
                        "write({}, {}) -> {}",
                        name_of(fd.as_fd().as_raw_fd()),
                        trace::bytes(&chunk),
                        trace::errno(Errno::EAGAIN)
                    )
                });
                return Ok(total);
            }
            Err(e) => bail!("write: {e}"),
        }
    }
}

fn epollout(mode: Mode) -> Result<()> {
    setup_names();
    name_token(CLIENT, "client");
    say_mode(mode);
    note("1. A Unix socket pair: b writes, peer reads.");
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    set_nonblocking(&b)?;
    set_nonblocking(&peer)?;
    let ep = watch(&b, EpollFlags::EPOLLOUT, mode)?;
    note("b is idle: nothing to send, and room in its send buffer.");
    look(&ep)?;
    look(&ep)?;
    match mode {
        Mode::Level => note(
            "Level: writable on every wait. A loop that keeps EPOLLOUT registered while it\n\
             has nothing to send wakes up for nothing, forever (chapter 06).",
        ),
        Mode::Edge => note("Edge: once, when registered. Nothing new happened since."),
    }
    note("b sends a little and the peer reads it. b's buffer was never near full:");
    trace::write(&b, b"hello")?;
    trace::read(&peer, &mut [0; 64])?;
    look(&ep)?;
    look(&ep)?;
    if mode == Mode::Edge {
        note("Edge, Unix socket: one event. Each time the peer consumes data and b has room,");
        note("the kernel signals b's waiters (unix_write_space, net/unix/af_unix.c).");
    }
    note("Fill b's send buffer (the writes that succeed are not printed):");
    fill_until_eagain(&b)?;
    note("Full: not writable, in either mode.");
    look(&ep)?;
    note("The peer reads everything (quietly), which makes room:");
    let drained = trace::quietly(|| drain(&peer, 64 * 1024, |_| {}))?;
    if drained.bytes == 0 {
        bail!("the peer found nothing to read");
    }
    look(&ep)?;
    if mode == Mode::Edge {
        note("Edge: room appeared, and that is news: one event.");
        look(&ep)?;
    }
    ctl(&ep.0, Op::Del, b.as_raw_fd(), EpollFlags::empty(), 0)?;

    trace::blank();
    note("2. TCP over loopback: client writes, conn reads.");
    let listener = fixtures::listener("listener")?;
    let client = fixtures::connect(listener.local_addr()?, "client")?;
    let conn = trace::accept(&listener, "conn")?;
    set_nonblocking(&client)?;
    note("conn's reads block, so data is read once it has crossed the network stack;");
    note("a 5s receive timeout guarantees that nothing here can hang:");
    trace::set_read_timeout(&conn, Duration::from_secs(5))?;
    let watched = mode.flags(EpollFlags::EPOLLOUT);
    ctl(&ep.0, Op::Add, client.as_raw_fd(), watched, CLIENT)?;
    look(&ep)?;
    look(&ep)?;
    note("client sends a little and conn reads it, as in part 1. This wait allows 100ms");
    note("for the acknowledgement to come back, in case it would wake anything:");
    trace::write(&client, b"hello")?;
    trace::read(&conn, &mut [0; 64])?;
    epoll::wait(
        &ep,
        &mut [EpollEvent::empty(); 8],
        Some(Duration::from_millis(100)),
    )?;
    if mode == Mode::Edge {
        note("Edge, TCP: nothing. TCP signals room only to a writer that found its buffer");
        note("full (SOCK_NOSPACE, tcp_check_space in net/ipv4/tcp_input.c); the peer");
        note("consuming data is not enough.");
    }
    note("Fill client's send buffer:");
    let written = fill_until_eagain(&client)?;
    note("conn reads all of it (quietly). The acknowledgements free client's buffer; the");
    note("wait below sleeps until the kernel signals room (5s is only a limit):");
    read_exactly(&conn, written)?;
    epoll::wait(
        &ep,
        &mut [EpollEvent::empty(); 8],
        Some(Duration::from_secs(5)),
    )?;
    if mode == Mode::Edge {
        note("Edge, TCP: room after a full buffer is news: one event.");
        look(&ep)?;
    }
    Ok(())
}

/// Reads exactly `len` bytes from `fd` (which has a receive timeout),
/// quietly. A read that times out is an error, not a hang.
fn read_exactly(fd: impl AsFd, len: usize) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < len {
        let want = buf.len().min(len - got);
        match trace::quietly(|| trace::read(&fd, &mut buf[..want])) {
            Ok(0) => bail!("end of file after {got} of {len} bytes"),
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(e) => bail!("read after {got} of {len} bytes: {e}"),
        }
    }
    Ok(())
}

/// An edge-triggered wait also asks the file for its state at wait time.
fn state_at_wait_time(mode: Mode) -> Result<()> {
    setup_names();
    say_mode(mode);
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    set_nonblocking(&b)?;
    let ep = watch(&b, EpollFlags::EPOLLIN, mode)?;
    trace::write(&peer, b"x")?;
    note("The write's callback put b on the ready list. Read the byte before waiting:");
    trace::read(&b, &mut [0; 8])?;
    note("The wait takes b off the ready list and asks the socket for its state now:");
    note("nothing to read, so nothing to report. The same in both modes.");
    look(&ep)?;

    trace::blank();
    note("c is watched for reading and writing. A new socket has room to write:");
    let (peer_c, c) = fixtures::socketpair("peer-c", "c")?;
    set_nonblocking(&c)?;
    let both = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT;
    ctl(&ep.0, Op::Add, c.as_raw_fd(), mode.flags(both), C)?;
    look(&ep)?;
    look(&ep)?;
    note("Data arrives. The callback carries only the news \"readable\" (EPOLLIN); the");
    note("wait asks c and reports everything true now, in both modes:");
    trace::write(&peer_c, b"data")?;
    look(&ep)?;
    look(&ep)?;
    match mode {
        Mode::Level => note("Level: c goes back on the ready list after each report."),
        Mode::Edge => note(
            "Edge: reported once. What EPOLLET changes is only this: after reporting c,\n\
             the wait does not put it back on the ready list. Only the next callback does.",
        ),
    }
    Ok(())
}

fn new_data_refires(mode: Mode) -> Result<()> {
    setup_names();
    say_mode(mode);
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    set_nonblocking(&b)?;
    let ep = watch(&b, EpollFlags::EPOLLIN, mode)?;
    trace::write(&peer, b"first")?;
    look(&ep)?;
    note("Do not read. Wait again:");
    look(&ep)?;
    note("More data arrives while the first 5 bytes are still queued:");
    trace::write(&peer, b"second")?;
    look(&ep)?;
    if mode == Mode::Edge {
        note("Edge fires on every new arrival, not only on empty -> non-empty.");
    }
    drain(&b, 64, |_| {})?;
    note("b went from non-empty to empty. That is never an event, in either mode:");
    look(&ep)?;

    trace::blank();
    note("The same with a pipe. Version note: on Linux 5.5 to 5.13, a write to a pipe");
    note("that still held data did not wake an edge-triggered waiter (fixed in 5.14,");
    note("\"pipe: make pipe writes always wake up readers\"). Sockets were never affected.");
    name_token(PIPE_R, "pipe-r");
    let (pipe_r, pipe_w) = fixtures::pipe("pipe-r", "pipe-w")?;
    set_nonblocking(&pipe_r)?;
    let flags = mode.flags(EpollFlags::EPOLLIN);
    ctl(&ep.0, Op::Add, pipe_r.as_raw_fd(), flags, PIPE_R)?;
    trace::write(&pipe_w, b"first")?;
    look(&ep)?;
    look(&ep)?;
    trace::write(&pipe_w, b"second")?;
    look(&ep)?;
    drain(&pipe_r, 64, |_| {})?;
    look(&ep)?;
    Ok(())
}

fn mod_rearms(mode: Mode) -> Result<()> {
    setup_names();
    say_mode(mode);
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    set_nonblocking(&b)?;
    let flags = mode.flags(EpollFlags::EPOLLIN);
    let ep = watch(&b, EpollFlags::EPOLLIN, mode)?;
    trace::write(&peer, b"unread")?;
    look(&ep)?;
    look(&ep)?;
    note("EPOLL_CTL_MOD, with the very same flags:");
    ctl(&ep.0, Op::Mod, b.as_raw_fd(), flags, B)?;
    look(&ep)?;
    note("MOD (like ADD) asks the file for its state at once and queues the entry if it");
    note("is ready, edge-triggered or not. That is how EPOLLONESHOT entries are re-armed.");
    look(&ep)?;
    Ok(())
}

/// How many 4 KiB reads a connection may have per turn in the fair loop.
const BUDGET: usize = 4;

// ANCHOR: starvation
fn starvation() -> Result<()> {
    name_token(B, "flood");
    name_token(C, "quiet");
    note("Edge-triggered. flood's peer sends faster than we read: here, scripted, it");
    note("writes 4 KiB more each time we read 4 KiB. quiet's peer sends one line.");
    let (flood_peer, flood) = fixtures::socketpair("flood-peer", "flood")?;
    let (quiet_peer, quiet) = fixtures::socketpair("quiet-peer", "quiet")?;
    set_nonblocking(&flood)?;
    set_nonblocking(&quiet)?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLET;
    ctl(&ep.0, Op::Add, flood.as_raw_fd(), flags, B)?;
    ctl(&ep.0, Op::Add, quiet.as_raw_fd(), flags, C)?;
    let chunk = [b'f'; 4096];
    trace::write(&flood_peer, &chunk)?;
    trace::write(&quiet_peer, b"hello?\n")?;
    let mut events = [EpollEvent::empty(); 8];
    let n = epoll::wait(&ep, &mut events, Some(Duration::ZERO))?;
    let order: Vec<u64> = events[..n].iter().map(|e| e.data()).collect();

    trace::blank();
    note("1. Unbounded: drain each ready connection until EAGAIN, in event order.");
    note("   flood never reaches EAGAIN; we give up after 10000 reads (quietly):");
    let mut flood_reads = 0;
    let mut quiet_served = false;
    trace::quietly(|| -> Result<()> {
        for &token in &order {
            let fd = if token == B { &flood } else { &quiet };
            let mut buf = [0u8; 4096];
            loop {
                if token == B && flood_reads == 10_000 {
                    break;
                }
                match trace::read(fd, &mut buf) {
                    Ok(n) if n > 0 => {
                        if token == B {
                            flood_reads += 1;
                            trace::write(&flood_peer, &chunk)?;
                        } else {
                            quiet_served = true;
                        }
                    }
                    Ok(_) | Err(Errno::EAGAIN) => break,
                    Err(e) => bail!("read: {e}"),
                }
            }
            if token == B && flood_reads == 10_000 {
                break;
            }
        }
        Ok(())
    })?;
    trace::tally("reads of flood", flood_reads);
    trace::tally("quiet served", quiet_served);

    trace::blank();
    note(&format!(
        "2. Fair: at most {BUDGET} reads per connection per turn. A connection that used its\n\
         budget without reaching EAGAIN goes to the back of our own ready list (edge mode\n\
         will not remind us: it is still readable, no news). A turn does not wait while\n\
         our list is not empty."
    ));
    // ANCHOR: fair
    let mut our_ready: std::collections::VecDeque<u64> = order.iter().copied().collect();
    let mut flood_reads_before_quiet = 0;
    let mut served_order = Vec::new();
    while let Some(token) = our_ready.pop_front() {
        let fd = if token == B { &flood } else { &quiet };
        let mut buf = [0u8; 4096];
        let mut reads = 0;
        let mut reached_eagain = false;
        while reads < BUDGET {
            match trace::read(fd, &mut buf) {
                Ok(n) if n > 0 => {
                    reads += 1;
                    if token == B {
                        flood_reads_before_quiet += 1;
                        trace::quietly(|| trace::write(&flood_peer, &chunk))?;
                    }
                }
                Ok(_) | Err(Errno::EAGAIN) => {
                    reached_eagain = true;
                    break;
                }
                Err(e) => bail!("read: {e}"),
            }
        }
        served_order.push(token);
        if !reached_eagain {
            our_ready.push_back(token);
        }
        if token == C {
            break;
        }
    }
    // ANCHOR_END: fair
    trace::tally(
        "reads of flood before quiet was served",
        flood_reads_before_quiet,
    );
    note("The loop goes on taking turns; quiet never waits behind more than one budget.");
    Ok(())
}
// ANCHOR_END: starvation

/// One run of the syscall count: 100 bytes queued as two 50-byte writes,
/// read with `chunk`-byte reads. Level: one read per wait, as a level-
/// triggered loop may. Edge: read until EAGAIN after each event. Counts the
/// calls until all 100 bytes are read and the loop knows it (edge: the
/// EAGAIN read) and prints them; the wait that would then sleep is not
/// counted, in either mode.
fn count_one(mode: Mode, chunk: usize) -> Result<(u64, u64)> {
    let (peer, b) = fixtures::socketpair("peer", "b")?;
    set_nonblocking(&b)?;
    let ep = watch(&b, EpollFlags::EPOLLIN, mode)?;
    trace::write(&peer, &[b'a'; 50])?;
    trace::write(&peer, &[b'b'; 50])?;
    let (waits_before, reads_before) = (trace::count_of("epoll_wait"), trace::count_of("read"));
    let mut got = 0;
    let mut buf = vec![0u8; chunk];
    while got < 100 {
        if look(&ep)? == 0 {
            bail!("no event with {} bytes unread", 100 - got);
        }
        match mode {
            Mode::Level => got += trace::read(&b, &mut buf)?,
            Mode::Edge => got += drain(&b, chunk, |_| {})?.bytes,
        }
    }
    Ok((
        trace::count_of("epoll_wait") - waits_before,
        trace::count_of("read") - reads_before,
    ))
}

fn syscall_count() -> Result<()> {
    name_token(B, "b");
    note("\"Edge-triggered saves system calls.\" Count them. Each run: the peer writes");
    note("50 + 50 bytes before the first wait; level reads once per wait, edge reads");
    note("until EAGAIN. Counted: calls until all 100 bytes are read and the loop knows it.");
    let mut table = Vec::new();
    for chunk in [50, 4096] {
        for mode in [Mode::Level, Mode::Edge] {
            trace::blank();
            note(&format!("{mode:?}, {chunk}-byte buffer:"));
            let (waits, reads) = count_one(mode, chunk)?;
            table.push((mode, chunk, waits, reads));
        }
    }
    trace::blank();
    for (mode, chunk, waits, reads) in table {
        trace::tally(
            &format!("{mode:?}, {chunk}-byte buffer: epoll_wait + read"),
            format!("{waits} + {reads} = {}", waits + reads),
        );
    }
    note("Edge pays for the read that returns EAGAIN. It saves calls only when the");
    note("reader would otherwise wait again between reads of data that is already there.");
    Ok(())
}
