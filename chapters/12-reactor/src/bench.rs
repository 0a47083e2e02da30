//! `bench`: redis-benchmark against this server and against Debian's
//! redis-server, in alternating rounds in one run, pinned to different
//! cores where `taskset` is available. A measurement, never a test.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What `bench` runs.
pub struct Plan {
    pub rounds: usize,
    pub requests: u64,
    pub clients: u32,
    pub pipelines: Vec<u32>,
    pub server_cpu: u32,
    pub client_cpu: u32,
    pub redis_server: PathBuf,
    pub out: Option<PathBuf>,
    /// redis-benchmark `-t` names, a subset of [`TESTS`].
    pub tests: Vec<String>,
}

/// redis-benchmark's `-t` names and how its CSV calls them.
pub const TESTS: [(&str, &str); 5] = [
    ("ping_inline", "PING_INLINE"),
    ("ping_mbulk", "PING_MBULK"),
    ("set", "SET"),
    ("get", "GET"),
    ("incr", "INCR"),
];

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rps: f64,
    p50: f64,
    p99: f64,
    /// The server's CPU time (user + system, all its threads) per request,
    /// in microseconds: what the server spent, whatever else the machine
    /// was doing (a busy machine moves throughput far more than this).
    cpu_us: f64,
}

/// User + system CPU time of process `pid` so far, in seconds
/// (`/proc/PID/stat` fields 14 and 15, in clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; count from after it.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After ")": field 3 is index 0, so utime (14) is 11 and stime (15) 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// `taskset -c CPU program args...`, or the program alone without taskset.
fn pinned(cpu: Option<u32>, program: &Path) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A server process, killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_ping(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(addr) {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"PING\r\n")?;
            let mut line = String::new();
            if BufReader::new(&s).read_line(&mut line).is_ok() && line.starts_with("+PONG") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("no PONG from {addr} within 10 s")
}

fn start_ours(cpu: Option<u32>) -> Result<Server> {
    let exe = std::env::current_exe().context("where is this binary?")?;
    let port = free_port()?;
    let child = pinned(cpu, &exe)
        .args(["serve", "--quiet", "--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .context("start this server")?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let server = Server {
        name: "ch12",
        child,
        addr,
    };
    wait_for_ping(addr)?;
    Ok(server)
}

fn start_redis(cpu: Option<u32>, redis_server: &Path) -> Result<Server> {
    let port = free_port()?;
    let child = pinned(cpu, redis_server)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", redis_server.display()))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let server = Server {
        name: "redis",
        child,
        addr,
    };
    wait_for_ping(addr)?;
    Ok(server)
}

/// One redis-benchmark run: every test at pipeline depth `pipeline`.
fn run_benchmark(
    plan: &Plan,
    cpu: Option<u32>,
    server: &Server,
    pipeline: u32,
) -> Result<Vec<Sample>> {
    // One test at a time, so each gets its own CPU figure.
    let mut samples = Vec::new();
    for (test, label) in selected(plan) {
        let before = cpu_seconds(server.child.id());
        let mut sample = run_one(plan, cpu, server, pipeline, test, label)?;
        let spent = cpu_seconds(server.child.id()) - before;
        sample.cpu_us = spent * 1e6 / plan.requests as f64;
        samples.push(sample);
    }
    Ok(samples)
}

fn run_one(
    plan: &Plan,
    cpu: Option<u32>,
    server: &Server,
    pipeline: u32,
    test: &str,
    label: &str,
) -> Result<Sample> {
    let output = pinned(cpu, Path::new("redis-benchmark"))
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args(["-c", &plan.clients.to_string()])
        .args(["-n", &plan.requests.to_string()])
        .args(["-P", &pipeline.to_string()])
        .args(["-t", test, "--csv"])
        .output()
        .context("run redis-benchmark (Debian package redis-tools)")?;
    if !output.status.success() {
        bail!(
            "redis-benchmark against {} failed: {}",
            server.name,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let csv = String::from_utf8_lossy(&output.stdout);
    parse_row(&csv, label)
        .with_context(|| format!("redis-benchmark's CSV lacks {label}; it printed:\n{csv}"))
}

/// `"SET","123.45","0.1","0.0","0.095","0.2","0.3","1.0"`: test, rps,
/// avg, min, p50, p95, p99, max.
fn parse_row(csv: &str, label: &str) -> Option<Sample> {
    let line = csv
        .lines()
        .find(|l| l.starts_with(&format!("\"{label}\"")))?;
    let fields: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|f| f.trim_matches('"').parse().ok())
        .collect::<Option<_>>()?;
    Some(Sample {
        rps: *fields.first()?,
        p50: *fields.get(3)?,
        p99: *fields.get(5)?,
        cpu_us: 0.0,
    })
}

fn selected(plan: &Plan) -> Vec<(&'static str, &'static str)> {
    TESTS
        .iter()
        .filter(|(t, _)| plan.tests.iter().any(|x| x == t))
        .copied()
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    let line = read_first_line("/proc/loadavg");
    line.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Runs the plan and prints (and, with `out`, writes) the table.
pub fn run(plan: &Plan) -> Result<()> {
    if !has("redis-benchmark") {
        bail!("redis-benchmark is not installed: apt-get install redis-tools");
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = has("taskset") && cpus >= 2;
    let (server_cpu, client_cpu) = if pin {
        (Some(plan.server_cpu), Some(plan.client_cpu))
    } else {
        (None, None)
    };
    let load_before = load_average();
    // samples[server][pipeline index][test] over rounds
    let tests = selected(plan);
    if tests.is_empty() {
        bail!("--tests names none of {:?}", TESTS.map(|(t, _)| t));
    }
    let mut samples = vec![vec![vec![Vec::<Sample>::new(); tests.len()]; plan.pipelines.len()]; 2];
    for round in 0..plan.rounds {
        // Alternate who goes first, so a drift in the machine's load
        // does not always favour the same server.
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let server = if which == 0 {
                start_ours(server_cpu)?
            } else {
                start_redis(server_cpu, &plan.redis_server)?
            };
            for (pi, &pipeline) in plan.pipelines.iter().enumerate() {
                let row = run_benchmark(plan, client_cpu, &server, pipeline)?;
                for (ti, sample) in row.into_iter().enumerate() {
                    samples[which][pi][ti].push(sample);
                }
                eprintln!(
                    "round {}/{}: {} -P {pipeline} done",
                    round + 1,
                    plan.rounds,
                    server.name
                );
            }
        }
    }
    let load_after = load_average();
    let mut text = String::new();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = read_first_line("/proc/sys/kernel/osrelease");
    let redis_version = Command::new(&plan.redis_server)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    text.push_str(&format!(
        "Measured {date} on {cpus} CPU(s), {}, Linux {kernel}.\n\
         {redis_version}.\n\
         redis-benchmark -c {} -n {}, median of {} alternating rounds \
         (ratio: median of the rounds' ch12/redis ratios); {}.\n\
         Load average before: {load_before}; after: {load_after}.\n\n",
        cpu_model(),
        plan.clients,
        plan.requests,
        plan.rounds,
        if pin {
            format!(
                "servers on CPU {}, redis-benchmark on CPU {} (taskset)",
                plan.server_cpu, plan.client_cpu
            )
        } else {
            "not pinned (taskset missing or one CPU)".to_string()
        },
    ));
    text.push_str(
        "| test | -P | ch12 req/s | redis req/s | ratio | ch12 p50/p99 ms | redis p50/p99 ms | CPU µs/req ch12/redis |\n",
    );
    text.push_str("|---|--:|--:|--:|--:|--:|--:|--:|\n");
    for (pi, pipeline) in plan.pipelines.iter().enumerate() {
        for (ti, (_, label)) in tests.iter().enumerate() {
            let med = |which: usize, f: fn(&Sample) -> f64| {
                median(samples[which][pi][ti].iter().map(f).collect())
            };
            let (ours, theirs) = (med(0, |s| s.rps), med(1, |s| s.rps));
            // The ratio of each round's pair (run minutes apart at most),
            // then the median: a drift in the load cancels within a round.
            let ratio = median(
                samples[0][pi][ti]
                    .iter()
                    .zip(&samples[1][pi][ti])
                    .map(|(a, b)| a.rps / b.rps)
                    .collect(),
            );
            text.push_str(&format!(
                "| {label} | {pipeline} | {ours:.0} | {theirs:.0} | {ratio:.2} | {:.3}/{:.3} | {:.3}/{:.3} | {:.2}/{:.2} |\n",
                med(0, |s| s.p50),
                med(0, |s| s.p99),
                med(1, |s| s.p50),
                med(1, |s| s.p99),
                med(0, |s| s.cpu_us),
                med(1, |s| s.cpu_us),
            ));
        }
    }
    print!("{text}");
    if let Some(out) = &plan.out {
        std::fs::write(out, &text).with_context(|| format!("write {}", out.display()))?;
    }
    Ok(())
}
