//! `ch06-epoll-echo-server`: a correct level-triggered echo server, its
//! scenarios, `serve`, and the `bench` that compares backends.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ch06_epoll_echo_server::bench::{self, Load};
use ch06_epoll_echo_server::{Backend, EchoServer, EpollPoller};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use lab_kit::epoll::{self, Op, create1, ctl, show_interest_list};
use lab_kit::names::name_token;
use lab_kit::{fixtures, note, trace};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::epoll::{EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::Shutdown;

const PACKAGE: &str = "ch06-epoll-echo-server";

#[derive(Parser)]
#[command(name = PACKAGE, about = "a correct level-triggered epoll echo server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    Epoll,
    Poll,
    Select,
}

/// A server `bench` can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ServerArg {
    Epoll,
    Poll,
    Select,
    /// Chapter 01's thread per connection.
    Threads,
}

#[derive(Subcommand)]
enum Command {
    /// A short session with the server, every system call shown
    Session,
    /// Always-on EPOLLOUT: an idle socket is writable, so the loop never sleeps
    AlwaysOnEpollout,
    /// Paused, but still asking for EPOLLRDHUP: after the peer's half-close every wait returns at once
    RdhupWhilePaused,
    /// A client that sends but never reads: the server stops reading, memory stays bounded
    Backpressure,
    /// The client shuts down its sending side: the server finishes echoing, then closes
    HalfClose,
    /// The client resets the connection: only that connection is closed
    Reset,
    /// Serve on 127.0.0.1 until Ctrl-C; SIGUSR1 prints the wake-up count
    ///
    /// Ctrl-C (SIGINT) or SIGTERM stops it cleanly: every connection gets
    /// what the server still holds for it and is closed, the server prints
    /// `shutting down: N connections closed` and exits with status 0.
    /// `kill -USR1 PID` makes the server print
    /// `stats: W wake-ups, C connections open, N system calls (...)`: its
    /// wake-ups, and the system calls it made, counted by the calls. Both
    /// signals are read from a signalfd in the loop (chapter 11).
    Serve {
        /// Where to listen (loopback only); port 0 lets the kernel choose,
        /// and the server prints the address it got first.
        #[arg(long, default_value = "127.0.0.1:7006", value_parser = lab_kit::cli::loopback_addr)]
        addr: SocketAddr,
        /// The multiplexer under the same loop.
        #[arg(long, value_enum, default_value = "epoll")]
        backend: BackendArg,
    },
    /// Compare the backends (and chapter 01's threads) under load (see the README)
    ///
    /// With `--compare-c DIR`: this chapter's epoll server against the C
    /// epoll echo server of perf-reference, both driven by its C `pingpong`
    /// client (server on CPU 0, client on CPU 1, alternating rounds).
    Bench {
        /// Connections doing 64-byte ping-pong (a list: one table each).
        #[arg(long, value_delimiter = ',', default_value = "50")]
        active: Vec<usize>,
        /// Idle connection counts to run with, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "0,10000")]
        idle: Vec<usize>,
        /// Seconds measured per row (after one second of warm-up).
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Servers to run, comma-separated.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "epoll,poll,select,threads"
        )]
        servers: Vec<ServerArg>,
        /// Runs of the whole table; each row shows the median run.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Compare with the C server instead: the folder holding the built
        /// `epoll_echo` and `pingpong` (make -C perf-reference BUILD=DIR).
        #[arg(long, value_name = "DIR")]
        compare_c: Option<std::path::PathBuf>,
        /// With --compare-c: measured round trips per run, spread over the
        /// connections.
        #[arg(long, default_value_t = 200_000)]
        round_trips: u64,
        /// Also write the tables as Markdown to FILE (the book includes
        /// chapters/06-epoll-echo-server/bench/idle.md and compare-c.md,
        /// written this way).
        #[arg(long, value_name = "FILE")]
        markdown: Option<std::path::PathBuf>,
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
            "a correct level-triggered echo server on epoll",
            &Cli::command(),
        );
        return Ok(());
    };
    match command {
        Command::Serve { addr, backend } => serve(addr, backend),
        Command::Bench {
            active,
            idle,
            seconds,
            servers,
            rounds,
            compare_c,
            round_trips,
            markdown,
        } => match compare_c {
            Some(c_dir) => {
                let comparison = bench::Comparison {
                    c_dir,
                    this_binary: std::env::current_exe().context("where is this binary?")?,
                    connections: active,
                    rounds,
                    round_trips,
                };
                let mut out = std::io::stdout();
                let tables = bench::compare_with_c(&comparison, &mut out)?;
                if let Some(path) = markdown {
                    std::fs::write(&path, tables)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                Ok(())
            }
            None => run_bench(&active, &idle, seconds, &servers, rounds, markdown),
        },
        scenario => {
            trace::enable();
            match scenario {
                Command::Session => session(),
                Command::AlwaysOnEpollout => always_on_epollout(),
                Command::RdhupWhilePaused => rdhup_while_paused(),
                Command::Backpressure => backpressure(),
                Command::HalfClose => half_close(),
                Command::Reset => reset(),
                Command::Serve { .. } | Command::Bench { .. } => unreachable!("handled above"),
            }
        }
    }
}

fn serve(addr: SocketAddr, backend: BackendArg) -> Result<()> {
    let listener = lab_kit::cli::bind_loopback(addr)?;
    let backend = match backend {
        BackendArg::Epoll => Backend::Epoll,
        BackendArg::Poll => Backend::Poll,
        BackendArg::Select => Backend::Select,
    };
    ch06_epoll_echo_server::serve(listener, backend).context("the event loop failed")
}

fn run_bench(
    actives: &[usize],
    idle: &[usize],
    seconds: u64,
    names: &[ServerArg],
    rounds: usize,
    markdown: Option<std::path::PathBuf>,
) -> Result<()> {
    let this = std::env::current_exe().context("where is this binary?")?;
    let all = bench::default_servers(&this);
    let servers: Vec<_> = names
        .iter()
        .map(|arg| {
            // The name on the command line: `epoll`, ..., `threads`.
            let value = arg.to_possible_value().expect("no skipped values");
            all.iter()
                .find(|s| s.name == value.get_name())
                .cloned()
                .expect("every ServerArg has a server")
        })
        .collect();
    let mut out = std::io::stdout();
    let mut tables = String::new();
    // How busy the machine was: the book prints it under the table.
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    for &active in actives {
        let load = Load {
            active,
            idle: 0,
            duration: Duration::from_secs(seconds),
            warmup: Duration::from_secs(1),
        };
        let rows = bench::run_matrix(&servers, idle, &load, rounds, &mut out)?;
        tables.push_str(&bench::markdown_table(&rows));
        tables.push_str(&format!(
            "\n`bench --rounds {rounds}`: {active} active connections (64-byte ping-pong), \
             {seconds} s measured after 1 s of warm-up, each row the median of {rounds} \
             rounds; load average {load_average} on {cpus} CPUs when it started.\n"
        ));
    }
    out.flush()?;
    if let Some(path) = markdown {
        std::fs::write(&path, tables).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// An echo server on epoll whose log lines show up in the transcript as
/// `[log] ...`, with tokens named like its connections.
fn traced_server(listener: TcpListener) -> Result<EchoServer<EpollPoller>> {
    name_token(0, "listener");
    for id in 1..=3 {
        name_token(id, &format!("conn-{id}"));
    }
    let server =
        EchoServer::new(EpollPoller::new()?, listener)?.with_log(|line| println!("[log] {line}"));
    Ok(server)
}

/// One turn of the server's loop that does not block: wait with timeout 0,
/// handle what came.
fn turn(server: &mut EchoServer<EpollPoller>) -> Result<usize> {
    Ok(server.turn(Some(Duration::ZERO))?)
}

// ANCHOR: session
fn session() -> Result<()> {
    note("The server and its client run in this one thread, taking turns, so every");
    note("call appears in order. The server's turn is one wait (timeout 0) and its work.");
    let listener = fixtures::listener("listener")?;
    let addr = listener.local_addr()?;
    let mut server = traced_server(listener)?;
    let client = fixtures::connect(addr, "client")?;
    note("Server: the listener is readable; accept until EAGAIN, register conn-1.");
    turn(&mut server)?;
    trace::write(&client, b"hello\n")?;
    note("Server: read what is there, write it straight back. The write took it all,");
    note("so nothing is pending and conn-1 stays registered for EPOLLIN only.");
    turn(&mut server)?;
    trace::read(&client, &mut [0; 64])?;
    note("Nothing happens: the server sleeps (here: a wait that returns 0).");
    turn(&mut server)?;
    note("The client closes. The server reads end of file and closes conn-1.");
    trace::close(OwnedFd::from(client))?;
    turn(&mut server)?;
    Ok(())
}
// ANCHOR_END: session

// ANCHOR: always_on
fn always_on_epollout() -> Result<()> {
    name_token(1, "conn");
    let (_client, conn) = fixtures::socketpair("client", "conn")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    note("Wrong: register for EPOLLOUT all the time, 'in case there is output'.");
    let both = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT;
    ctl(&ep.0, Op::Add, conn.as_raw_fd(), both, 1)?;
    let mut events = vec![EpollEvent::empty(); 8];
    note("Nobody sent anything and the server has nothing to send, yet:");
    for _ in 0..3 {
        epoll::wait(&ep, &mut events, Some(Duration::ZERO))?;
    }
    note("An idle socket has room in its send buffer, so it is always writable, and a");
    note("level-triggered EPOLLOUT fires on every wait. A loop waiting with timeout -1");
    note("(no deadline) never sleeps. 10000 such waits, made quietly:");
    let before = trace::count_of("epoll_wait");
    let mut returned_writable = 0;
    trace::quietly(|| -> Result<()> {
        for _ in 0..10_000 {
            let n = epoll::wait(&ep, &mut events, None)?;
            let writable = events[..n]
                .iter()
                .any(|e| e.events().contains(EpollFlags::EPOLLOUT));
            if writable {
                returned_writable += 1;
            }
        }
        Ok(())
    })?;
    trace::tally("epoll_wait calls", trace::count_of("epoll_wait") - before);
    trace::tally("of them returned at once with EPOLLOUT", returned_writable);

    trace::blank();
    note("Right: EPOLLIN only; add EPOLLOUT while output is pending, drop it after.");
    ctl(&ep.0, Op::Mod, conn.as_raw_fd(), EpollFlags::EPOLLIN, 1)?;
    epoll::wait(&ep, &mut events, Some(Duration::ZERO))?;
    note("With nothing to do, a wait with a deadline now sleeps until it (here 0).");
    Ok(())
}
// ANCHOR_END: always_on

// ANCHOR: rdhup_while_paused
fn rdhup_while_paused() -> Result<()> {
    name_token(1, "conn");
    let listener = fixtures::listener("listener")?;
    let client = fixtures::connect(listener.local_addr()?, "client")?;
    let conn = trace::accept(&listener, "conn")?;
    note("conn is a server's connection whose client sends but does not read. The server");
    note("has a full buffer for it, so it has paused reading: it waits only until it can");
    note("write. First, fill conn's send buffer (the client does not read), quietly:");
    let flags = trace::get_flags(&conn)?;
    trace::set_flags(&conn, flags | OFlag::O_NONBLOCK)?;
    let full = trace::quietly(|| fill_until_eagain(&conn))?;
    trace::tally(
        "write(conn) ended with EAGAIN: the send buffer is full",
        full,
    );
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    note("Wrong: the paused registration keeps EPOLLRDHUP ('to notice a hang-up').");
    let out_rdhup = EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP;
    ctl(&ep.0, Op::Add, conn.as_raw_fd(), out_rdhup, 1)?;
    let mut events = vec![EpollEvent::empty(); 8];
    epoll::wait(&ep, &mut events, Some(Duration::ZERO))?;
    note("The client sends its last bytes and shuts down its sending side.");
    trace::write(&client, b"bye")?;
    trace::shutdown(&client, Shutdown::Write)?;
    epoll::wait(&ep, &mut events, Some(Duration::ZERO))?;
    epoll::wait(&ep, &mut events, Some(Duration::ZERO))?;
    note("Level-triggered: the peer's FIN stays in conn's queue until someone reads it,");
    note("so EPOLLRDHUP stays true, and every wait reports it. The loop is paused and will");
    note("not read, so nothing clears it: a loop waiting with no timeout would spin.");
    note("10000 more waits, quietly:");
    let before = trace::count_of("epoll_wait");
    let mut reported = 0;
    trace::quietly(|| -> Result<()> {
        for _ in 0..10_000 {
            let n = epoll::wait(&ep, &mut events, Some(Duration::ZERO))?;
            if events[..n]
                .iter()
                .any(|e| e.events().contains(EpollFlags::EPOLLRDHUP))
            {
                reported += 1;
            }
        }
        Ok(())
    })?;
    trace::tally("epoll_wait calls", trace::count_of("epoll_wait") - before);
    trace::tally("of them reported conn: EPOLLRDHUP", reported);

    trace::blank();
    note("Right: while paused, ask only for what the loop will act on now: EPOLLOUT.");
    ctl(&ep.0, Op::Mod, conn.as_raw_fd(), EpollFlags::EPOLLOUT, 1)?;
    epoll::wait(&ep, &mut events, Some(Duration::ZERO))?;
    note("Nothing to report: the loop sleeps until the client reads and makes room.");
    note("When it resumes reading, it asks for EPOLLIN|EPOLLRDHUP again, and acts on them:");
    let in_rdhup = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
    ctl(&ep.0, Op::Mod, conn.as_raw_fd(), in_rdhup, 1)?;
    epoll::wait(&ep, &mut events, Some(Duration::ZERO))?;
    trace::read(&conn, &mut [0; 64])?;
    trace::read(&conn, &mut [0; 64])?;
    Ok(())
}
// ANCHOR_END: rdhup_while_paused

/// Writes to `fd` until a write fails with EAGAIN (true) or `limit` writes
/// all succeeded (false).
fn fill_until_eagain(fd: &impl AsFd) -> Result<bool> {
    let chunk = [b'x'; 16 * 1024];
    for _ in 0..100_000 {
        match trace::write(fd, &chunk) {
            Ok(_) => {}
            Err(Errno::EAGAIN) => return Ok(true),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

fn backpressure() -> Result<()> {
    let listener = fixtures::listener("listener")?;
    let addr = listener.local_addr()?;
    let max = 64 * 1024;
    note("max_buffered = 65536: a connection may have that many bytes waiting to be");
    note("echoed before the server stops reading from it.");
    let mut server = traced_server(listener)?.with_max_buffered(max);
    let client = fixtures::connect(addr, "client")?;
    let flags = trace::get_flags(&client)?;
    trace::set_flags(&client, flags | OFlag::O_NONBLOCK)?;
    turn(&mut server)?;
    note("The client writes and never reads. First the kernel's buffers fill (its");
    note("receive buffer, the server's send buffer), then the server's own. Quietly:");
    let chunk = vec![b'x'; 16 * 1024];
    let mut sent: u64 = 0;
    let paused = trace::quietly(|| -> Result<bool> {
        for _ in 0..100_000 {
            match trace::write(&client, &chunk) {
                Ok(n) => sent += n as u64,
                Err(Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
            turn(&mut server)?;
            let (_, pending_interest) = interest_of_conn(&server)?;
            if !pending_interest.contains(EpollFlags::EPOLLIN) {
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    if !paused {
        bail!("the server never stopped reading: its buffer grew without bound");
    }
    trace::tally(
        "bytes the server holds, read but not yet echoed",
        server.bytes_waiting(),
    );
    note("The server asks about conn-1 only for EPOLLOUT now: no EPOLLIN, and no");
    note("EPOLLRDHUP either (see rdhup-while-paused). The kernel adds EPOLLERR and");
    note("EPOLLHUP to every registration; a hang-up or an error ends in a failed write.");
    note("The kernel's copy of the interest list:");
    show_interest_list(server.poller().epoll())?;
    note("The client goes on writing while the server goes on turning, quietly, until");
    note("the client's write fails: every buffer between the two is full.");
    let full = trace::quietly(|| -> Result<bool> {
        for _ in 0..100_000 {
            match trace::write(&client, &chunk) {
                Ok(n) => sent += n as u64,
                Err(Errno::EAGAIN) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
            turn(&mut server)?;
        }
        Ok(false)
    })?;
    if !full {
        bail!("the client's writes never failed: the server kept reading");
    }
    note("One more turn of the server: nothing to report (EPOLLIN is not asked for, and");
    note("conn-1 is not writable). Then one more write of the client:");
    turn(&mut server)?;
    match trace::write(&client, &chunk) {
        Err(Errno::EAGAIN) => {}
        other => bail!("the client's write should fail with EAGAIN, it gave {other:?}"),
    }
    trace::tally(
        "bytes the server holds, read but not yet echoed",
        server.bytes_waiting(),
    );
    note("Now the client stops sending and reads everything back (quietly).");
    trace::shutdown(&client, Shutdown::Write)?;
    let mut received: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    trace::quietly(|| -> Result<()> {
        while received < sent {
            turn(&mut server)?;
            match trace::read(&client, &mut buf) {
                Ok(0) => break,
                Ok(n) => received += n as u64,
                Err(Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The server sees the end of file after the last byte, and closes.
        while server.connection_count() > 0 {
            turn(&mut server)?;
        }
        Ok(())
    })?;
    trace::tally("bytes echoed == bytes sent", received == sent);
    Ok(())
}

/// conn-1's registration as the kernel holds it (fd, mask).
fn interest_of_conn(server: &EchoServer<EpollPoller>) -> Result<(i32, EpollFlags)> {
    let list = epoll::interest_list(server.poller().epoll())?;
    let conn = list
        .iter()
        .find(|r| r.data == 1)
        .context("conn-1 is not registered")?;
    Ok((conn.fd, EpollFlags::from_bits_retain(conn.events as i32)))
}

fn half_close() -> Result<()> {
    let listener = fixtures::listener("listener")?;
    let addr = listener.local_addr()?;
    let mut server = traced_server(listener)?;
    let client = fixtures::connect(addr, "client")?;
    turn(&mut server)?;
    note("The client sends its last words and shuts down its sending side: it still");
    note("wants to read the echo.");
    trace::write(&client, b"last words")?;
    trace::shutdown(&client, Shutdown::Write)?;
    note("The wait reports EPOLLIN|EPOLLRDHUP. The read returns fewer bytes than asked:");
    note("the queue is empty up to the end of file. The server echoes and waits again.");
    turn(&mut server)?;
    trace::read(&client, &mut [0; 64])?;
    note("The end of file is still there (level-triggered): this read returns 0, and with");
    note("nothing left to send the server closes conn-1.");
    turn(&mut server)?;
    trace::read(&client, &mut [0; 64])?;
    Ok(())
}

fn reset() -> Result<()> {
    let listener = fixtures::listener("listener")?;
    let addr = listener.local_addr()?;
    let mut server = traced_server(listener)?;
    let rude = fixtures::connect(addr, "client-1")?;
    let polite = fixtures::connect(addr, "client-2")?;
    turn(&mut server)?;
    note("client-1 sets SO_LINGER to on, 0 seconds: its close will send a reset (RST)");
    note("instead of a normal close (FIN).");
    trace::set_linger(&rude, Some(0))?;
    trace::close(OwnedFd::from(rude))?;
    turn(&mut server)?;
    note("conn-1 is gone; conn-2 is served as before.");
    trace::write(&polite, b"still there?")?;
    turn(&mut server)?;
    trace::read(&polite, &mut [0; 64])?;
    Ok(())
}
