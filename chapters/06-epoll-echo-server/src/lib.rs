//! Chapter 06: a correct level-triggered echo server on epoll.
//!
//! The loop itself is chapter 03's [`EchoServer`], written once against the
//! [`Poller`] interface; this chapter runs it on chapter 05's
//! [`EpollPoller`] and looks hard at what makes it correct: non-blocking
//! sockets, an output buffer per connection, EPOLLOUT only while output is
//! pending, bounded memory for a peer that never reads, half-close, resets.
//!
//! [`serve`] adds what a long-running server needs around the loop: a count
//! of its wake-ups, printed on SIGUSR1, so anyone can check that an idle
//! server sleeps in `epoll_wait` instead of spinning, and a clean stop on
//! SIGINT (Ctrl-C) or SIGTERM. Both signals arrive through a signalfd in
//! the loop ([`signals`]). [`bench`] is the load generator that compares
//! the backends.

pub mod bench;
pub mod signals;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

use nix::sys::signal::Signal;
use signals::{SIGNALS, ServerSignals};

pub use ch03_select::echo::EchoServer;
pub use ch03_select::poller::Poller;
pub use ch03_select::select_poller::SelectPoller;
pub use ch04_poll::PollPoller;
pub use ch05_epoll_api::EpollPoller;

/// Which multiplexer the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Epoll,
    Poll,
    Select,
}

/// Serves `listener` on `backend` until SIGINT or SIGTERM: prints
/// `listening on ADDR` when ready, then logs connection events by id on
/// stdout; on SIGUSR1 prints a [`stats_line`]; on SIGINT or SIGTERM closes
/// every connection, prints `shutting down: N connections closed` and
/// returns `Ok`.
pub fn serve(listener: TcpListener, backend: Backend) -> io::Result<()> {
    match backend {
        Backend::Epoll => serve_on(EpollPoller::new()?, listener),
        Backend::Poll => serve_on(PollPoller::new(), listener),
        Backend::Select => serve_on(SelectPoller::new(), listener),
    }
}

/// [`serve`] for one backend.
fn serve_on<P: Poller>(poller: P, listener: TcpListener) -> io::Result<()> {
    let addr = listener.local_addr()?;
    run_until_signalled(EchoServer::new(poller, listener)?, addr)
}

// ANCHOR: serve_on
/// The loop of [`serve`] around a ready server listening on `addr`
/// (chapter 10's server runs it too, with a spare descriptor).
pub fn run_until_signalled<P: Poller>(
    mut server: EchoServer<P>,
    addr: SocketAddr,
) -> io::Result<()> {
    // First of all: until they are blocked, SIGINT and SIGUSR1 would end
    // the process (their default action).
    let signals = ServerSignals::block_and_open()?;
    server.add_other(signals.as_raw_fd(), SIGNALS)?;
    // Announced once everything is in place: a client (or a test) that
    // reads this line finds the server ready, its descriptors all open.
    println!("listening on {addr}");
    // Returns from the wait with a socket event. An idle server should add
    // nothing here: it sleeps in the kernel until a socket has news. (A
    // wait that only brings a signal is not counted: asking for the count
    // must not change it.)
    let mut wakeups: u64 = 0;
    loop {
        let events = match server.turn(None) {
            Ok(n) => n,
            // No handler is installed, but epoll_wait still fails with
            // EINTR after the process is stopped and continued (Ctrl-Z,
            // then `fg`; signal(7)): wait again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let signal_events = server.take_other_events().len();
        if events > signal_events {
            wakeups += 1;
        }
        if signal_events == 0 {
            continue;
        }
        for signal in signals.read_all()? {
            match signal {
                Signal::SIGUSR1 => {
                    println!("{}", stats_line(wakeups, server.connection_count()));
                }
                _ => {
                    // SIGINT or SIGTERM.
                    let closed = server.close_all();
                    println!("shutting down: {closed} connections closed");
                    return Ok(());
                }
            }
        }
    }
}
// ANCHOR_END: serve_on

/// The system calls the loop makes, as lab-kit's traced wrappers count them
/// (they count every call, printed or not).
pub const LOOP_CALLS: [&str; 10] = [
    "accept",
    "close",
    "epoll_ctl",
    "epoll_wait",
    "fcntl",
    "open",
    "poll",
    "read",
    "select",
    "write",
];

/// `stats: 12 wake-ups, 3 connections open, 41 system calls (accept 4,
/// epoll_ctl 4, epoll_wait 12, fcntl 8, read 7, write 6)`: the wake-up
/// count, then every system call this thread made through lab-kit's traced
/// wrappers since it started, counted by the calls themselves (calls with a
/// count of 0 are left out).
pub fn stats_line(wakeups: u64, connections: usize) -> String {
    let counts: Vec<(&str, u64)> = LOOP_CALLS
        .iter()
        .map(|&call| (call, lab_kit::trace::count_of(call)))
        .filter(|&(_, n)| n > 0)
        .collect();
    let total: u64 = counts.iter().map(|&(_, n)| n).sum();
    let each: Vec<String> = counts
        .iter()
        .map(|(call, n)| format!("{call} {n}"))
        .collect();
    format!(
        "stats: {wakeups} wake-ups, {connections} connections open, {total} system calls ({})",
        each.join(", ")
    )
}

/// Reads the total number of system calls back from a [`stats_line`].
pub fn calls_in_stats(line: &str) -> Option<u64> {
    let before = line.split(" system calls").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

/// Reads the wake-up count back from a [`stats_line`].
pub fn wakeups_in_stats(line: &str) -> Option<u64> {
    line.strip_prefix("stats: ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}
