//! The load generator behind `ch06-epoll-echo-server bench`.
//!
//! [`run_client`] opens `idle` connections that never send anything, then
//! `active` connections that each play ping-pong: write a 64-byte message,
//! wait for all 64 bytes to come back, check them, write the next. It runs
//! on one thread with its own epoll instance, so the client costs the same
//! whichever server it measures. [`run_matrix`] starts each server in turn
//! and prints one table, so the figures are compared within one run.
//!
//! The system calls per round trip are counted by the server itself: its
//! traced wrappers count every call, and its `stats:` line (SIGUSR1) gives
//! the total, asked for when the measured time starts and when it ends.
//!
//! [`compare_with_c`] runs this chapter's epoll server and the minimal C
//! epoll echo server of `perf-reference` side by side, both driven by its C
//! `pingpong` client, pinned to one CPU each, in alternating rounds.
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
    /// System calls the server made in the measured time, by its own count
    /// (`None` for a server that does not count them).
    pub server_calls: Option<u64>,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The server's system calls per round trip, if it counted them.
    pub fn calls_per_round_trip(&self) -> Option<f64> {
        let calls = self.server_calls?;
        (self.round_trips > 0).then(|| calls as f64 / self.round_trips as f64)
    }
}

/// The two moments of a client run that [`run_client`] reports to its
/// caller: the measured time starts (after the warm-up), and it ends
/// (before any connection is closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Measuring,
    Done,
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

/// Runs the client against `addr` and measures. `at` is called when the
/// measured time starts and when it ends (see [`Phase`]); the time it takes
/// is not measured.
pub fn run_client(
    addr: SocketAddr,
    load: &Load,
    at: &mut dyn FnMut(Phase),
) -> io::Result<Measured> {
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
    let mut measure_start = measure_from;
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
            at(Phase::Measuring);
            measuring = true;
            measured.round_trips = 0;
            latencies.clear();
            measure_start = Instant::now();
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
        Instant::now().min(end) - measure_start
    } else {
        Duration::ZERO
    };
    if measuring {
        at(Phase::Done);
    }
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
    /// It answers SIGUSR1 with a `stats:` line that counts its system calls
    /// (this chapter's `serve`; not chapter 01's, for which SIGUSR1 would
    /// be fatal).
    pub counts_calls: bool,
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
            counts_calls: true,
        })
        .collect();
    servers.push(ServerUnderTest {
        name: "threads".into(),
        binary: this_binary.with_file_name("ch01-blocking-io"),
        args: vec![],
        counts_calls: false,
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
        "{:<8} {:>6} {:>14} {:>10} {:>10}  {:>8}  {:>10}  note",
        "server", "idle", "round trips/s", "p50", "p99", "calls/rt", "vs epoll@0"
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

/// The rows of `run_matrix` as a Markdown table, for the book: it includes
/// the file `bench --markdown FILE` writes, so its figures are never
/// retyped. Same columns as the printed table; a row that failed shows why.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut table = String::from(
        "| server | idle | round trips/s | p50 | p99 | calls/rt | vs epoll@0 |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let baseline = rows
        .iter()
        .find(|r| r.server == "epoll" && r.idle == 0)
        .and_then(|r| r.outcome.as_ref().ok())
        .map(Measured::per_second);
    for row in rows {
        let cells = match &row.outcome {
            Ok(m) => {
                let rate = m.per_second();
                [
                    thousands(rate.round() as u64),
                    format!("{} us", thousands(m.p50.as_micros() as u64)),
                    format!("{} us", thousands(m.p99.as_micros() as u64)),
                    m.calls_per_round_trip()
                        .map_or_else(|| "-".into(), |c| format!("{c:.2}")),
                    baseline.map_or_else(|| "-".into(), |b| format!("{:.2}x", rate / b)),
                ]
            }
            Err(why) => ["-".into(), "-".into(), "-".into(), "-".into(), why.clone()],
        };
        table.push_str(&format!(
            "| {} | {} | {} |\n",
            row.server,
            thousands(row.idle as u64),
            cells.join(" | ")
        ));
    }
    table
}

/// 12345 as "12,345".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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
    let mut process = ServerProcess::start(&server.binary, &args);
    let addr = process.addr;
    // The server's own count of its system calls, when measuring starts
    // and when it ends.
    let mut calls = Vec::new();
    let mut at = |_: Phase| {
        if server.counts_calls {
            calls.push(server_calls(&mut process));
        }
    };
    let result = run_client(
        addr,
        &Load {
            idle,
            ..load.clone()
        },
        &mut at,
    );
    drop(process);
    match result {
        Ok(m) if m.broken == load.active => Err(format!(
            "the server closed all {} active connections",
            load.active
        )),
        Ok(mut m) => {
            if let [Some(start), Some(end)] = calls[..] {
                m.server_calls = Some(end - start);
            }
            Ok(m)
        }
        Err(e) => Err(format!("client error: {e}")),
    }
}

/// The number of system calls `process` has made so far, from the `stats:`
/// line it prints on SIGUSR1.
fn server_calls(process: &mut ServerProcess) -> Option<u64> {
    let line = process.signal_for_line(nix::sys::signal::Signal::SIGUSR1, "stats:");
    crate::calls_in_stats(&line)
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
            let calls = m
                .calls_per_round_trip()
                .map_or_else(|| "-".to_string(), |c| format!("{c:.2}"));
            writeln!(
                out,
                "{:<8} {:>6} {:>14.0} {:>8}us {:>8}us  {:>8}  {:>10}  {note}",
                row.server,
                row.idle,
                rate,
                m.p50.as_micros(),
                m.p99.as_micros(),
                calls,
                ratio
            )
        }
        Err(why) => writeln!(
            out,
            "{:<8} {:>6} {:>14} {:>10} {:>10}  {:>8}  {:>10}  {why}",
            row.server, row.idle, "-", "-", "-", "-", "-"
        ),
    }
}

// ---------------------------------------------------------------------------
// Side by side with the C reference server.

/// What one run of the C `pingpong` client printed (one line of
/// tab-separated `key=value` fields: `roundtrips=`, `rt_per_s=`, `p50_us=`,
/// `p99_us=`, ...), and what was measured on the server meanwhile.
#[derive(Clone, Debug, Default)]
pub struct PingPong {
    pub round_trips: u64,
    pub per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Round trips in the whole run, warm-up included.
    pub all_round_trips: u64,
    /// Time the server spent on a CPU during the run, in nanoseconds (see
    /// [`cpu_ns`]).
    pub server_cpu_ns: u64,
    /// System calls the server made during the whole run (connections
    /// opened and closed included), by its own count, if it counts them.
    pub server_calls: Option<u64>,
}

impl PingPong {
    /// The server's CPU time per round trip, in microseconds: its own work,
    /// without the time it waited for a CPU while another process ran
    /// (which the throughput includes).
    pub fn cpu_us_per_round_trip(&self) -> f64 {
        self.server_cpu_ns as f64 / 1000.0 / self.all_round_trips.max(1) as f64
    }

    /// The server's system calls per round trip over the whole run.
    pub fn calls_per_round_trip(&self) -> Option<f64> {
        Some(self.server_calls? as f64 / self.all_round_trips.max(1) as f64)
    }
}

/// Reads pingpong's result line.
pub fn parse_pingpong(line: &str) -> Option<PingPong> {
    let field = |key: &str| -> Option<f64> {
        line.split('\t')
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some(PingPong {
        round_trips: field("roundtrips")? as u64,
        per_second: field("rt_per_s")?,
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        ..PingPong::default()
    })
}

/// How [`compare_with_c`] runs.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Where `make -C perf-reference BUILD=DIR` put `epoll_echo` and `pingpong`.
    pub c_dir: PathBuf,
    /// This binary (its `serve --backend epoll` is measured).
    pub this_binary: PathBuf,
    /// Connection counts, one table each.
    pub connections: Vec<usize>,
    pub rounds: usize,
    /// Measured round trips per run, spread over the connections (plus a
    /// tenth of that as warm-up).
    pub round_trips: u64,
}

/// Pins process `pid` to CPU `cpu` (sched_setaffinity(2)), like
/// `taskset -p -c CPU PID`. The servers and pingpong are single-threaded.
fn pin(pid: u32, cpu: usize) -> io::Result<()> {
    use nix::sched::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(nix::unistd::Pid::from_raw(pid as i32), &set)?;
    Ok(())
}

/// How long process `pid` has run on a CPU so far, in nanoseconds: the
/// first field of `/proc/PID/schedstat` (its main thread; the servers
/// measured here have no other).
fn cpu_ns(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))?;
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other(format!("cannot read /proc/{pid}/schedstat: {text:?}")))
}

/// A free loopback port: bind port 0, read what the kernel chose, close.
fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One pingpong command: `conns` connections, `per` measured round trips
/// each after `warm` of warm-up.
#[derive(Clone, Copy, Debug)]
struct Run {
    conns: usize,
    per: u64,
    warm: u64,
}

/// Runs pingpong (pinned to CPU 1) against `port`, served by process
/// `server`, and reads its result and the server's CPU time.
fn run_pingpong(c_dir: &Path, server: u32, port: u16, run: Run) -> io::Result<PingPong> {
    let cpu_before = cpu_ns(server)?;
    let child = std::process::Command::new(c_dir.join("pingpong"))
        .args(["-p", &port.to_string(), "-c", &run.conns.to_string()])
        .args(["-r", &run.per.to_string(), "-w", &run.warm.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    pin(child.id(), 1)?;
    let output = child.wait_with_output()?;
    let cpu_after = cpu_ns(server)?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut result = text
        .lines()
        .find_map(parse_pingpong)
        .ok_or_else(|| io::Error::other(format!("pingpong printed no result: {text:?}")))?;
    result.all_round_trips = run.conns as u64 * (run.per + run.warm);
    result.server_cpu_ns = cpu_after - cpu_before;
    Ok(result)
}

/// One run against the C server `epoll_echo`, pinned to CPU 0.
fn run_c_server(c_dir: &Path, run: Run) -> io::Result<PingPong> {
    let port = free_port()?;
    let mut server = std::process::Command::new(c_dir.join("epoll_echo"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let result = (|| {
        pin(server.id(), 0)?;
        // It prints nothing when ready: try to connect until it accepts.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other("epoll_echo did not start listening"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        run_pingpong(c_dir, server.id(), port, run)
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// One run against this chapter's `serve --backend epoll`, pinned to CPU 0,
/// with its own count of its system calls over the whole run (every
/// connection opened and closed).
fn run_this_server(cmp: &Comparison, run: Run) -> io::Result<PingPong> {
    let mut server = ServerProcess::start(&cmp.this_binary, &["--backend", "epoll"]);
    pin(server.pid(), 0)?;
    let before = server_calls(&mut server);
    let port = server.addr.port();
    let mut result = run_pingpong(&cmp.c_dir, server.pid(), port, run)?;
    // The client has closed everything; count once the server has too.
    server.wait_for_closed(run.conns);
    let after = server_calls(&mut server);
    result.server_calls = after.zip(before).map(|(a, b)| a - b);
    Ok(result)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Runs the C epoll echo server and this chapter's epoll server in
/// alternating rounds (C first in odd rounds, ours first in even ones),
/// each driven by the same `pingpong` command, server on CPU 0 and client
/// on CPU 1, and prints every run and the medians. The ratios are the
/// median of the per-round ratios: absolute numbers drift between runs on a
/// shared machine, ratios of runs a few seconds apart far less. Returns the
/// medians and ratios as Markdown tables, for the book (`--markdown`).
pub fn compare_with_c(cmp: &Comparison, out: &mut dyn Write) -> io::Result<String> {
    for tool in ["epoll_echo", "pingpong"] {
        if !cmp.c_dir.join(tool).exists() {
            return Err(io::Error::other(format!(
                "{} not found: build the C programs first, \
                 make -C PATH/TO/perf-reference BUILD={}",
                cmp.c_dir.join(tool).display(),
                cmp.c_dir.display()
            )));
        }
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return Err(io::Error::other(
            "needs 2 CPUs: the server is pinned to CPU 0, the client to CPU 1",
        ));
    }
    let most = cmp.connections.iter().copied().max().unwrap_or(0);
    raise_fd_limit(most as u64 * 2 + 128)?;
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let mut medians_md = String::from(
        "| connections | server | round trips/s | p50 | p99 | server CPU per round trip \
         | system calls per round trip |\n|---|---|---|---|---|---|---|\n",
    );
    let mut ratios_md = String::from(
        "| connections | throughput | p50 | p99 | server CPU per round trip |\n\
         |---|---|---|---|---|\n",
    );
    let mut rounds_md = String::new();
    for &conns in &cmp.connections {
        let per = (cmp.round_trips / conns.max(1) as u64).max(1);
        let run = Run {
            conns,
            per,
            warm: (per / 10).max(1),
        };
        writeln!(
            out,
            "\n{conns} connections, 64-byte ping-pong, {per} round trips each after {} of \
             warm-up; server on CPU 0, pingpong on CPU 1; {} rounds",
            run.warm, cmp.rounds
        )?;
        writeln!(
            out,
            "{:>5}  {:<6} {:>13} {:>9} {:>9}  {:>8}  {:>8}",
            "round", "server", "round trips/s", "p50", "p99", "cpu/rt", "calls/rt"
        )?;
        let mut runs: Vec<(PingPong, PingPong)> = Vec::new();
        for round in 1..=cmp.rounds.max(1) {
            eprintln!("{conns} connections: round {round} of {}...", cmp.rounds);
            let (c, ours) = if round % 2 == 1 {
                let c = run_c_server(&cmp.c_dir, run)?;
                (c, run_this_server(cmp, run)?)
            } else {
                let ours = run_this_server(cmp, run)?;
                (run_c_server(&cmp.c_dir, run)?, ours)
            };
            for (name, r) in [("c", &c), ("ch06", &ours)] {
                let calls = r
                    .calls_per_round_trip()
                    .map_or_else(|| "-".to_string(), |c| format!("{c:.3}"));
                writeln!(
                    out,
                    "{round:>5}  {name:<6} {:>13.0} {:>7.0}us {:>7.0}us  {:>6.2}us  {calls:>8}",
                    r.per_second,
                    r.p50_us,
                    r.p99_us,
                    r.cpu_us_per_round_trip()
                )?;
            }
            runs.push((c, ours));
        }
        let med = |f: &dyn Fn(&(PingPong, PingPong)) -> f64| median(runs.iter().map(f).collect());
        let c_runs: Vec<&PingPong> = runs.iter().map(|(c, _)| c).collect();
        let our_runs: Vec<&PingPong> = runs.iter().map(|(_, ours)| ours).collect();
        for (name, of_server) in [("c", c_runs), ("ch06", our_runs)] {
            let med = |f: fn(&PingPong) -> f64| median(of_server.iter().map(|r| f(r)).collect());
            let calls = if name == "c" {
                "-".to_string() // the C server does not count its calls
            } else {
                format!(
                    "{:.2}",
                    median(
                        of_server
                            .iter()
                            .map(|r| r.calls_per_round_trip().unwrap_or(f64::NAN))
                            .collect()
                    )
                )
            };
            medians_md.push_str(&format!(
                "| {} | {} | {} | {} us | {} us | {:.2} us | {calls} |\n",
                thousands(conns as u64),
                if name == "c" { "C" } else { "this chapter" },
                thousands(med(|r| r.per_second).round() as u64),
                thousands(med(|r| r.p50_us).round() as u64),
                thousands(med(|r| r.p99_us).round() as u64),
                med(PingPong::cpu_us_per_round_trip),
            ));
            writeln!(
                out,
                "median {name}: {:.0} round trips/s, p50 {:.0}us, p99 {:.0}us, \
                 {:.2}us of server CPU per round trip",
                med(|r| r.per_second),
                med(|r| r.p50_us),
                med(|r| r.p99_us),
                med(PingPong::cpu_us_per_round_trip),
            )?;
        }
        writeln!(
            out,
            "ch06: {:.3} system calls per round trip (its own count over the whole run, \
             connections opened and closed included)",
            med(&|(_, r)| r.calls_per_round_trip().unwrap_or(f64::NAN))
        )?;
        writeln!(
            out,
            "ch06 / c, median of the per-round ratios: throughput {:.3}x, p50 {:.3}x, \
             p99 {:.3}x, server CPU per round trip {:.3}x",
            med(&|(c, r)| r.per_second / c.per_second),
            med(&|(c, r)| r.p50_us / c.p50_us),
            med(&|(c, r)| r.p99_us / c.p99_us),
            med(&|(c, r)| r.cpu_us_per_round_trip() / c.cpu_us_per_round_trip())
        )?;
        ratios_md.push_str(&format!(
            "| {} | {:.3}x | {:.3}x | {:.3}x | {:.3}x |\n",
            thousands(conns as u64),
            med(&|(c, r)| r.per_second / c.per_second),
            med(&|(c, r)| r.p50_us / c.p50_us),
            med(&|(c, r)| r.p99_us / c.p99_us),
            med(&|(c, r)| r.cpu_us_per_round_trip() / c.cpu_us_per_round_trip())
        ));
        let per_round: Vec<f64> = runs
            .iter()
            .map(|(c, r)| r.per_second / c.per_second)
            .collect();
        let lowest = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = per_round.iter().copied().fold(0.0, f64::max);
        let ahead = per_round.iter().filter(|&&x| x > 1.0).count();
        rounds_md.push_str(&format!(
            "{} connections: single rounds' throughput ratios from {lowest:.2}x to \
             {highest:.2}x; this server ahead in {ahead} of {} rounds.\n",
            thousands(conns as u64),
            runs.len()
        ));
    }
    Ok(format!(
        "{medians_md}\n`bench --compare-c --rounds {}`: medians of {} rounds of {} measured round \
         trips per server and connection count (C first in odd rounds); system calls per \
         round trip are this server's own count (the C server does not count its calls); \
         load average {load_average} on {cpus} CPUs when it started.\n\n\
         This chapter's server over the C server, the median of the per-round ratios:\n\n\
         {ratios_md}\n{rounds_md}",
        cmp.rounds,
        cmp.rounds,
        thousands(cmp.round_trips)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pingpongs_line() {
        let line = "PINGPONG\tserver=c\tconns=50\tidle=0\tmsg=64\troundtrips=100000\t\
                    elapsed_s=2.119\trt_per_s=47202\tlat_mean_us=1046.3\tp50_us=349.7\t\
                    p99_us=8617.3\tp999_us=22111.7";
        let r = parse_pingpong(line).expect("a result line");
        assert_eq!(r.round_trips, 100_000);
        assert_eq!((r.per_second, r.p50_us, r.p99_us), (47202.0, 349.7, 8617.3));
        assert!(parse_pingpong("connect: Connection refused").is_none());
    }

    #[test]
    fn thousands_are_separated_by_commas() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
