//! `ch01-blocking-io`: the chapter's scenarios and its echo server.
//!
//! Without arguments it lists the scenarios. Each scenario prints a
//! transcript of real system calls; `serve` runs the echo server.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use lab_kit::trace::{self, blank};
use lab_kit::{fixtures, note};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::Shutdown;

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

/// A client connected to `addr`, with a read timeout as a safety net.
fn client(addr: SocketAddr, name: &str) -> Result<TcpStream> {
    let stream = fixtures::connect(addr, name).with_context(|| format!("connecting {name}"))?;
    stream.set_read_timeout(Some(SAFETY_NET))?;
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
    note("Nothing: the server sleeps in read(conn-1), waiting for client-1, and has");
    note("not even accepted client-2. One idle client stalls every other client.");
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
    note("client-2's thread echoed at once, while client-1's thread sleeps in its own");
    note("read(conn-1). (poll returns as soon as client-2 is readable.)");
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
