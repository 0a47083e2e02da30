//! `ch04-poll`: poll(2) on the real kernel, one scenario at a time, and the
//! chapter 03 echo server over the poll backend.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use anyhow::Context;
use ch03_select::{EchoServer, Interest, Poller, SelectPoller, Token, traced};
use ch04_poll::PollPoller;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use lab_kit::trace::{self, blank};
use lab_kit::{fixtures, name_of, names, note};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::select::FdSet;
use nix::sys::socket::Shutdown;

const PACKAGE: &str = "ch04-poll";

/// poll(2): the pollfd array, events in, revents out, POLLHUP and POLLNVAL.
#[derive(Parser)]
#[command(name = PACKAGE, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    Poll,
    Select,
}

#[derive(Subcommand)]
enum Command {
    /// events is the question, revents the answer; the kernel never touches events
    Revents,
    /// POLLHUP and POLLERR are reported without being asked
    Hangup,
    /// a closed descriptor: poll says POLLNVAL and succeeds, select fails with EBADF
    ClosedFd,
    /// a regular file: POLLIN and POLLOUT at once, at end of file too; no error
    RegularFile,
    /// poll has no FD_SETSIZE: descriptors 1024 and far beyond work
    NoFdLimit,
    /// the poll backend of the Poller trait: one array kept between waits
    Poller,
    /// the echo server over poll (or select) (Ctrl-C to stop)
    #[command(
        long_about = "Runs chapter 03's echo server loop over the poll backend (or, with \
--backend select, over select: the same loop). Prints `listening on ADDR` first, then one \
line per connection event (`conn-1 opened`, `conn-1 closed: peer closed`). Runs until \
Ctrl-C: no SIGINT handler is installed, so the signal's default action ends the process."
    )]
    Serve {
        /// The address to listen on (loopback by default; port 0 lets the kernel pick)
        #[arg(long, default_value = "127.0.0.1:7004", value_parser = lab_kit::cli::loopback_addr)]
        addr: SocketAddr,
        /// The multiplexer under the loop
        #[arg(long, value_enum, default_value = "poll")]
        backend: Backend,
    },
}

fn main() -> std::process::ExitCode {
    lab_kit::cli::run_main(cli_main)
}

fn cli_main() -> anyhow::Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(command) = cli.command else {
        lab_kit::transcript::print_scenarios(
            PACKAGE,
            "poll(2): the pollfd array, events in, revents out, POLLHUP and POLLNVAL",
            &Cli::command(),
        );
        return Ok(());
    };
    if let Command::Serve { addr, backend } = command {
        return serve(addr, backend);
    }
    trace::enable();
    match command {
        Command::Revents => revents(),
        Command::Hangup => hangup(),
        Command::ClosedFd => closed_fd(),
        Command::RegularFile => regular_file(),
        Command::NoFdLimit => no_fd_limit(),
        Command::Poller => poller(),
        Command::Serve { .. } => unreachable!("handled above"),
    }
}

/// Prints each entry's two fields from the array itself:
/// `[pollfd a] => events=POLLIN|POLLOUT revents=POLLOUT` (read from the
/// array in memory after the call: a view, not a call).
fn show_pollfds(fds: &[PollFd]) {
    for pollfd in fds {
        let tag = format!("pollfd {}", name_of(pollfd.as_fd().as_raw_fd()));
        trace::view("pollfd", &tag, || {
            let revents = match pollfd.revents() {
                Some(flags) => trace::poll_flags(flags),
                None => "(bits nix does not know)".to_string(),
            };
            format!(
                "=> events={} revents={}",
                trace::poll_flags(pollfd.events()),
                revents
            )
        });
    }
}

// ANCHOR: revents
fn revents() -> anyhow::Result<()> {
    let (a, peer) = fixtures::socketpair("a", "peer")?;
    let mut fds = [PollFd::new(
        a.as_fd(),
        PollFlags::POLLIN | PollFlags::POLLOUT,
    )];
    note("Ask about a: readable or writable? Nothing was written to it yet.");
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    show_pollfds(&fds);
    note("events still holds the question; revents holds the answer. Reading events");
    note("instead of revents would call a readable when it is not.");
    blank();

    note("The same array again, untouched: no rebuilding, unlike select's sets.");
    trace::write(&peer, b"hello")?;
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    show_pollfds(&fds);
    blank();

    note("Change the question to POLLIN only: the kernel writes a new revents, and");
    note("POLLOUT is gone from it because it is no longer asked.");
    fds[0].set_events(PollFlags::POLLIN);
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    show_pollfds(&fds);
    note("Only what was asked (and the unasked POLLHUP/POLLERR/POLLNVAL, next scenario).");
    Ok(())
}
// ANCHOR_END: revents

// ANCHOR: hangup
fn hangup() -> anyhow::Result<()> {
    note("A socketpair whose peer wrote, then closed. We ask for POLLIN only.");
    let (a, peer) = fixtures::socketpair("a", "peer")?;
    trace::write(&peer, b"bye")?;
    trace::close(peer.into())?;
    let mut fds = [PollFd::new(a.as_fd(), PollFlags::POLLIN)];
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    let mut buf = [0u8; 64];
    trace::read(&a, &mut buf)?;
    trace::read(&a, &mut buf)?;
    note("Even asking for nothing at all (events = 0), the hang-up is reported:");
    let mut fds = [PollFd::new(a.as_fd(), PollFlags::empty())];
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    blank();

    note("A pipe whose only writer closed, with no data left:");
    let (r, w) = fixtures::pipe("r", "w")?;
    trace::close(w)?;
    let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    note("POLLHUP without POLLIN, and again on the next call:");
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    note("Yet a read is what tells the end of the pipe:");
    trace::read(&r, &mut buf)?;
    note("A loop that reads only on POLLIN never makes that read, and polls forever.");
    blank();

    note("The other direction: a pipe's write end whose only reader closed.");
    let (r2, w2) = fixtures::pipe("r2", "w2")?;
    trace::close(r2)?;
    let mut fds = [PollFd::new(w2.as_fd(), PollFlags::POLLOUT)];
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    note("POLLERR, unasked: the write end is broken. (Rust programs start with SIGPIPE");
    note("ignored, so the write fails with EPIPE instead of the signal ending the");
    note("process: pipe(7).)");
    let _ = trace::write(&w2, b"x");
    blank();

    note("A stream socket whose peer only shut down its writing side:");
    let (b, peer_b) = fixtures::socketpair("b", "peer-b")?;
    trace::shutdown(&peer_b, Shutdown::Write)?;
    let mut fds = [PollFd::new(b.as_fd(), PollFlags::POLLIN)];
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    trace::read(&b, &mut buf)?;
    note("Readable, and the read returns 0, but no POLLHUP: only one direction is shut,");
    note("and peer-b can still read what b writes. (poll(2) has POLLRDHUP for this");
    note("half-close, since Linux 2.6.17; nix's PollFlags has no name for it.)");
    Ok(())
}
// ANCHOR_END: hangup

// ANCHOR: closed_fd
fn closed_fd() -> anyhow::Result<()> {
    names::set_baseline()?;
    let (r, w) = fixtures::pipe("r", "w")?;
    show_numbers(&[&r, &w]);
    trace::write(&w, b"x")?;
    let number = r.as_raw_fd();
    note("Close r, but keep its number in the array (a classic bug: close before removing).");
    trace::close(r)?;
    // SAFETY: deliberately a closed number, which is the bug this scenario
    // shows. The kernel only looks the number up; nothing opens a descriptor
    // between the close and these calls, so the number is not reused.
    let stale = unsafe { BorrowedFd::borrow_raw(number) };
    let mut fds = [PollFd::new(stale, PollFlags::POLLIN)];
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    note("poll succeeds and flags that one entry POLLNVAL (unasked), so the others in");
    note("the array are still served. Asking for nothing at all (events = 0) changes");
    note("nothing; POLLNVAL is never something you ask for:");
    let mut fds = [PollFd::new(stale, PollFlags::empty())];
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    note("The fix is to remove the entry before closing.");
    blank();

    note("The same mistake with select fails the whole call:");
    let mut read = FdSet::new();
    read.insert(stale);
    // The error is the lesson: the traced line shows it.
    let _ = trace::select(number + 1, Some(&mut read), None, Some(Duration::ZERO));
    note("EBADF, and no answer about any other descriptor in the sets.");
    blank();

    note("Worse than both: if a new descriptor had taken the number, poll would watch");
    note("the new file under the old entry, without any error.");
    let (r3, w3) = fixtures::pipe("new-r", "new-w")?;
    show_numbers(&[&r3, &w3]);
    trace::write(&w3, b"y")?;
    note("pipe() took the lowest free numbers, r's old one among them: an entry still");
    note("holding that number now watches new-r.");
    let mut fds = [PollFd::new(stale, PollFlags::POLLIN)];
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    Ok(())
}
// ANCHOR_END: closed_fd

// ANCHOR: regular_file
fn regular_file() -> anyhow::Result<()> {
    let file = fixtures::regular_file("notes.txt", b"hello")?;
    let ask_both = || -> nix::Result<i32> {
        let mut fds = [PollFd::new(
            file.as_fd(),
            PollFlags::POLLIN | PollFlags::POLLOUT,
        )];
        trace::poll(&mut fds, PollTimeout::ZERO)
    };
    ask_both()?;
    let mut buf = [0u8; 64];
    trace::read(&file, &mut buf)?;
    trace::read(&file, &mut buf)?;
    note("At end of file, and still:");
    ask_both()?;
    note("No error and no POLLERR. A regular file never blocks, and has no poll method:");
    note("the kernel answers DEFAULT_POLLMASK for it, readable and writable, every time,");
    note("data or not (vfs_poll in include/linux/poll.h). So poll cannot tell you that a");
    note("file has grown. (epoll refuses such files: chapter 05.)");
    Ok(())
}
// ANCHOR_END: regular_file

/// Prints the real descriptor numbers, relative to the baseline, where the
/// number is the lesson: `[numbers] => r=base+0, w=base+1`.
fn show_numbers(fds: &[&dyn AsFd]) {
    trace::view("numbers", "numbers", || {
        let shown: Vec<String> = fds
            .iter()
            .map(|fd| {
                let raw = fd.as_fd().as_raw_fd();
                format!("{}={}", name_of(raw), names::number_of(raw))
            })
            .collect();
        format!("=> {}", shown.join(", "))
    });
}

// ANCHOR: no_fd_limit
fn no_fd_limit() -> anyhow::Result<()> {
    note("Descriptor numbers here are the real ones: FD_SETSIZE is about the number.");
    note("First allow this process descriptors numbered up to 8191:");
    fixtures::descriptor_limit(8192)?;
    let (r, w) = fixtures::pipe("r", "w")?;
    let high = trace::dup_from(&r, 1024, "high")?;
    let higher = trace::dup_from(&r, 5000, "higher")?;
    trace::write(&w, b"x")?;
    let mut fds = [
        PollFd::new(high.as_fd(), PollFlags::POLLIN),
        PollFd::new(higher.as_fd(), PollFlags::POLLIN),
    ];
    trace::poll(&mut fds, PollTimeout::ZERO)?;
    note("A pollfd holds the number itself, not a bit in a fixed-size map: any open");
    note("descriptor can be watched. The two backends side by side (select's refuses");
    note("high because its fd_set type has no bit for it; chapter 03's larger-bitmap");
    note("shows the kernel's select itself would take it):");
    blank();
    let mut select = SelectPoller::new();
    let _ = traced::add(&mut select, &high, Token(1), Interest::READABLE);
    let mut poll = PollPoller::new();
    traced::add(&mut poll, &high, Token(1), Interest::READABLE)?;
    traced::add(&mut poll, &higher, Token(2), Interest::READABLE)?;
    let mut events = Vec::new();
    traced::wait(&mut poll, &mut events, Some(Duration::ZERO))?;
    note("Still O(n): the kernel walks the whole array on every call, and so does the");
    note("loop that looks for non-zero revents.");
    Ok(())
}
// ANCHOR_END: no_fd_limit

// ANCHOR: poller_scenario
fn poller() -> anyhow::Result<()> {
    let (a, peer_a) = fixtures::socketpair("a", "peer-a")?;
    let (c, peer_c) = fixtures::socketpair("c", "peer-c")?;
    let mut poller = PollPoller::new();
    let mut events = Vec::new();
    traced::add(&mut poller, &a, Token(1), Interest::READABLE)?;
    traced::add(&mut poller, &c, Token(2), Interest::READABLE)?;
    trace::write(&peer_a, b"1")?;
    traced::wait(&mut poller, &mut events, Some(Duration::ZERO))?;
    blank();
    note("modify edits one entry's events in place; the array is not rebuilt:");
    traced::modify(&mut poller, &c, Token(2), Interest::BOTH)?;
    traced::wait(&mut poller, &mut events, Some(Duration::ZERO))?;
    blank();
    note("Interest NONE still hears hang-ups: how a server pauses reading a connection");
    note("without missing that its peer went away.");
    traced::modify(&mut poller, &c, Token(2), Interest::NONE)?;
    trace::write(&peer_c, b"2")?;
    traced::wait(&mut poller, &mut events, Some(Duration::ZERO))?;
    trace::close(peer_c.into())?;
    traced::wait(&mut poller, &mut events, Some(Duration::ZERO))?;
    blank();
    note("delete before close, so no entry ever names a closed descriptor:");
    traced::delete(&mut poller, &c)?;
    trace::close(c.into())?;
    traced::wait(&mut poller, &mut events, Some(Duration::ZERO))?;
    Ok(())
}
// ANCHOR_END: poller_scenario

// ANCHOR: serve
fn serve(addr: SocketAddr, backend: Backend) -> anyhow::Result<()> {
    let listener = lab_kit::cli::bind_loopback(addr)?;
    let bound = listener.local_addr().context("local address")?;
    println!("listening on {bound}");
    // The same loop over either backend: only this line differs.
    match backend {
        Backend::Poll => run(EchoServer::new(PollPoller::new(), listener)?),
        Backend::Select => run(EchoServer::new(SelectPoller::new(), listener)?),
    }
}

fn run<P: Poller>(mut server: EchoServer<P>) -> anyhow::Result<()> {
    println!("backend: {}", server.poller().name());
    server.run().context("the event loop failed")
}
// ANCHOR_END: serve
