//! `ch10-fd-lifetimes`: what epoll registers (an open file description, by
//! (file, number)), and the bugs that come from forgetting it: events after
//! close, numbers reused, stale events in a batch, accept under EMFILE.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ch02_nonblocking_io::set_nonblocking;
use ch10_fd_lifetimes::GenToken;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use lab_kit::epoll::{self, Op, create1, ctl, show_interest_list};
use lab_kit::names::{name, name_of, name_token, number_of, set_baseline};
use lab_kit::trace::{emit, tally, view};
use lab_kit::{fixtures, note, trace};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

const PACKAGE: &str = "ch10-fd-lifetimes";

#[derive(Parser)]
#[command(name = PACKAGE, about = "descriptor lifetimes: close vs DEL, dup, fork, reuse, EMFILE")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TokenMode {
    RawFd,
    Generation,
}

#[derive(Args)]
struct TokenFlag {
    /// What the loop puts in `data`: the raw descriptor number, or a
    /// (number, generation) token.
    #[arg(long, value_enum, default_value = "raw-fd")]
    mode: TokenMode,
}

#[derive(Subcommand)]
enum Command {
    /// close of the only descriptor removes the registration; DEL afterwards is EBADF
    CloseOnlyCopy,
    /// close while a dup lives: events go on, DEL is EBADF or ENOENT; then DEL before close
    CloseWithDup,
    /// A child process holds the socket: close in the parent removes nothing
    ForkKeepsRegistration,
    /// close without DEL, then accept reuses the number: raw-fd tokens vs generation tokens
    NumberReuse(TokenFlag),
    /// One batch: handling conn-1 closes conn-3, then conn-3's cached event comes up
    StaleBatch(TokenFlag),
    /// At the descriptor limit: a naive loop spins; pausing accept and a spare descriptor do not
    Emfile,
    /// Serve on 127.0.0.1 (the echo server with a spare descriptor) until Ctrl-C; SIGUSR1 prints `stats:`
    Serve {
        /// Where to listen; 127.0.0.1:0 lets the kernel pick a port.
        #[arg(long, default_value = "127.0.0.1:7010", value_parser = lab_kit::cli::loopback_addr)]
        addr: SocketAddr,
    },
}

fn main() -> std::process::ExitCode {
    lab_kit::cli::run_main(cli_main)
}

fn cli_main() -> Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(command) = cli.command else {
        lab_kit::transcript::print_scenarios(
            PACKAGE,
            "descriptor lifetimes: close vs EPOLL_CTL_DEL, dup and fork, stale events, EMFILE",
            &Cli::command(),
        );
        return Ok(());
    };
    if let Command::Serve { addr } = command {
        ch06_epoll_echo_server::install_stats_signal().context("install the SIGUSR1 handler")?;
        let listener = lab_kit::cli::bind_loopback(addr)?;
        return ch10_fd_lifetimes::serve(listener).context("the event loop failed");
    }
    trace::enable();
    match command {
        Command::CloseOnlyCopy => close_only_copy(),
        Command::CloseWithDup => close_with_dup(),
        Command::ForkKeepsRegistration => fork_keeps_registration(),
        Command::NumberReuse(t) => number_reuse(t.mode),
        Command::StaleBatch(t) => stale_batch(t.mode),
        Command::Emfile => emfile(),
        Command::Serve { .. } => unreachable!("handled above"),
    }
}

/// Tokens of the scenarios that name connections by id.
const CONN_1: u64 = 1;
const CONN_2: u64 = 2;
const LISTENER: u64 = 100;

/// Room for up to eight events per wait.
fn event_buffer() -> Vec<EpollEvent> {
    vec![EpollEvent::empty(); 8]
}

/// A wait that looks and returns (timeout 0).
fn look(ep: &Epoll) -> Result<usize> {
    Ok(epoll::wait(ep, &mut event_buffer(), Some(Duration::ZERO))?)
}

/// The commentary announced `wanted`; the traced line showed what the
/// kernel said. If it said something else, stop instead of going on as if
/// the lesson held.
fn expect<T>(result: nix::Result<T>, wanted: Errno) -> Result<()> {
    match result {
        Err(e) if e == wanted => Ok(()),
        Err(e) => bail!("expected {wanted:?}, the kernel said {e:?}"),
        Ok(_) => bail!("expected {wanted:?}, the call succeeded"),
    }
}

/// Stops if a wait did not report `wanted` events.
fn expect_events(got: usize, wanted: usize) -> Result<()> {
    if got != wanted {
        bail!("expected {wanted} event(s), the wait reported {got}");
    }
    Ok(())
}

// ANCHOR: close_only_copy
fn close_only_copy() -> Result<()> {
    name_token(CONN_1, "conn-1");
    let (peer, conn) = fixtures::socketpair("peer", "conn-1")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    ctl(
        &ep.0,
        Op::Add,
        conn.as_raw_fd(),
        EpollFlags::EPOLLIN,
        CONN_1,
    )?;
    show_interest_list(&ep)?;
    let number = conn.as_raw_fd();
    note("conn-1 is the only descriptor of its open file description. Close it,");
    note("without EPOLL_CTL_DEL:");
    trace::close(OwnedFd::from(conn))?;
    note("That was the last reference: the kernel released the file, and with it");
    note("the registration (eventpoll_release in fs/eventpoll.c).");
    show_interest_list(&ep)?;
    note("The peer is still open, but nothing is registered that could report it:");
    look(&ep)?;
    note("DEL by the old number fails: the number is not open any more.");
    expect(
        ctl(&ep.0, Op::Del, number, EpollFlags::empty(), 0),
        Errno::EBADF,
    )?;
    drop(peer);
    Ok(())
}
// ANCHOR_END: close_only_copy

// ANCHOR: close_with_dup
fn close_with_dup() -> Result<()> {
    name_token(CONN_1, "conn-1");
    name_token(CONN_2, "conn-2");
    let (peer, conn) = fixtures::socketpair("peer", "conn-1")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    ctl(
        &ep.0,
        Op::Add,
        conn.as_raw_fd(),
        EpollFlags::EPOLLIN,
        CONN_1,
    )?;
    note("A second descriptor for the same open file description (a library, a");
    note("logger, a child process might hold one):");
    let dup = trace::dup(&conn, "conn-1-dup")?;
    let number = conn.as_raw_fd();
    trace::close(OwnedFd::from(conn))?;
    note("conn-1-dup still refers to the file, so the file lives, and so does the");
    note("entry, under the key (file, conn-1's number):");
    show_interest_list(&ep)?;
    trace::write(&peer, b"after close")?;
    note("An event for a descriptor this program has closed, tagged with its data:");
    expect_events(look(&ep)?, 1)?;
    note("DEL by the closed number: that number is not open.");
    expect(
        ctl(&ep.0, Op::Del, number, EpollFlags::empty(), 0),
        Errno::EBADF,
    )?;
    note("DEL by the dup's number: same file, but a different key.");
    expect(
        ctl(&ep.0, Op::Del, dup.as_raw_fd(), EpollFlags::empty(), 0),
        Errno::ENOENT,
    )?;
    note("No epoll_ctl can reach the entry now. The only way left: close the last");
    note("reference too.");
    trace::close(dup)?;
    show_interest_list(&ep)?;
    look(&ep)?;
    trace::blank();

    note("The right order: EPOLL_CTL_DEL while the number is still open, then close.");
    let (peer_2, conn_2) = fixtures::socketpair("peer-2", "conn-2")?;
    ctl(
        &ep.0,
        Op::Add,
        conn_2.as_raw_fd(),
        EpollFlags::EPOLLIN,
        CONN_2,
    )?;
    let dup_2 = trace::dup(&conn_2, "conn-2-dup")?;
    ctl(&ep.0, Op::Del, conn_2.as_raw_fd(), EpollFlags::empty(), 0)?;
    trace::close(OwnedFd::from(conn_2))?;
    show_interest_list(&ep)?;
    trace::write(&peer_2, b"after close")?;
    note("The dup still holds the file, and the peer wrote, but nothing is reported:");
    look(&ep)?;
    trace::close(dup_2)?;
    drop((peer, peer_2));
    Ok(())
}
// ANCHOR_END: close_with_dup

/// A child process that only holds copies of this process's descriptors:
/// it waits for end of file on a pipe, then exits. Dropping the value ends
/// and reaps it quietly if the scenario stopped before [`Child::release`].
struct Child {
    pid: nix::unistd::Pid,
    /// The write end of the pipe the child waits on; closing it lets the
    /// child go.
    hold: Option<OwnedFd>,
}

impl Child {
    /// `fork() -> child`. The child closes its copy of the pipe's write end,
    /// reads the read end until end of file, and exits with 0.
    fn spawn(child_name: &str) -> Result<Child> {
        let (hold_r, hold_w) = fixtures::pipe(
            &format!("{child_name}-hold-r"),
            &format!("{child_name}-hold-w"),
        )?;
        let (r, w) = (hold_r.as_raw_fd(), hold_w.as_raw_fd());
        // SAFETY: this process has only this thread (scenarios start no
        // other), and the child makes only async-signal-safe calls (close,
        // read, _exit) before it exits; it never returns into Rust code.
        let forked = unsafe { nix::unistd::fork() };
        if let Ok(nix::unistd::ForkResult::Child) = forked {
            // SAFETY: raw calls on numbers this process owns; `_exit` ends
            // the child without running the parent's destructors or
            // flushing its buffers.
            unsafe {
                nix::libc::close(w);
                let mut byte = 0u8;
                loop {
                    let n = nix::libc::read(r, (&raw mut byte).cast(), 1);
                    if n == 0 || (n < 0 && Errno::last() != Errno::EINTR) {
                        break;
                    }
                }
                nix::libc::_exit(0);
            }
        }
        emit("fork", || {
            let shown = trace::result(&forked, |_| child_name.to_string());
            format!("fork() -> {shown}")
        });
        let nix::unistd::ForkResult::Parent { child } = forked? else {
            unreachable!("the child never gets here")
        };
        // The parent's copy of the read end: only the child reads it.
        trace::close(hold_r)?;
        Ok(Child {
            pid: child,
            hold: Some(hold_w),
        })
    }

    /// Closes the pipe (the child sees end of file and exits) and reaps
    /// the child: `waitpid(child) -> exited 0`.
    fn release(mut self, child_name: &str) -> Result<()> {
        if let Some(hold) = self.hold.take() {
            trace::close(hold)?;
        }
        let r = nix::sys::wait::waitpid(self.pid, None);
        emit("waitpid", || {
            let shown = trace::result(&r, |status| match status {
                nix::sys::wait::WaitStatus::Exited(_, code) => format!("exited {code}"),
                other => format!("{other:?}"),
            });
            format!("waitpid({child_name}) -> {shown}")
        });
        r?;
        self.hold = None;
        self.pid = nix::unistd::Pid::from_raw(0);
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.pid.as_raw() > 0 {
            drop(self.hold.take());
            let _ = nix::sys::wait::waitpid(self.pid, None);
        }
    }
}

// ANCHOR: fork_keeps_registration
fn fork_keeps_registration() -> Result<()> {
    name_token(CONN_1, "conn-1");
    name_token(CONN_2, "conn-2");
    let (peer, conn) = fixtures::socketpair("peer", "conn-1")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    ctl(
        &ep.0,
        Op::Add,
        conn.as_raw_fd(),
        EpollFlags::EPOLLIN,
        CONN_1,
    )?;
    note("fork copies every descriptor: the child's copy of conn-1 refers to the");
    note("same open file description. The child does nothing but hold it, until");
    note("end of file on its pipe (when the parent closes child-hold-w).");
    let child = Child::spawn("child")?;
    let number = conn.as_raw_fd();
    trace::close(OwnedFd::from(conn))?;
    note("The parent has no conn-1 any more; the child's copy keeps the entry:");
    show_interest_list(&ep)?;
    trace::write(&peer, b"hello")?;
    expect_events(look(&ep)?, 1)?;
    expect(
        ctl(&ep.0, Op::Del, number, EpollFlags::empty(), 0),
        Errno::EBADF,
    )?;
    note("Let the child exit: its descriptors close, the last reference goes.");
    child.release("child")?;
    show_interest_list(&ep)?;
    look(&ep)?;
    trace::blank();

    note("The right order works with a child too: DEL, then close.");
    let (peer_2, conn_2) = fixtures::socketpair("peer-2", "conn-2")?;
    ctl(
        &ep.0,
        Op::Add,
        conn_2.as_raw_fd(),
        EpollFlags::EPOLLIN,
        CONN_2,
    )?;
    let child_2 = Child::spawn("child-2")?;
    ctl(&ep.0, Op::Del, conn_2.as_raw_fd(), EpollFlags::empty(), 0)?;
    trace::close(OwnedFd::from(conn_2))?;
    trace::write(&peer_2, b"hello")?;
    look(&ep)?;
    child_2.release("child-2")?;
    drop((peer, peer_2));
    Ok(())
}
// ANCHOR_END: fork_keeps_registration

/// A connection table as a server keeps it: by descriptor number, with the
/// generation each connection got.
#[derive(Default)]
struct Table {
    slots: BTreeMap<RawFd, (u32, OwnedFd)>,
    next_generation: u32,
}

/// Where a scenario's connections live and how their tokens are made.
struct Server {
    mode: TokenMode,
    ep: Epoll,
    table: Table,
}

impl Server {
    fn new(mode: TokenMode) -> Result<Server> {
        Ok(Server {
            mode,
            ep: create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?,
            table: Table {
                next_generation: 1,
                ..Table::default()
            },
        })
    }

    /// The token for a connection on `fd` with `generation`, named so
    /// events print readably: `fd base+5` or `fd base+5 gen 3`.
    fn token(&self, fd: RawFd, generation: u32) -> u64 {
        let (data, shown) = match self.mode {
            TokenMode::RawFd => (fd as u64, format!("fd {}", number_of(fd))),
            TokenMode::Generation => {
                let token = GenToken { fd, generation };
                (
                    token.data(),
                    format!("fd {} gen {generation}", number_of(fd)),
                )
            }
        };
        name_token(data, &shown);
        data
    }

    /// Accepts `conn-N` (N = its generation), registers it, keeps it.
    fn accept<L: AsFd>(&mut self, listener: L) -> Result<RawFd> {
        let generation = self.table.next_generation;
        let conn = trace::accept(&listener, &format!("conn-{generation}"))?;
        set_nonblocking(&conn)?;
        self.table.next_generation += 1;
        let fd = conn.as_raw_fd();
        let token = self.token(fd, generation);
        ctl(&self.ep.0, Op::Add, fd, EpollFlags::EPOLLIN, token)?;
        self.table.slots.insert(fd, (generation, conn));
        Ok(fd)
    }

    /// The connection an event's `data` is for, as the table sees it now:
    /// `Some(fd)` to handle it, `None` to drop it. Prints the lookup.
    fn lookup(&self, data: u64) -> Option<RawFd> {
        let (fd, generation) = match self.mode {
            TokenMode::RawFd => (data as RawFd, None),
            TokenMode::Generation => {
                let token = GenToken::from_data(data);
                (token.fd, Some(token.generation))
            }
        };
        let slot = self.table.slots.get(&fd).map(|(g, _)| *g);
        let found = match (slot, generation) {
            (None, _) => None,
            (Some(_), None) => Some(fd),
            (Some(now), Some(wanted)) => (now == wanted).then_some(fd),
        };
        view("table", "table", || {
            let key = lab_kit::names::token_name(data);
            match (slot, found) {
                (Some(g), Some(_)) => format!("lookup({key}) => conn-{g}: handle the event"),
                (Some(g), None) => {
                    format!("lookup({key}) => the slot holds conn-{g} (gen {g}): stale, dropped")
                }
                (None, _) => format!("lookup({key}) => no such connection: dropped"),
            }
        });
        found
    }

    /// Handles a readable event the way the loop would: read the connection.
    fn read(&self, fd: RawFd) -> Result<()> {
        let (_, conn) = &self.table.slots[&fd];
        let _ = trace::read(conn, &mut [0u8; 64]);
        Ok(())
    }

    /// Removes a connection from the table (the caller DELs and closes it).
    fn forget(&mut self, fd: RawFd) -> OwnedFd {
        self.table
            .slots
            .remove(&fd)
            .expect("a connection of the table")
            .1
    }
}

// ANCHOR: number_reuse
fn number_reuse(mode: TokenMode) -> Result<()> {
    set_baseline()?;
    let listener = fixtures::listener("listener")?;
    let addr = listener.local_addr()?;
    let mut server = Server::new(mode)?;
    match mode {
        TokenMode::RawFd => note("Tokens: the descriptor number itself."),
        TokenMode::Generation => note("Tokens: (descriptor number, generation of the connection)."),
    }
    let mut clients = Vec::new();
    for i in 1..=3 {
        clients.push(fixtures::connect(addr, &format!("client-{i}"))?);
        server.accept(&listener)?;
    }
    let conn_3 = *server.table.slots.keys().last().expect("three connections");
    note("Something keeps a second descriptor for conn-3's file:");
    let dup = trace::dup(server.table.slots[&conn_3].1.as_fd(), "conn-3-dup")?;
    clients.push(fixtures::connect(addr, "client-4")?);
    note("The mistake: close conn-3 without EPOLL_CTL_DEL. The next accept gets");
    note("the lowest free number: conn-3's.");
    trace::close(server.forget(conn_3))?;
    let conn_4 = server.accept(&listener)?;
    view("numbers", "numbers", || {
        format!(
            "conn-4 is {}, conn-3 was {} => {}",
            number_of(conn_4),
            number_of(conn_3),
            if conn_4 == conn_3 {
                "same number"
            } else {
                "different"
            }
        )
    });
    if conn_4 != conn_3 {
        bail!("accept did not reuse conn-3's number; the lesson needs it to");
    }
    note("ADD of conn-4 worked: the key is (file, number) and conn-4's file is new.");
    note("Two entries now carry the same number; the old one still has its data:");
    show_interest_list(&server.ep)?;
    note("client-3 writes to its connection, the one conn-3-dup still holds:");
    trace::write(&clients[2], b"for conn-3")?;
    let mut events = event_buffer();
    let n = epoll::wait(&server.ep, &mut events, Some(Duration::ZERO))?;
    expect_events(n, 1)?;
    if let Some(fd) = server.lookup(events[0].data()) {
        note("The loop reads the connection it found: conn-4. client-4 sent nothing.");
        server.read(fd)?;
        note("The bytes the event was about are in the old description:");
        trace::peek(&dup, &mut [0u8; 64])?;
    } else {
        note("The event is recognised as one for an earlier connection and dropped.");
    }
    note("The entry is still there, and level-triggered: every wait reports it again.");
    expect_events(look(&server.ep)?, 1)?;
    note("Tokens can recognise a stale event; only DEL before close (or closing the");
    note("last reference) removes the entry:");
    trace::close(dup)?;
    look(&server.ep)?;
    Ok(())
}
// ANCHOR_END: number_reuse

/// An AF_UNIX stream listener with an abstract name (nothing in the file
/// system), named `listener_name`: a connect to it queues the connection and
/// wakes the listener's waiters before connect returns, so the order in
/// which things become ready is the order of the calls.
fn unix_listener(listener_name: &str) -> Result<(UnixListener, std::os::unix::net::SocketAddr)> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(format!(
        "epoll-lab-ch10-{}",
        std::process::id()
    ))?;
    let listener = UnixListener::bind_addr(&addr)?;
    name(&listener, listener_name);
    view("listen", "setup", || {
        format!(
            "socket(AF_UNIX)+bind(abstract name)+listen => {}",
            name_of(listener.as_raw_fd())
        )
    });
    Ok((listener, addr))
}

/// A client of [`unix_listener`], named `client_name`.
fn unix_connect(addr: &std::os::unix::net::SocketAddr, client_name: &str) -> Result<UnixStream> {
    let stream = UnixStream::connect_addr(addr)?;
    name(&stream, client_name);
    view("connect", "setup", || {
        format!(
            "socket(AF_UNIX)+connect(listener's name) => {}",
            name_of(stream.as_raw_fd())
        )
    });
    Ok(stream)
}

// ANCHOR: stale_batch
fn stale_batch(mode: TokenMode) -> Result<()> {
    set_baseline()?;
    let (listener, addr) = unix_listener("listener")?;
    set_nonblocking(&listener)?;
    let mut server = Server::new(mode)?;
    name_token(LISTENER, "listener");
    ctl(
        &server.ep.0,
        Op::Add,
        listener.as_raw_fd(),
        EpollFlags::EPOLLIN,
        LISTENER,
    )?;
    match mode {
        TokenMode::RawFd => note("Tokens: the descriptor number itself."),
        TokenMode::Generation => note("Tokens: (descriptor number, generation of the connection)."),
    }
    let mut clients = Vec::new();
    for i in 1..=3 {
        clients.push(unix_connect(&addr, &format!("client-{i}"))?);
        server.accept(&listener)?;
    }
    let conn_3 = *server.table.slots.keys().last().expect("three connections");
    expect_events(look(&server.ep)?, 0)?;
    note("Three things happen before the loop's next wait:");
    trace::write(&clients[0], b"kick conn-3")?;
    clients.push(unix_connect(&addr, "client-4")?);
    trace::write(&clients[2], b"hello")?;
    let mut events = event_buffer();
    let n = epoll::wait(&server.ep, &mut events, Some(Duration::ZERO))?;
    expect_events(n, 3)?;
    let order: Vec<String> = events[..n]
        .iter()
        .map(|e| lab_kit::names::token_name(e.data()))
        .collect();
    view("batch", "batch", || {
        format!("the order the kernel returned => {}", order.join(", "))
    });
    note("The loop handles the batch in that order.");
    for (i, event) in events[..n].iter().enumerate() {
        note(&format!("Event {} of {n}:", i + 1));
        if event.data() == LISTENER {
            let conn_4 = server.accept(&listener)?;
            view("numbers", "numbers", || {
                format!(
                    "conn-4 is {}, conn-3 was {} => {}",
                    number_of(conn_4),
                    number_of(conn_3),
                    if conn_4 == conn_3 {
                        "same number"
                    } else {
                        "different"
                    }
                )
            });
            continue;
        }
        let Some(fd) = server.lookup(event.data()) else {
            continue;
        };
        let (_, conn) = &server.table.slots[&fd];
        let mut buf = [0u8; 64];
        let got = trace::read(conn, &mut buf);
        if got == Ok(11) && &buf[..11] == b"kick conn-3" {
            note("The command closes conn-3, the right way: DEL, then close.");
            ctl(&server.ep.0, Op::Del, conn_3, EpollFlags::empty(), 0)?;
            trace::close(server.forget(conn_3))?;
        }
    }
    note("client-3's \"hello\" went with conn-3; client-4 sent nothing.");
    Ok(())
}
// ANCHOR_END: stale_batch

/// What a loop did in a window of [`WINDOW`] waits.
#[derive(Default)]
struct Window {
    /// Waits that returned at least one event.
    wakeups: u64,
    /// accept calls, and how many failed with EMFILE.
    accepts: u64,
    emfile: u64,
    /// Connections taken off the listener's queue.
    taken: u64,
}

/// How many `epoll_wait` calls (timeout 0) each loop gets: a bound by
/// count, not by time, so the counts are the same on every run.
const WINDOW: u64 = 100;

/// The three ways of meeting EMFILE on accept.
#[derive(Clone, Copy, PartialEq)]
enum Remedy {
    /// Go back to waiting: the connection is still queued.
    None,
    /// Stop asking about the listener until a descriptor is freed.
    Pause,
    /// Close a spare descriptor, accept, close the connection, reopen.
    Spare,
}

// ANCHOR: emfile_loop
/// [`WINDOW`] turns of a loop that watches only the listener (registered
/// with `LISTENER`), meeting EMFILE with `remedy`. The first turn prints
/// its calls; all are counted.
fn window(
    ep: &Epoll,
    listener: &TcpListener,
    remedy: Remedy,
    spare: &mut Option<OwnedFd>,
) -> Result<Window> {
    let mut counts = Window::default();
    turn(ep, listener, remedy, spare, &mut counts)?;
    for _ in 1..WINDOW {
        trace::quietly(|| turn(ep, listener, remedy, spare, &mut counts))?;
    }
    Ok(counts)
}

/// One turn: wait (timeout 0); if the listener is ready, accept until
/// EAGAIN or EMFILE, and meet EMFILE with `remedy`.
fn turn(
    ep: &Epoll,
    listener: &TcpListener,
    remedy: Remedy,
    spare: &mut Option<OwnedFd>,
    counts: &mut Window,
) -> Result<()> {
    if epoll::wait(ep, &mut event_buffer(), Some(Duration::ZERO))? == 0 {
        return Ok(());
    }
    counts.wakeups += 1;
    loop {
        counts.accepts += 1;
        match trace::accept(listener, "conn") {
            Ok(conn) => {
                counts.taken += 1;
                drop(conn);
            }
            Err(Errno::EAGAIN) => return Ok(()),
            Err(Errno::EMFILE) => {
                counts.emfile += 1;
                match remedy {
                    // Back to waiting: the connection is still queued.
                    Remedy::None => return Ok(()),
                    // Ask for nothing on the listener.
                    Remedy::Pause => {
                        let fd = listener.as_raw_fd();
                        ctl(&ep.0, Op::Mod, fd, EpollFlags::empty(), LISTENER)?;
                        return Ok(());
                    }
                    Remedy::Spare => {
                        if !refuse_with_spare(listener, spare, counts)? {
                            return Ok(());
                        }
                    }
                }
            }
            Err(e) => bail!("accept: {e}"),
        }
    }
}

/// Closes the spare, accepts, closes that connection, reopens the spare
/// (in that order: the spare needs the number the connection had).
/// Returns whether a connection was taken off the queue.
fn refuse_with_spare(
    listener: &TcpListener,
    spare: &mut Option<OwnedFd>,
    counts: &mut Window,
) -> Result<bool> {
    let Some(fd) = spare.take() else {
        return Ok(false);
    };
    trace::close(fd)?;
    counts.accepts += 1;
    let refused = match trace::accept(listener, "refused") {
        Ok(conn) => {
            counts.taken += 1;
            trace::close(conn)?;
            true
        }
        // EAGAIN: the queue is empty. Do not accept again now: with the
        // spare back, accept would say EMFILE before it looks at the queue.
        Err(_) => false,
    };
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    *spare = Some(trace::open("/dev/null", flags, "spare")?);
    Ok(refused)
}
// ANCHOR_END: emfile_loop

/// `[tally] naive loop, 100 waits => 100 wake-ups, ...`: what one window did.
fn report(loop_name: &str, counts: &Window) {
    tally(
        &format!("{loop_name} loop, {WINDOW} waits"),
        format!(
            "{} wake-ups, {} accept calls ({} EMFILE), {} connections taken off the queue",
            counts.wakeups, counts.accepts, counts.emfile, counts.taken
        ),
    );
}

// ANCHOR: emfile
fn emfile() -> Result<()> {
    set_baseline()?;
    name_token(LISTENER, "listener");
    let listener = fixtures::listener("listener")?;
    set_nonblocking(&listener)?;
    let addr = listener.local_addr()?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    ctl(
        &ep.0,
        Op::Add,
        listener.as_raw_fd(),
        EpollFlags::EPOLLIN,
        LISTENER,
    )?;
    note("The spare descriptor for the third loop, opened while there is room:");
    let mut spare = Some(trace::open(
        "/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        "spare",
    )?);
    let clients: Vec<_> = (1..=5)
        .map(|i| fixtures::connect(addr, &format!("client-{i}")))
        .collect::<std::io::Result<_>>()?;
    // Room for two more descriptors: the limit caps the *number* a new
    // descriptor may get, and a new one takes the lowest free number.
    let free = clients.last().map_or(0, |c| c.as_raw_fd()) + 1;
    set_soft_limit(free, 2)?;
    let conn_1 = trace::accept(&listener, "conn-1")?;
    let conn_2 = trace::accept(&listener, "conn-2")?;
    note("Three clients still wait in the queue, and the process is at its limit:");
    expect(trace::accept(&listener, "conn-3"), Errno::EMFILE)?;
    note("The listener stays readable: the connections are still queued.");
    trace::blank();

    note(&format!(
        "Loop 1, naive: on EMFILE, back to epoll_wait. {WINDOW} waits, the first shown:"
    ));
    let naive = window(&ep, &listener, Remedy::None, &mut None)?;
    report("naive", &naive);
    trace::blank();

    note("Loop 2, pause: on EMFILE, ask for nothing on the listener until a");
    note(&format!(
        "descriptor is freed (chapter 03's EchoServer). {WINDOW} waits:"
    ));
    let paused = window(&ep, &listener, Remedy::Pause, &mut None)?;
    report("pause", &paused);
    note("Meanwhile client-3 waits in the queue; nothing tells it anything:");
    expect(trace::peek(&clients[2], &mut [0u8; 64]), Errno::EAGAIN)?;
    note("A connection closes; the loop asks about the listener again:");
    trace::close(conn_1)?;
    ctl(
        &ep.0,
        Op::Mod,
        listener.as_raw_fd(),
        EpollFlags::EPOLLIN,
        LISTENER,
    )?;
    expect_events(look(&ep)?, 1)?;
    let conn_3 = trace::accept(&listener, "conn-3")?;
    expect(trace::accept(&listener, "conn-4"), Errno::EMFILE)?;
    trace::blank();

    note("Loop 3, spare: on EMFILE, close the spare, accept, close that");
    note(&format!(
        "connection at once, reopen the spare. {WINDOW} waits:"
    ));
    let spared = window(&ep, &listener, Remedy::Spare, &mut spare)?;
    report("spare", &spared);
    note("The clients it could not keep learn it at once: end of file.");
    trace::read(&clients[3], &mut [0u8; 64])?;
    trace::read(&clients[4], &mut [0u8; 64])?;
    drop((conn_2, conn_3, spare));
    Ok(())
}
// ANCHOR_END: emfile

/// Sets the soft RLIMIT_NOFILE so that `room` more descriptors fit: the
/// limit caps the number a new descriptor may get, and `free` is the lowest
/// free number. Keeps the hard limit. Two calls, so a `[setup]` line; the
/// limit is shown by what it means, since the numbers below it depend on
/// what the process inherited.
fn set_soft_limit(free: RawFd, room: RawFd) -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let soft = (free + room) as u64;
    let r = getrlimit(Resource::RLIMIT_NOFILE)
        .and_then(|(_, hard)| setrlimit(Resource::RLIMIT_NOFILE, soft, hard));
    view("setrlimit", "setup", || {
        let shown = trace::result(&r, |_| "ok".to_string());
        format!(
            "getrlimit+setrlimit(RLIMIT_NOFILE, soft=lowest free number+{room}, hard kept) => {shown}"
        )
    });
    r.context("lower the descriptor limit")
}
