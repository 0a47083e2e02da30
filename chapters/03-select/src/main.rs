//! `ch03-select`: select(2) on the real kernel, one scenario at a time, and
//! an echo server over the select backend.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use anyhow::Context;
use ch03_select::{EchoServer, Interest, Poller, SelectPoller, Token, traced};
use clap::{CommandFactory, Parser, Subcommand};
use lab_kit::trace::{self, blank};
use lab_kit::{fixtures, name_of, names, note};
use nix::sys::select::FdSet;

const PACKAGE: &str = "ch03-select";

/// select(2): fd_sets rebuilt on every call, nfds, the O(n) scan, FD_SETSIZE.
#[derive(Parser)]
#[command(name = PACKAGE, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// select overwrites the sets it is given: rebuild them before every call
    Overwritten,
    /// nfds is the highest descriptor + 1; one less and the highest is not watched
    Nfds,
    /// one descriptor numbered ~1000 makes every call cover 1000 bits
    Scan,
    /// a descriptor >= FD_SETSIZE (1024) is refused with an error, not a panic
    FdSetsize,
    /// the kernel has no FD_SETSIZE: a bitmap larger than fd_set watches fds 1024 and 5000
    LargerBitmap,
    /// a regular file is always readable and writable
    RegularFile,
    /// select has no hang-up set: a peer's close shows as readable
    Hangup,
    /// the select backend of the Poller trait: sets rebuilt from a table each wait
    Poller,
    /// the echo server over select (Ctrl-C to stop)
    #[command(
        long_about = "Runs the echo server loop over the select backend. Prints \
`listening on ADDR` first, then one line per connection event (`conn-1 opened`, \
`conn-1 closed: peer closed`). Runs until Ctrl-C: no SIGINT handler is installed, \
so the signal's default action ends the process."
    )]
    Serve {
        /// The address to listen on (loopback by default; port 0 lets the kernel pick)
        #[arg(long, default_value = "127.0.0.1:7003", value_parser = lab_kit::cli::loopback_addr)]
        addr: SocketAddr,
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
            "select(2): fd_sets rebuilt on every call, nfds, the O(n) scan, FD_SETSIZE",
            &Cli::command(),
        );
        return Ok(());
    };
    if let Command::Serve { addr } = command {
        return serve(addr);
    }
    trace::enable();
    match command {
        Command::Overwritten => overwritten(),
        Command::Nfds => nfds(),
        Command::Scan => scan(),
        Command::FdSetsize => fd_setsize(),
        Command::LargerBitmap => larger_bitmap(),
        Command::RegularFile => regular_file(),
        Command::Hangup => hangup(),
        Command::Poller => poller(),
        Command::Serve { .. } => unreachable!("handled above"),
    }
}

/// Prints the real descriptor numbers, relative to the baseline, for the
/// scenarios where the number is the lesson.
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

/// nfds for a set of descriptors: the highest number + 1.
fn nfds_for(fds: &[&dyn AsFd]) -> i32 {
    fds.iter()
        .map(|fd| fd.as_fd().as_raw_fd())
        .max()
        .map_or(0, |highest| highest + 1)
}

// ANCHOR: overwritten
fn overwritten() -> anyhow::Result<()> {
    names::set_baseline()?;
    let (a, peer_a) = fixtures::socketpair("a", "peer-a")?;
    let (c, peer_c) = fixtures::socketpair("c", "peer-c")?;
    let nfds = nfds_for(&[&a, &c]);
    note("Watch a and c for reading. Nothing has been written yet.");
    let mut read = FdSet::new();
    read.insert(a.as_fd());
    read.insert(c.as_fd());
    trace::select(nfds, Some(&mut read), None, Some(Duration::ZERO))?;
    note("What follows the arrow is what the kernel left in our set.");
    blank();

    note("Rebuild the set, then make only a readable.");
    read.insert(a.as_fd());
    read.insert(c.as_fd());
    trace::write(&peer_a, b"ping")?;
    trace::select(nfds, Some(&mut read), None, Some(Duration::ZERO))?;
    note("The kernel cleared the bit of every descriptor that was not ready: c's.");
    blank();

    note("Now c becomes readable too, and we pass the same set again (the mistake).");
    trace::write(&peer_c, b"pong")?;
    trace::select(nfds, Some(&mut read), None, Some(Duration::ZERO))?;
    note("c has data, but c's bit was no longer in the set, so the kernel never looked at c.");
    blank();

    note("The fix: keep the list of watched descriptors apart and rebuild the set every call.");
    let mut read = FdSet::new();
    read.insert(a.as_fd());
    read.insert(c.as_fd());
    trace::select(nfds, Some(&mut read), None, Some(Duration::ZERO))?;
    Ok(())
}
// ANCHOR_END: overwritten

// ANCHOR: nfds
fn nfds() -> anyhow::Result<()> {
    names::set_baseline()?;
    let (a, peer_a) = fixtures::socketpair("a", "peer-a")?;
    let (r, w) = fixtures::pipe("r", "w")?;
    show_numbers(&[&a, &peer_a, &r, &w]);
    trace::write(&peer_a, b"x")?;
    trace::write(&w, b"y")?;
    note("a and r both hold a byte. nfds counts bits: the kernel looks at descriptors");
    note("0 .. nfds-1, so watching r needs nfds = r's number + 1.");
    let right = r.as_raw_fd() + 1;
    let mut read = FdSet::new();
    read.insert(a.as_fd());
    read.insert(r.as_fd());
    trace::select(right, Some(&mut read), None, Some(Duration::ZERO))?;
    blank();

    note("The classic mistake: nfds = the highest number, not the highest + 1.");
    let mut read = FdSet::new();
    read.insert(a.as_fd());
    read.insert(r.as_fd());
    trace::select(right - 1, Some(&mut read), None, Some(Duration::ZERO))?;
    note("r is in the set we passed and has data, but its bit is at nfds, one past the");
    note("last bit the kernel looks at: r is not watched, and comes back cleared.");
    Ok(())
}
// ANCHOR_END: nfds

fn scan() -> anyhow::Result<()> {
    let base = names::set_baseline()?;
    note("far will be descriptor base+1000: first allow numbers up to 2047.");
    fixtures::descriptor_limit(2048)?;
    let (a, peer_a) = fixtures::socketpair("a", "peer-a")?;
    trace::write(&peer_a, b"x")?;
    let far = trace::dup_from(&a, base + 1000, "far")?;
    note("a and far are the same socket under two numbers; both are readable.");
    blank();

    note("Watching a alone: nfds is small.");
    let mut read = FdSet::new();
    read.insert(a.as_fd());
    trace::select(
        a.as_raw_fd() + 1,
        Some(&mut read),
        None,
        Some(Duration::ZERO),
    )?;
    blank();

    note("Watching far alone: one descriptor again, but nfds must be far + 1.");
    let mut read = FdSet::new();
    read.insert(far.as_fd());
    trace::select(
        far.as_raw_fd() + 1,
        Some(&mut read),
        None,
        Some(Duration::ZERO),
    )?;
    blank();
    note("What the second call cost (fs/select.c, core_sys_select and do_select):");
    note("the kernel copied nfds bits of each set in, walked them one word (64 bits)");
    note("at a time up to nfds, asked the one file whose bit is set whether it is ready,");
    note("and copied nfds bits of each set back out. To find the answer, user space");
    note("then tests the bits below nfds again (FD_ISSET). The work grows with nfds and");
    note("with the number of descriptors watched, not with the number that are ready:");
    note("a server with 1000 connections pays for all 1000 on every call.");
    Ok(())
}

// ANCHOR: fd_setsize
fn fd_setsize() -> anyhow::Result<()> {
    note("Descriptor numbers here are the real ones: FD_SETSIZE is about the number.");
    note("First allow this process descriptors numbered up to 2047:");
    fixtures::descriptor_limit(2048)?;
    let (r, w) = fixtures::pipe("r", "w")?;
    let low = trace::dup_from(&r, 1023, "low")?;
    let high = trace::dup_from(&r, 1024, "high")?;
    blank();
    note("An fd_set has FD_SETSIZE = 1024 bits: descriptors 0 to 1023.");
    let mut poller = SelectPoller::new();
    traced::add(&mut poller, &low, Token(1), Interest::READABLE)?;
    // The error is the lesson: it is printed above, and the scenario goes on.
    let _ = traced::add(&mut poller, &high, Token(2), Interest::READABLE);
    note("Refused at add, with an error the caller can handle (a server closes that one");
    note("connection and goes on). Setting bit 1024 would write past the end of the set:");
    note("nix's FdSet::insert panics instead, so the backend checks first. The limit is");
    note("the fd_set type's, not the kernel's: scenario larger-bitmap.");
    blank();
    note("The registered descriptor still works:");
    trace::write(&w, b"x")?;
    let mut events = Vec::new();
    traced::wait(&mut poller, &mut events, Some(Duration::ZERO))?;
    Ok(())
}
// ANCHOR_END: fd_setsize

// ANCHOR: larger_bitmap
fn larger_bitmap() -> anyhow::Result<()> {
    note("Descriptor numbers here are the real ones. Allow descriptors up to 8191:");
    fixtures::descriptor_limit(8192)?;
    let (r, w) = fixtures::pipe("r", "w")?;
    let high = trace::dup_from(&r, 1024, "high")?;
    let higher = trace::dup_from(&r, 5000, "higher")?;
    trace::write(&w, b"x")?;
    blank();
    note("An fd_set (1024 bits) cannot hold these numbers, but the kernel's select");
    note("does not use that type: it copies in nfds bits, in whole words (unsigned");
    note("long), from the memory it is given. Here: a bitmap of our own, sized for");
    note("nfds = higher + 1.");
    let fds = [high.as_raw_fd(), higher.as_raw_fd()];
    raw_select(&fds)?;
    note("Both are reported readable. FD_SETSIZE is the size of the C library's fd_set");
    note("type (and nix's FdSet), not a limit of the kernel (select(2), BUGS). The cost");
    note("is still nfds bits copied in, scanned and copied out on every call.");
    Ok(())
}

/// One select(2) call with a read set of our own size: `nfds` bits (the
/// highest of `fds` + 1), rounded up to whole `unsigned long` words, the unit
/// the kernel copies (fs/select.c, `FDS_BYTES`). No write or except set; a
/// zero timeout. Prints one line from the real arguments and result.
fn raw_select(fds: &[RawFd]) -> anyhow::Result<i32> {
    use nix::libc::{self, c_ulong};
    const WORD: usize = c_ulong::BITS as usize;
    let nfds = nfds_for_raw(fds);
    let mut bits: Vec<c_ulong> = vec![0; (nfds as usize).div_ceil(WORD)];
    for &fd in fds {
        let fd = fd as usize;
        bits[fd / WORD] |= 1 << (fd % WORD);
    }
    let set_names = |bits: &[c_ulong]| -> String {
        let mut names: Vec<String> = (0..bits.len() * WORD)
            .filter(|&fd| bits[fd / WORD] & (1 << (fd % WORD)) != 0)
            .map(|fd| name_of(fd as RawFd))
            .collect();
        names.sort();
        format!("{{{}}}", names.join(", "))
    };
    let asked = format!(
        "select(nfds={nfds}, read={}-bit set {}, write=NULL, timeout=0)",
        bits.len() * WORD,
        set_names(&bits)
    );
    let mut timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: the kernel reads and writes nfds bits of the read set, rounded
    // up to whole unsigned longs, and `bits` is exactly that long; the other
    // sets are NULL, and `timeout` is a valid timeval. The C library passes
    // the pointers to the kernel unchanged; nothing else holds `bits`.
    let ready = unsafe {
        libc::select(
            nfds,
            bits.as_mut_ptr().cast::<libc::fd_set>(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut timeout,
        )
    };
    let r = if ready < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(ready)
    };
    trace::emit("select", || {
        let shown = trace::result(&r, |n| {
            format!("{n}: read={}, write=NULL", set_names(&bits))
        });
        format!("{asked} -> {shown}")
    });
    Ok(r?)
}
// ANCHOR_END: larger_bitmap

/// nfds for raw descriptor numbers: the highest + 1.
fn nfds_for_raw(fds: &[RawFd]) -> i32 {
    fds.iter().max().map_or(0, |highest| highest + 1)
}

fn regular_file() -> anyhow::Result<()> {
    names::set_baseline()?;
    let file = fixtures::regular_file("notes.txt", b"hello")?;
    let nfds = nfds_for(&[&file]);
    let select_both = || -> nix::Result<i32> {
        let mut read = FdSet::new();
        let mut write = FdSet::new();
        read.insert(file.as_fd());
        write.insert(file.as_fd());
        trace::select(
            nfds,
            Some(&mut read),
            Some(&mut write),
            Some(Duration::ZERO),
        )
    };
    select_both()?;
    let mut buf = [0u8; 64];
    trace::read(&file, &mut buf)?;
    trace::read(&file, &mut buf)?;
    note("At end of file, and still readable:");
    select_both()?;
    note("For select, ready means a read or write will not block. A regular file never");
    note("blocks, so it is always ready, with data or not: select (and poll) cannot tell");
    note("you when a file has grown. (epoll refuses regular files: chapter 05.)");
    Ok(())
}

fn hangup() -> anyhow::Result<()> {
    names::set_baseline()?;
    let (a, peer) = fixtures::socketpair("a", "peer")?;
    let nfds = nfds_for(&[&a]);
    let select_read = || -> nix::Result<i32> {
        let mut read = FdSet::new();
        read.insert(a.as_fd());
        trace::select(nfds, Some(&mut read), None, Some(Duration::ZERO))
    };
    select_read()?;
    trace::close(peer.into())?;
    select_read()?;
    note("select has only read, write and except sets: the hang-up shows as readable,");
    note("and the read tells what happened.");
    let mut buf = [0u8; 64];
    trace::read(&a, &mut buf)?;
    select_read()?;
    note("Still readable after end of file, on every call: a loop must stop watching a");
    note("descriptor once it has read 0, or it spins.");
    Ok(())
}

// ANCHOR: poller_scenario
fn poller() -> anyhow::Result<()> {
    names::set_baseline()?;
    let (a, peer_a) = fixtures::socketpair("a", "peer-a")?;
    let (c, peer_c) = fixtures::socketpair("c", "peer-c")?;
    let mut poller = SelectPoller::new();
    traced::add(&mut poller, &a, Token(1), Interest::READABLE)?;
    traced::add(&mut poller, &c, Token(2), Interest::READABLE)?;
    let mut events = Vec::new();
    note("Each wait builds the sets from the registrations, so nothing is lost:");
    trace::write(&peer_a, b"1")?;
    traced::wait(&mut poller, &mut events, Some(Duration::ZERO))?;
    trace::write(&peer_c, b"2")?;
    traced::wait(&mut poller, &mut events, Some(Duration::ZERO))?;
    blank();
    note("Asking for WRITABLE adds c to the write set, only while we ask for it:");
    traced::modify(&mut poller, &c, Token(2), Interest::BOTH)?;
    traced::wait(&mut poller, &mut events, Some(Duration::ZERO))?;
    traced::modify(&mut poller, &c, Token(2), Interest::READABLE)?;
    traced::delete(&mut poller, &a)?;
    traced::wait(&mut poller, &mut events, Some(Duration::ZERO))?;
    Ok(())
}
// ANCHOR_END: poller_scenario

// ANCHOR: serve
fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = lab_kit::cli::bind_loopback(addr)?;
    let bound = listener.local_addr().context("local address")?;
    println!("listening on {bound}");
    let mut server = EchoServer::new(SelectPoller::new(), listener).context("set up the loop")?;
    println!("backend: {}", server.poller().name());
    server.run().context("the event loop failed")
}
// ANCHOR_END: serve
