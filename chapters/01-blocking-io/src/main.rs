//! `ch01-blocking-io`: the chapter's scenarios and its echo server.
//!
//! Without arguments it lists the scenarios. Each scenario prints a
//! transcript of real system calls; `serve` runs the echo server.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use lab_kit::trace::{self, blank};
use lab_kit::{fixtures, note, proc};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::pthread::{Pthread, pthread_kill, pthread_self};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::socket::Shutdown;
use nix::unistd::{Pid, gettid};

use ch01_blocking_io::{
    CLIENT_STACK_SIZE, Log, echo, print_log, quiet_log, serve_one_at_a_time,
    serve_thread_per_client,
};

/// Blocking I/O: one slow client blocks all; a thread per client fixes it, at a price.
#[derive(Parser)]
#[command(name = "ch01-blocking-io")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// An echo over blocking read/write: read until end of file, write back every byte
    BlockingEcho,
    /// One-at-a-time server: client-2 gets no reply while client-1 stays connected
    SecondClientWaits,
    /// Thread-per-client server: client-2 is answered while client-1 stays connected
    ThreadPerClient,
    /// What a thread per connection costs: threads and stacks, read from /proc/self
    ThreadCost,
    /// A signal interrupts a blocked read: EINTR without SA_RESTART; with it, the read goes on
    Eintr,
    /// Run the echo server until Ctrl-C (thread per client unless --one-at-a-time)
    ///
    /// Prints `listening on ADDR` first, then one line per connection event.
    /// Stop it with Ctrl-C: SIGINT's default action ends the process, and the
    /// kernel closes every descriptor it had open, so clients see end of file.
    Serve {
        /// Address to listen on (loopback only; port 0 lets the kernel pick one)
        #[arg(long, default_value = "127.0.0.1:7001", value_parser = lab_kit::cli::loopback_addr)]
        addr: SocketAddr,
        /// Serve one client at a time, like the first server of the chapter
        #[arg(long)]
        one_at_a_time: bool,
    },
}

fn main() -> std::process::ExitCode {
    lab_kit::cli::run_main(cli_main)
}

fn cli_main() -> Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(command) = cli.command else {
        lab_kit::transcript::print_scenarios(
            "ch01-blocking-io",
            "blocking read/write, one client at a time, then one thread per client",
            &Cli::command(),
        );
        return Ok(());
    };
    match command {
        Command::BlockingEcho => blocking_echo(),
        Command::SecondClientWaits => second_client_waits(),
        Command::ThreadPerClient => thread_per_client(),
        Command::ThreadCost => thread_cost(),
        Command::Eintr => eintr(),
        Command::Serve {
            addr,
            one_at_a_time,
        } => serve(addr, one_at_a_time),
    }
}

/// How long a scenario's blocking read may take before it gives up (and the
/// transcript shows EAGAIN instead of hanging). Never reached when all is well.
const SAFETY_NET: Duration = Duration::from_secs(5);

/// Starts `server` on a background thread named `accept-loop`. That thread
/// never enabled tracing, so it prints nothing: the transcript is the main
/// thread's alone, and does not depend on scheduling.
fn start_server(
    listener: TcpListener,
    server: fn(&TcpListener, Log) -> nix::Result<()>,
) -> Result<()> {
    thread::Builder::new()
        .name("accept-loop".into())
        .stack_size(CLIENT_STACK_SIZE)
        .spawn(move || server(&listener, quiet_log))
        .context("starting the server thread")?;
    Ok(())
}

/// A client connected to `addr`, with a read timeout as a safety net
/// (shown: `setsockopt(client-1, SO_RCVTIMEO, 5s) -> 0`).
fn client(addr: SocketAddr, name: &str) -> Result<TcpStream> {
    let stream = fixtures::connect(addr, name).with_context(|| format!("connecting {name}"))?;
    trace::set_read_timeout(&stream, SAFETY_NET)?;
    Ok(stream)
}

fn blocking_echo() -> Result<()> {
    trace::enable();
    note("The server side of an echo, on this thread: conn is the server's end,");
    note("client the other end of a connected pair of sockets.");
    let (client, conn) = fixtures::socketpair("client", "conn")?;
    trace::write(&client, b"hello, echo")?;
    trace::shutdown(&client, Shutdown::Write)?;
    note("The client has sent its message and ended its side (SHUT_WR). Now echo(conn):");
    note("read until read returns 0, write back each piece with write_all.");
    blank();
    echo(&conn)?;
    blank();
    note("read returned 0 only after the client's shutdown: end of file. Until then");
    note("a read on this blocking socket would have slept, waiting for more data.");
    let mut buf = [0u8; 64];
    trace::read(&client, &mut buf)?;
    Ok(())
}

/// Client-1 talks, then stays connected while client-2 asks for an echo.
/// Returns client-1 and client-2 (still open).
fn client_2_asks_while_client_1_idles(addr: SocketAddr) -> Result<(TcpStream, TcpStream)> {
    note("Two clients. So that no read of theirs can hang this scenario, each read");
    note("gives up after 5s with EAGAIN (SO_RCVTIMEO, socket(7)). None below needs it.");
    let client_1 = client(addr, "client-1")?;
    let client_2 = client(addr, "client-2")?;
    note("connect returned once the kernel completed each handshake, whether or not");
    note("the server has called accept yet: a client waits in the listener's queue.");
    blank();
    let mut buf = [0u8; 64];
    trace::write(&client_1, b"hello from 1")?;
    trace::read(&client_1, &mut buf)?;
    note("client-1 got its echo and now stays connected, sending nothing.");
    blank();
    trace::write(&client_2, b"hello from 2")?;
    note("Does an echo come back? (poll, chapter 04, is only a stopwatch here.)");
    Ok((client_1, client_2))
}

/// Waits up to `ms` for `stream` to become readable (poll is chapter 04;
/// here it is only a stopwatch that cannot hang).
fn readable_within(stream: &TcpStream, ms: u16) -> Result<()> {
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
    trace::poll(&mut fds, PollTimeout::from(ms))?;
    Ok(())
}

fn second_client_waits() -> Result<()> {
    trace::enable();
    note("A server that serves one client at a time runs on a background thread.");
    let listener = fixtures::listener("listener")?;
    let addr = listener.local_addr()?;
    start_server(listener, serve_one_at_a_time)?;
    let (client_1, client_2) = client_2_asks_while_client_1_idles(addr)?;
    readable_within(&client_2, 200)?;
    note("Nothing. Where is the server? /proc shows where its thread sleeps:");
    thread_asleep_in("accept-loop")?;
    note("In read(conn-1), waiting for client-1. Its next accept comes only after that");
    note("read returns, so client-2 waits, accepted by the kernel but not by the server.");
    note("One idle client stalls every other client.");
    blank();
    note("client-1 ends its side; the server's read(conn-1) returns 0, it closes");
    note("conn-1 and only then accepts client-2.");
    trace::shutdown(&client_1, Shutdown::Write)?;
    let mut buf = [0u8; 64];
    trace::read(&client_1, &mut buf)?;
    trace::read(&client_2, &mut buf)?;
    trace::close(OwnedFd::from(client_1))?;
    trace::close(OwnedFd::from(client_2))?;
    Ok(())
}

fn thread_per_client() -> Result<()> {
    trace::enable();
    note("The same steps against a server that gives each client its own thread.");
    let listener = fixtures::listener("listener")?;
    let addr = listener.local_addr()?;
    start_server(listener, serve_thread_per_client)?;
    let (client_1, client_2) = client_2_asks_while_client_1_idles(addr)?;
    // A generous limit: poll returns the moment the echo arrives, and a busy
    // machine must not turn a late thread into a different transcript.
    readable_within(&client_2, 5000)?;
    note("client-2's thread echoed (poll returns as soon as client-2 is readable),");
    note("while client-1's thread, named conn-1, sleeps in its own read:");
    thread_asleep_in("conn-1")?;
    let mut buf = [0u8; 64];
    trace::read(&client_2, &mut buf)?;
    trace::close(OwnedFd::from(client_1))?;
    trace::close(OwnedFd::from(client_2))?;
    Ok(())
}

fn thread_cost() -> Result<()> {
    trace::enable();
    note("Before any server: what the kernel knows about this process's threads.");
    proc_threads()?;
    proc_thread_stacks()?;
    blank();
    let listener = fixtures::listener("listener")?;
    let addr = listener.local_addr()?;
    start_server(listener, serve_thread_per_client)?;
    let clients = trace::quietly(|| ten_clients_get_an_echo(addr))?;
    note("Ten clients connected; each wrote \"hi\", read its echo, and stays connected.");
    note("(Their calls ran quietly.) What changed:");
    blank();
    proc_threads()?;
    proc_thread_names()?;
    proc_thread_stacks()?;
    note("One task per thread: the main thread (named after the program, cut to 15");
    note("bytes by the kernel), accept-loop, and one per connection; and a stack each.");
    blank();
    note("Every connection is a kernel task with its own stack: here 256 KiB each,");
    note("because the server asks for that; Rust's default is 2 MiB and a C thread's");
    note("is `ulimit -s` (often 8 MiB). Ten thousand idle clients would mean ten");
    note("thousand threads, each sleeping in read. The next chapters serve them all");
    note("from one thread instead, by asking the kernel which sockets are ready.");
    drop(clients);
    Ok(())
}

/// Ten clients that each get one echo back, so each one's server thread
/// has surely started (and named itself) before we look.
fn ten_clients_get_an_echo(addr: SocketAddr) -> Result<Vec<TcpStream>> {
    let mut clients = Vec::new();
    for i in 1..=10 {
        let client = client(addr, &format!("client-{i}"))?;
        let mut buf = [0u8; 2];
        ch01_blocking_io::write_all(&client, b"hi")?;
        let mut got = 0;
        while got < buf.len() {
            match trace::read(&client, &mut buf[got..])? {
                0 => anyhow::bail!("client-{i}: the server closed without echoing"),
                n => got += n,
            }
        }
        anyhow::ensure!(&buf == b"hi", "client-{i}: wrong echo {buf:?}");
        clients.push(client);
    }
    Ok(clients)
}

/// `read(/proc/self/status) -> Threads: 12`: the kernel's count of this
/// process's tasks ([proc_pid_status(5)](https://man7.org/linux/man-pages/man5/proc_pid_status.5.html)).
fn proc_threads() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let threads = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .context("no Threads: line in /proc/self/status")?
        .trim()
        .to_string();
    trace::view("proc", "proc", || {
        format!("/proc/self/status => Threads: {threads}")
    });
    Ok(())
}

/// `[proc] /proc/self/task/*/comm => [...]`: one entry per thread, named by
/// the thread itself (a name is cut to 15 bytes by the kernel).
fn proc_thread_names() -> Result<()> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        let comm = std::fs::read_to_string(task?.path().join("comm"))?;
        names.push(comm.trim_end().to_string());
    }
    // conn-2 before conn-10: by the text before the number, then the number.
    names.sort_by_key(|name| {
        let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
        let prefix = name[..name.len() - digits.len()].to_string();
        (prefix, digits.parse::<u64>().unwrap_or(0), name.clone())
    });
    trace::view("proc", "proc", || {
        format!("/proc/self/task/*/comm => [{}]", names.join(", "))
    });
    Ok(())
}

/// `[proc] /proc/self/maps => thread stacks: 11 of 256 KiB`: each thread's
/// stack is an anonymous read-write mapping just above a small inaccessible
/// guard page ([proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html)).
/// Mappings under 64 KiB (Rust's per-thread signal stacks) are left out.
fn proc_thread_stacks() -> Result<()> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    // (start, end, perms, has a path) for each line.
    let mut regions = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let range = fields.next().context("empty maps line")?;
        let perms = fields.next().context("maps line without permissions")?;
        let has_path = fields.nth(3).is_some();
        let (start, end) = range.split_once('-').context("maps range")?;
        let start = u64::from_str_radix(start, 16)?;
        let end = u64::from_str_radix(end, 16)?;
        regions.push((start, end, perms.to_string(), has_path));
    }
    let mut sizes_kib = std::collections::BTreeMap::<u64, u32>::new();
    for pair in regions.windows(2) {
        let (guard, stack) = (&pair[0], &pair[1]);
        let is_guard = guard.2 == "---p" && !guard.3 && guard.1 - guard.0 <= 64 * 1024;
        let is_stack = stack.2 == "rw-p" && !stack.3 && stack.1 - stack.0 >= 64 * 1024;
        if is_guard && guard.1 == stack.0 && is_stack {
            *sizes_kib.entry((stack.1 - stack.0) / 1024).or_default() += 1;
        }
    }
    let shown = if sizes_kib.is_empty() {
        "none".to_string()
    } else {
        let groups: Vec<String> = sizes_kib
            .iter()
            .map(|(kib, count)| format!("{count} of {kib} KiB"))
            .collect();
        groups.join(", ")
    };
    trace::view("proc", "proc", || {
        format!("/proc/self/maps => thread stacks (above a guard page): {shown}")
    });
    Ok(())
}

/// How long a scenario waits for another thread to reach a blocking call
/// before it gives up with an error. Never reached when all is well.
const WAIT_LIMIT: Duration = Duration::from_secs(5);

/// Waits until thread `tid` sleeps in a system call that `wanted` accepts
/// (read from /proc by [`lab_kit::proc`]), for at most [`WAIT_LIMIT`].
fn wait_until_blocked(tid: Pid, wanted: impl Fn(&proc::Asleep) -> bool) -> Result<proc::Asleep> {
    proc::wait_until_asleep(tid, WAIT_LIMIT, wanted).with_context(|| {
        format!("thread {tid} did not block in the expected call within {WAIT_LIMIT:?}")
    })
}

/// `[proc] thread accept-loop (/proc/self/task/*/syscall) => asleep in read(conn-1)`:
/// where the server thread named `name` sleeps. Waits until it sleeps in a
/// system call, leaving out futex (a lock taken for a moment, not the
/// server's own call).
fn thread_asleep_in(name: &str) -> Result<()> {
    use nix::libc;
    let tid = proc::thread_named(name)?;
    // Any call: lab_kit::proc already leaves out futex.
    let asleep = wait_until_blocked(tid, |_| true)?;
    let first = asleep.int_arg(0);
    let call = match asleep.number {
        libc::SYS_read => format!("read({})", lab_kit::name_of(first)),
        libc::SYS_accept | libc::SYS_accept4 => {
            format!("accept({})", lab_kit::name_of(first))
        }
        other => format!("system call number {other}"),
    };
    trace::view("proc", "proc", || {
        format!("thread {name} (/proc/self/task/*/syscall) => asleep in {call}")
    });
    Ok(())
}

/// How many times the SIGUSR1 handler of the `eintr` scenario ran.
static HANDLER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The handler: it only counts. An atomic add is async-signal-safe.
extern "C" fn count_handler_run(_signal: nix::libc::c_int) {
    HANDLER_RUNS.fetch_add(1, Ordering::SeqCst);
}

// ANCHOR: sigaction
/// [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html):
/// installs [`count_handler_run`] for SIGUSR1, with `flags` (empty, or
/// SA_RESTART): `sigaction(SIGUSR1, {count_handler_run, SA_RESTART}) -> 0`.
fn install_handler(flags: SaFlags) -> nix::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(count_handler_run),
        flags,
        SigSet::empty(),
    );
    // SAFETY: the handler only adds to an atomic counter (async-signal-safe).
    let r = unsafe { sigaction(Signal::SIGUSR1, &action) }.map(drop);
    trace::emit("sigaction", || {
        let flags = if flags.contains(SaFlags::SA_RESTART) {
            "SA_RESTART"
        } else {
            "flags=0"
        };
        let shown = trace::result(&r, |_| "0".to_string());
        format!("sigaction(SIGUSR1, {{count_handler_run, {flags}}}) -> {shown}")
    });
    r
}
// ANCHOR_END: sigaction

/// What the helper thread of `eintr` did, as lines the main thread prints
/// after its read returned (only the main thread prints, so the transcript
/// does not depend on scheduling).
type HelperLines = Vec<String>;

/// A helper thread for `eintr`: waits until thread `reader` sleeps in
/// `read(conn)`, sends it SIGUSR1, and, if `then_write`, waits for the
/// handler to have run and the read to sleep again, then writes `"hello"`
/// to `peer`. Records each call with its real result, and gives `peer`
/// back. If something goes wrong, it writes one byte to `peer` so the
/// reader's read cannot hang, and returns the error.
fn interrupt_read(
    reader: (Pthread, Pid),
    conn: RawFd,
    peer: UnixStream,
    then_write: bool,
) -> thread::JoinHandle<(Result<HelperLines>, UnixStream)> {
    thread::spawn(move || {
        let (pthread, tid) = reader;
        let in_read_conn =
            |call: &proc::Asleep| call.number == nix::libc::SYS_read && call.int_arg(0) == conn;
        let conn_name = lab_kit::name_of(conn);
        let runs_before = HANDLER_RUNS.load(Ordering::SeqCst);
        let steps = || -> Result<HelperLines> {
            let mut lines = Vec::new();
            wait_until_blocked(tid, in_read_conn)?;
            let sent = pthread_kill(pthread, Signal::SIGUSR1);
            lines.push(format!(
                "main thread asleep in read({conn_name}): pthread_kill(main thread, SIGUSR1) => {}",
                trace::result(&sent, |_| "0".to_string())
            ));
            sent?;
            if then_write {
                let deadline = std::time::Instant::now() + WAIT_LIMIT;
                while HANDLER_RUNS.load(Ordering::SeqCst) == runs_before {
                    anyhow::ensure!(
                        std::time::Instant::now() < deadline,
                        "the SIGUSR1 handler did not run within {WAIT_LIMIT:?}"
                    );
                    thread::yield_now();
                }
                wait_until_blocked(tid, in_read_conn)?;
                let written = nix::unistd::write(&peer, b"hello");
                lines.push(format!(
                    "handler ran, main thread asleep in read({conn_name}) again: write({}, \"hello\") => {}",
                    lab_kit::name_of(peer.as_raw_fd()),
                    trace::result(&written, |n| n.to_string())
                ));
                written?;
            }
            Ok(lines)
        };
        let result = steps();
        if result.is_err() {
            // Unblock the reader; its read then returns this byte, and the
            // scenario reports the error below instead of hanging.
            let _ = nix::unistd::write(&peer, b"!");
        }
        (result, peer)
    })
}

fn eintr() -> Result<()> {
    trace::enable();
    note("A blocking read on conn, with nothing to read. A helper thread waits until");
    note("this thread sleeps in that read (it watches /proc/self/task/TID/syscall),");
    note("then sends it SIGUSR1. The helper prints nothing itself: its calls are shown");
    note("after the read returns, as [helper] lines.");
    let (peer, conn) = fixtures::socketpair("peer", "conn")?;
    let me = (pthread_self(), gettid());
    let mut buf = [0u8; 64];
    blank();

    note("1. The handler is installed without SA_RESTART.");
    install_handler(SaFlags::empty())?;
    HANDLER_RUNS.store(0, Ordering::SeqCst);
    let helper = interrupt_read(me, conn.as_raw_fd(), peer, false);
    // The error is the lesson: the traced line shows it.
    let first = trace::read(&conn, &mut buf);
    let peer = print_helper(helper)?;
    trace::tally(
        "runs of the SIGUSR1 handler",
        HANDLER_RUNS.load(Ordering::SeqCst),
    );
    anyhow::ensure!(first.is_err(), "the read returned data, not EINTR");
    note("The handler ran, then the read failed with EINTR, having read nothing. The");
    note("caller decides: retry (this chapter's echo does), or give up.");
    blank();

    note("2. The same, with the handler installed with SA_RESTART.");
    install_handler(SaFlags::SA_RESTART)?;
    HANDLER_RUNS.store(0, Ordering::SeqCst);
    let helper = interrupt_read(me, conn.as_raw_fd(), peer, true);
    trace::read(&conn, &mut buf)?;
    print_helper(helper)?;
    trace::tally(
        "runs of the SIGUSR1 handler",
        HANDLER_RUNS.load(Ordering::SeqCst),
    );
    note("The handler ran during the read, and the read did not fail: the kernel");
    note("restarted it after the handler returned, and it slept on until data came.");
    note("signal(7) lists the calls SA_RESTART restarts (read and write on sockets and");
    note("pipes among them; socket calls not if a timeout is set on the socket) and those");
    note("it never restarts: select, poll and epoll_wait fail with EINTR either way.");
    Ok(())
}

/// Joins the helper of `eintr`, prints what it did (one `[helper]` line per
/// call it made), and returns the peer it borrowed.
fn print_helper(
    helper: thread::JoinHandle<(Result<HelperLines>, UnixStream)>,
) -> Result<UnixStream> {
    let Ok((lines, peer)) = helper.join() else {
        anyhow::bail!("the helper thread panicked");
    };
    for line in lines? {
        trace::view("helper", "helper", || line);
    }
    Ok(peer)
}

fn serve(addr: SocketAddr, one_at_a_time: bool) -> Result<()> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "this lab's servers listen on loopback only (127.0.0.1), not on {addr}"
    );
    let listener = lab_kit::cli::bind_loopback(addr)?;
    let bound = listener.local_addr()?;
    println!("listening on {bound}");
    let mode = if one_at_a_time {
        "one client at a time"
    } else {
        "one thread per client"
    };
    println!("serving {mode}; Ctrl-C stops the server");
    if one_at_a_time {
        serve_one_at_a_time(&listener, print_log)
    } else {
        serve_thread_per_client(&listener, print_log)
    }
    .context("accept failed")
}
