//! `ch02-nonblocking-io`: the chapter's scenarios.
//!
//! Without arguments it lists them; each prints a transcript of real
//! system calls.

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use lab_kit::trace::{self, blank};
use lab_kit::{fixtures, note};
use nix::fcntl::OFlag;

use ch02_nonblocking_io::{ReadOutcome, set_nonblocking, try_read};

/// Non-blocking I/O: O_NONBLOCK, EAGAIN, and why polling in a loop burns CPU.
#[derive(Parser)]
#[command(name = "ch02-nonblocking-io")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// A read on an empty socket: blocking would sleep; with O_NONBLOCK it returns EAGAIN
    EmptyRead,
    /// Set O_NONBLOCK by OR-ing it into F_GETFL's flags; F_SETFL(O_NONBLOCK) alone wipes O_APPEND
    KeepOtherFlags,
    /// EAGAIN means "nothing yet"; 0 means "the peer is gone, nothing will come"
    EagainIsNotEof,
    /// A loop that reads until data comes: every EAGAIN is a wasted system call
    BusyLoop {
        /// How many rounds the loop spins before the peer writes
        #[arg(long, default_value_t = 1000)]
        rounds: u64,
    },
}

fn main() -> Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(command) = cli.command else {
        lab_kit::transcript::print_scenarios(
            "ch02-nonblocking-io",
            "O_NONBLOCK via fcntl, EAGAIN, and the cost of busy polling",
            &Cli::command(),
        );
        return Ok(());
    };
    trace::enable();
    match command {
        Command::EmptyRead => empty_read(),
        Command::KeepOtherFlags => keep_other_flags(),
        Command::EagainIsNotEof => eagain_is_not_eof(),
        Command::BusyLoop { rounds } => busy_loop(rounds),
    }
}

fn empty_read() -> Result<()> {
    let (peer, conn) = fixtures::socketpair("peer", "conn")?;
    trace::get_flags(&conn)?;
    note("No O_NONBLOCK: conn is blocking, like every new socket. Nothing has been");
    note("sent, so a read(conn) now would put this thread to sleep on the socket's");
    note("wait queue until the peer writes or closes, here forever. We don't call it.");
    blank();
    note("set_nonblocking: read the flags, OR in O_NONBLOCK, write them back.");
    set_nonblocking(&conn)?;
    let mut buf = [0u8; 64];
    // Without `?`: the point of this read is its error.
    let _ = trace::read(&conn, &mut buf);
    note("The read did not sleep: the kernel answered at once with EAGAIN, \"try");
    note("again later\". Once the peer writes, the same read returns the data.");
    trace::write(&peer, b"hello")?;
    trace::read(&conn, &mut buf)?;
    let _ = trace::read(&conn, &mut buf);
    note("Drained: EAGAIN again.");
    Ok(())
}

fn keep_other_flags() -> Result<()> {
    note("O_APPEND is a status flag too, and easy to see. (O_NONBLOCK itself has no");
    note("effect on a regular file's reads, open(2) says; only the flags matter here.)");
    let file = fixtures::regular_file("log", b"first line\n")?;
    trace::get_flags(&file)?;
    note("Set-up: besides its access mode the file has no flag to keep, so here");
    note("F_SETFL(O_APPEND) just turns O_APPEND on.");
    trace::set_flags(&file, OFlag::O_APPEND)?;
    trace::get_flags(&file)?;
    blank();
    note("Right: read the flags, OR in O_NONBLOCK, set the result.");
    set_nonblocking(&file)?;
    trace::get_flags(&file)?;
    blank();
    note("The classic mistake: F_SETFL with O_NONBLOCK alone. F_SETFL replaces the");
    note("status flags with exactly what it is given.");
    trace::set_flags(&file, OFlag::O_NONBLOCK)?;
    trace::get_flags(&file)?;
    note("(O_RDONLY in an F_SETFL argument is just access-mode bits 0: F_SETFL ignores");
    note("them, which is why the file stays O_RDWR.)");
    note("O_APPEND is gone: writes through this file would now overwrite from the");
    note("current offset instead of appending. The flags belong to the open file");
    note("description, shared with every dup and forked child: the mistake drops what");
    note("any of them had set.");
    Ok(())
}

fn eagain_is_not_eof() -> Result<()> {
    let (peer, conn) = fixtures::socketpair("peer", "conn")?;
    set_nonblocking(&conn)?;
    blank();
    let mut buf = [0u8; 64];
    let _ = trace::read(&conn, &mut buf);
    note("EAGAIN: nothing *yet*. The peer is still there and may send later.");
    blank();
    trace::write(&peer, b"bye")?;
    trace::close(peer.into())?;
    note("The peer sent its last bytes and closed. Queued data is still delivered:");
    trace::read(&conn, &mut buf)?;
    trace::read(&conn, &mut buf)?;
    trace::read(&conn, &mut buf)?;
    note("0 is end of file: the peer is gone and every later read says 0 again. A");
    note("loop that took 0 for \"nothing yet\" would spin forever; one that took");
    note("EAGAIN for end of file would hang up on a client that is merely slow.");
    Ok(())
}

fn busy_loop(rounds: u64) -> Result<()> {
    let (peer, conn) = fixtures::socketpair("peer", "conn")?;
    set_nonblocking(&conn)?;
    blank();
    note("The loop: try_read(conn); on EAGAIN, try again at once. To make the count");
    note(&format!(
        "exact, the peer's write is scripted: it comes after round {rounds}. Until then"
    ));
    note("the loop runs quietly; lab-kit still counts every read.");
    // ANCHOR: busy_loop
    trace::reset_counts();
    let mut buf = [0u8; 64];
    let mut would_block = 0u64;
    let received = trace::quietly(|| -> Result<usize> {
        loop {
            match try_read(&conn, &mut buf)? {
                ReadOutcome::Data(n) => return Ok(n),
                ReadOutcome::Closed => anyhow::bail!("the peer closed before writing"),
                ReadOutcome::WouldBlock => {
                    would_block += 1;
                    if would_block == rounds {
                        trace::write(&peer, b"hello")?;
                    }
                }
            }
        }
    })
    .context("the busy loop")?;
    // ANCHOR_END: busy_loop
    trace::tally("reads the loop made", trace::count_of("read"));
    trace::tally("of them, reads that returned EAGAIN", would_block);
    trace::tally("bytes the last read returned", received);
    blank();
    note("Every EAGAIN was a trip into the kernel and back that found nothing. In a");
    note("real server the data comes when the network delivers it, and until then a");
    note("loop like this never sleeps: it keeps a CPU busy making such calls. Sleeping");
    note("between tries only trades CPU for latency. What we want is to sleep *until*");
    note("one of many sockets is ready: chapter 03's select does exactly that.");
    Ok(())
}
