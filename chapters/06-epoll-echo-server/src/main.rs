//! `ch06-epoll-echo-server`: a correct level-triggered echo server, its
//! scenarios, `serve`, and the `bench` that compares backends.

use std::io::Write;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ch06_epoll_echo_server::bench::{self, Load};
use ch06_epoll_echo_server::{Backend, EchoServer, EpollPoller};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use lab_kit::epoll::{self, Op, create1, ctl, show_interest_list};
use lab_kit::names::name_token;
use lab_kit::{fixtures, note, trace};
use nix::errno::Errno;
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

#[derive(Subcommand)]
enum Command {
    /// A short session with the server, every system call shown
    Session,
    /// Always-on EPOLLOUT: an idle socket is writable, so the loop never sleeps
    AlwaysOnEpollout,
    /// A client that sends but never reads: the server stops reading, memory stays bounded
    Backpressure,
    /// The client shuts down its sending side: the server finishes echoing, then closes
    HalfClose,
    /// The client resets the connection: only that connection is closed
    Reset,
    /// Serve on 127.0.0.1 until Ctrl-C; SIGUSR1 prints the wake-up count
    ///
    /// Ctrl-C sends SIGINT, whose default action ends the process; the kernel
    /// closes every descriptor. `kill -USR1 PID` makes the server print
    /// `stats: W wake-ups, C connections open`.
    Serve {
        /// Where to listen; port 0 lets the kernel choose (printed first).
        #[arg(long, default_value = "127.0.0.1:7006")]
        addr: String,
        /// The multiplexer under the same loop.
        #[arg(long, value_enum, default_value = "epoll")]
        backend: BackendArg,
    },
    /// Compare the backends (and chapter 01's threads) under load (see the README)
    Bench {
        /// Connections doing 64-byte ping-pong.
        #[arg(long, default_value_t = 50)]
        active: usize,
        /// Idle connection counts to run with, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "0,10000")]
        idle: Vec<usize>,
        /// Seconds measured per row (after one second of warm-up).
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Servers to run, comma-separated: epoll, poll, select, threads.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "epoll,poll,select,threads"
        )]
        servers: Vec<String>,
        /// Runs of the whole table; each row shows the median run.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        lab_kit::transcript::print_scenarios(
            PACKAGE,
            "a correct level-triggered echo server on epoll",
            &Cli::command(),
        );
        return Ok(());
    };
    match command {
        Command::Serve { addr, backend } => serve(&addr, backend),
        Command::Bench {
            active,
            idle,
            seconds,
            servers,
            rounds,
        } => run_bench(active, &idle, seconds, &servers, rounds),
        scenario => {
            trace::enable();
            match scenario {
                Command::Session => session(),
                Command::AlwaysOnEpollout => always_on_epollout(),
                Command::Backpressure => backpressure(),
                Command::HalfClose => half_close(),
                Command::Reset => reset(),
                Command::Serve { .. } | Command::Bench { .. } => unreachable!("handled above"),
            }
        }
    }
}

fn serve(addr: &str, backend: BackendArg) -> Result<()> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("--addr {addr:?} is not an address like 127.0.0.1:7006"))?;
    ch06_epoll_echo_server::install_stats_signal().context("install the SIGUSR1 handler")?;
    let listener = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
    let backend = match backend {
        BackendArg::Epoll => Backend::Epoll,
        BackendArg::Poll => Backend::Poll,
        BackendArg::Select => Backend::Select,
    };
    ch06_epoll_echo_server::serve(listener, backend).context("the event loop failed")
}

fn run_bench(
    active: usize,
    idle: &[usize],
    seconds: u64,
    names: &[String],
    rounds: usize,
) -> Result<()> {
    let this = std::env::current_exe().context("where is this binary?")?;
    let all = bench::default_servers(&this);
    let mut servers = Vec::new();
    for name in names {
        match all.iter().find(|s| &s.name == name) {
            Some(server) => servers.push(server.clone()),
            None => bail!("unknown server {name:?}: choose from epoll, poll, select, threads"),
        }
    }
    let load = Load {
        active,
        idle: 0,
        duration: Duration::from_secs(seconds),
        warmup: Duration::from_secs(1),
    };
    let mut out = std::io::stdout();
    bench::run_matrix(&servers, idle, &load, rounds, &mut out)?;
    out.flush()?;
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

fn backpressure() -> Result<()> {
    let listener = fixtures::listener("listener")?;
    let addr = listener.local_addr()?;
    let max = 64 * 1024;
    note("max_buffered = 65536: a connection may have that many bytes waiting to be");
    note("echoed before the server stops reading from it.");
    let mut server = traced_server(listener)?.with_max_buffered(max);
    let client = fixtures::connect(addr, "client")?;
    client.set_nonblocking(true)?;
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
    note("The server stopped asking for EPOLLIN: it only waits to be able to write.");
    note("The kernel's copy of the interest list shows it:");
    show_interest_list(server.poller().epoll())?;
    note("Whatever the client sends now stays in the kernel's buffers; when they are");
    note("full its writes fail with EAGAIN. The server's memory stays at 64 KiB.");
    note("Now the client reads everything back (quietly), and stops sending:");
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
    note("One wait reports EPOLLIN|EPOLLRDHUP. The server reads the data, then end of");
    note("file; it echoes, and with nothing left to send it closes conn-1.");
    turn(&mut server)?;
    trace::read(&client, &mut [0; 64])?;
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
    note("client-1 closes with SO_LINGER set to 0 seconds: the kernel sends a reset");
    note("(RST) instead of a normal close (FIN).");
    set_linger_zero(&rude)?;
    trace::close(OwnedFd::from(rude))?;
    turn(&mut server)?;
    note("conn-1 is gone; conn-2 is served as before.");
    trace::write(&polite, b"still there?")?;
    turn(&mut server)?;
    trace::read(&polite, &mut [0; 64])?;
    Ok(())
}

fn set_linger_zero(stream: &std::net::TcpStream) -> Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::Linger};
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(stream, Linger, &linger).context("setsockopt(SO_LINGER)")?;
    Ok(())
}
