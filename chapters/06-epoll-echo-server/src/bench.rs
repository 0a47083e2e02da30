//! The load generator behind `ch06-epoll-echo-server bench`.
//!
//! [`run_client`] opens `idle` connections that never send anything, then
//! `active` connections that each play ping-pong: write a 64-byte message,
//! wait for all 64 bytes to come back, check them, write the next. It runs
//! on one thread with its own epoll instance, so the client costs the same
//! whichever server it measures. [`run_matrix`] starts each server in turn
//! and prints one table, so the figures are compared within one run.
//!
//! This is a benchmark, not a test: it measures time, and its numbers
//! belong in a table, never in an assertion.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ch03_select::poller::{Event, Interest, Poller, Token};
use ch05_epoll_api::EpollPoller;
use lab_kit::server::ServerProcess;
use nix::errno::Errno;

/// The size of one ping-pong message.
pub const MESSAGE: usize = 64;

/// What one client run is asked to do.
#[derive(Clone, Debug)]
pub struct Load {
    pub active: usize,
    pub idle: usize,
    /// Measured time, after `warmup`.
    pub duration: Duration,
    pub warmup: Duration,
}

/// What one client run measured.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// Complete round trips (64 bytes out, the same 64 back) in `duration`.
    pub round_trips: u64,
    pub elapsed: Duration,
    /// Round-trip latency percentiles.
    pub p50: Duration,
    pub p99: Duration,
    /// Active connections the server closed or broke during the run.
    pub broken: usize,
    /// Echoes whose bytes differed from what was sent.
    pub corrupt: u64,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One active connection of the client.
struct Pinger {
    stream: TcpStream,
    message: [u8; MESSAGE],
    received: usize,
    sent_at: Instant,
    alive: bool,
}

impl Pinger {
    fn send(&mut self) -> io::Result<()> {
        self.received = 0;
        self.sent_at = Instant::now();
        // 64 bytes always fit an empty send buffer: one write is enough,
        // but a short count is checked rather than assumed away.
        let n = (&self.stream).write(&self.message)?;
        if n != MESSAGE {
            return Err(io::Error::other("short write of a 64-byte message"));
        }
        Ok(())
    }
}

/// Runs the client against `addr` and measures.
pub fn run_client(addr: SocketAddr, load: &Load) -> io::Result<Measured> {
    // Idle connections: opened, never used, held until the end.
    let mut idle = Vec::with_capacity(load.idle);
    for _ in 0..load.idle {
        idle.push(TcpStream::connect(addr)?);
    }

    let mut poller = EpollPoller::new()?;
    let mut pingers = Vec::with_capacity(load.active);
    for i in 0..load.active {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        poller.add(stream.as_raw_fd(), Token(i), Interest::READABLE)?;
        let mut message = [0u8; MESSAGE];
        for (j, byte) in message.iter_mut().enumerate() {
            *byte = (i * 7 + j) as u8;
        }
        pingers.push(Pinger {
            stream,
            message,
            received: 0,
            sent_at: Instant::now(),
            alive: true,
        });
    }
    for pinger in &mut pingers {
        pinger.send()?;
    }

    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let mut measuring = false;
    let mut measured = Measured::default();
    let mut latencies: Vec<u32> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if !measuring && now >= measure_from {
            measuring = true;
            measured.round_trips = 0;
            latencies.clear();
        }
        if pingers.iter().all(|p| !p.alive) {
            break;
        }
        match poller.wait(&mut events, Some(end - now)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            let pinger = &mut pingers[event.token.0];
            if !pinger.alive {
                continue;
            }
            match nix::unistd::read(&pinger.stream, &mut buf) {
                Ok(0) | Err(Errno::ECONNRESET) => {
                    pinger.alive = false;
                    measured.broken += 1;
                    poller.delete(pinger.stream.as_raw_fd())?;
                }
                Ok(n) => {
                    let expected = &pinger.message
                        [pinger.received..pinger.received + n.min(MESSAGE - pinger.received)];
                    if &buf[..expected.len()] != expected || n > MESSAGE - pinger.received {
                        measured.corrupt += 1;
                    }
                    pinger.received += n;
                    if pinger.received >= MESSAGE {
                        let micros = pinger.sent_at.elapsed().as_micros();
                        latencies.push(micros.min(u32::MAX as u128) as u32);
                        measured.round_trips += 1;
                        pinger.send()?;
                    }
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    measured.elapsed = if measuring {
        Instant::now().min(end) - measure_from
    } else {
        Duration::ZERO
    };
    latencies.sort_unstable();
    let percentile = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .map(|&us| Duration::from_micros(us.into()))
            .unwrap_or_default()
    };
    measured.p50 = percentile(50);
    measured.p99 = percentile(99);
    drop(idle);
    Ok(measured)
}

/// A server to measure: a name for the table and how to start it.
#[derive(Clone, Debug)]
pub struct ServerUnderTest {
    pub name: String,
    pub binary: PathBuf,
    pub args: Vec<String>,
}

/// The four servers of the comparison: the chapter-06 loop on each backend,
/// and chapter 01's thread per connection (if its binary was built beside
/// this one).
pub fn default_servers(this_binary: &Path) -> Vec<ServerUnderTest> {
    let mut servers: Vec<ServerUnderTest> = ["epoll", "poll", "select"]
        .iter()
        .map(|backend| ServerUnderTest {
            name: backend.to_string(),
            binary: this_binary.to_path_buf(),
            args: vec!["--backend".into(), backend.to_string()],
        })
        .collect();
    servers.push(ServerUnderTest {
        name: "threads".into(),
        binary: this_binary.with_file_name("ch01-blocking-io"),
        args: vec![],
    });
    servers
}

/// Raises this process's soft limit on open files to at least `wanted`
/// (up to the hard limit). Servers started afterwards inherit it.
/// Returns the soft limit now in force.
pub fn raise_fd_limit(wanted: u64) -> nix::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= wanted {
        return Ok(soft);
    }
    let new_soft = wanted.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, new_soft, hard)?;
    Ok(new_soft)
}

/// One row of the table.
pub struct Row {
    pub server: String,
    pub idle: usize,
    pub outcome: Result<Measured, String>,
}

/// Runs every server with every idle count, `rounds` times over (the
/// servers take turns, so a slow moment of the machine hits them alike),
/// and prints one row per cell: the round with the median throughput.
pub fn run_matrix(
    servers: &[ServerUnderTest],
    idles: &[usize],
    load: &Load,
    rounds: usize,
    out: &mut dyn Write,
) -> io::Result<Vec<Row>> {
    let needed = (load.active + idles.iter().copied().max().unwrap_or(0) + 64) as u64;
    let limit = raise_fd_limit(needed)?;
    writeln!(
        out,
        "{} active connections (64-byte ping-pong), {:?} measured after {:?} warm-up, \
         median of {rounds} round(s); open-file limit {limit}",
        load.active, load.duration, load.warmup
    )?;
    // cells[i] holds every round's outcome for (idle, server) number i.
    let cells: Vec<(usize, &ServerUnderTest)> = idles
        .iter()
        .flat_map(|&idle| servers.iter().map(move |server| (idle, server)))
        .collect();
    let mut outcomes: Vec<Vec<Result<Measured, String>>> = vec![Vec::new(); cells.len()];
    for round in 1..=rounds.max(1) {
        eprintln!("round {round} of {rounds}...");
        for (i, (idle, server)) in cells.iter().enumerate() {
            outcomes[i].push(measure_one(server, *idle, load, limit));
        }
    }
    writeln!(
        out,
        "{:<8} {:>6} {:>14} {:>10} {:>10}  {:>12}  note",
        "server", "idle", "round trips/s", "p50", "p99", "vs epoll@0"
    )?;
    let mut rows = Vec::new();
    let mut baseline: Option<f64> = None;
    for ((idle, server), mut results) in cells.into_iter().zip(outcomes) {
        // The median of the rounds that worked; if none did, the first error.
        results.sort_by(|a, b| match (a, b) {
            (Ok(a), Ok(b)) => a.per_second().total_cmp(&b.per_second()),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => std::cmp::Ordering::Equal,
        });
        let worked = results.iter().filter(|r| r.is_ok()).count();
        let outcome = if worked > 0 {
            results.swap_remove((worked - 1) / 2)
        } else {
            results.swap_remove(0)
        };
        let row = Row {
            server: server.name.clone(),
            idle,
            outcome,
        };
        print_row(out, &row, &mut baseline)?;
        rows.push(row);
    }
    Ok(rows)
}

fn measure_one(
    server: &ServerUnderTest,
    idle: usize,
    load: &Load,
    limit: u64,
) -> Result<Measured, String> {
    if !server.binary.exists() {
        return Err(format!(
            "{} not built (cargo build --release -p ch01-blocking-io)",
            server.binary.display()
        ));
    }
    // Each side holds one descriptor per connection (plus a few).
    if (load.active + idle + 32) as u64 > limit {
        return Err(format!(
            "skipped: needs {} open files, limit is {limit}",
            load.active + idle + 32
        ));
    }
    let args: Vec<&str> = server.args.iter().map(String::as_str).collect();
    let process = ServerProcess::start(&server.binary, &args);
    let result = run_client(
        process.addr,
        &Load {
            idle,
            ..load.clone()
        },
    );
    drop(process);
    match result {
        Ok(m) if m.broken == load.active => Err(format!(
            "the server closed all {} active connections",
            load.active
        )),
        Ok(m) => Ok(m),
        Err(e) => Err(format!("client error: {e}")),
    }
}

fn print_row(out: &mut dyn Write, row: &Row, baseline: &mut Option<f64>) -> io::Result<()> {
    match &row.outcome {
        Ok(m) => {
            let rate = m.per_second();
            if row.server == "epoll" && row.idle == 0 {
                *baseline = Some(rate);
            }
            let ratio = baseline
                .map(|b| format!("{:.2}x", rate / b))
                .unwrap_or_else(|| "-".into());
            let mut note = String::new();
            if m.broken > 0 {
                note.push_str(&format!("{} connections broken; ", m.broken));
            }
            if m.corrupt > 0 {
                note.push_str(&format!("{} corrupt echoes!", m.corrupt));
            }
            writeln!(
                out,
                "{:<8} {:>6} {:>14.0} {:>8}us {:>8}us  {:>12}  {note}",
                row.server,
                row.idle,
                rate,
                m.p50.as_micros(),
                m.p99.as_micros(),
                ratio
            )
        }
        Err(why) => writeln!(
            out,
            "{:<8} {:>6} {:>14} {:>10} {:>10}  {:>12}  {why}",
            row.server, row.idle, "-", "-", "-", "-"
        ),
    }
}
