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
//! server sleeps in `epoll_wait` instead of spinning. [`bench`] is the load
//! generator that compares the backends.

pub mod bench;

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Set by the SIGUSR1 handler, read by the loop.
static STATS_WANTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigusr1(_: nix::libc::c_int) {
    // Only an atomic store: all a signal handler may safely do here.
    STATS_WANTED.store(true, Ordering::SeqCst);
}

/// Whether SIGUSR1 asked for the stats since the last call (the request is
/// taken: the next call says no until another SIGUSR1 comes). Chapter 10's
/// server answers it too.
pub fn stats_requested() -> bool {
    STATS_WANTED.swap(false, Ordering::SeqCst)
}

/// Installs the SIGUSR1 handler that [`serve`] answers with its stats.
/// Call it before announcing the address: until then SIGUSR1's default
/// action would end the process. A signal that arrives while the loop
/// sleeps makes the wait fail with EINTR (epoll_wait, poll and select are
/// never restarted, whatever SA_RESTART says: signal(7)), so the loop
/// notices at once.
pub fn install_stats_signal() -> nix::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_sigusr1),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR1, &action) }?;
    Ok(())
}

/// Serves `listener` forever on `backend`: prints `listening on ADDR` when
/// ready, then logs connection events by id on stdout; on SIGUSR1 (see
/// [`install_stats_signal`]) prints a [`stats_line`].
pub fn serve(listener: TcpListener, backend: Backend) -> io::Result<()> {
    match backend {
        Backend::Epoll => serve_on(EpollPoller::new()?, listener),
        Backend::Poll => serve_on(PollPoller::new(), listener),
        Backend::Select => serve_on(SelectPoller::new(), listener),
    }
}

// ANCHOR: serve_on
/// The loop of [`serve`], for one backend.
fn serve_on<P: Poller>(poller: P, listener: TcpListener) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let mut server = EchoServer::new(poller, listener)?;
    // Announced once everything is in place: a client (or a test) that
    // reads this line finds the server ready, its descriptors all open.
    println!("listening on {addr}");
    // Every return from the wait with events. An idle server should add
    // nothing here: it sleeps in the kernel until a socket has news.
    let mut wakeups: u64 = 0;
    loop {
        // Look before every wait: a signal that came while we were busy
        // (not asleep in the wait) interrupted nothing. One that lands in
        // the instant between this check and the wait is seen at the next
        // event or signal; chapter 11 (not written yet) closes that gap
        // with signalfd.
        if stats_requested() {
            println!("{}", stats_line(wakeups, server.connection_count()));
        }
        match server.turn(None) {
            Ok(_) => wakeups += 1,
            // A signal handler ran (SIGUSR1): not an error; loop to the check.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
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
