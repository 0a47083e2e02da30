//! The real `serve` process, driven by real sockets: many clients at once,
//! a client that never reads, resets, half-closes, descriptor leaks, and
//! whether an idle server sleeps.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::thread;
use std::time::Duration;

use lab_kit::clients::{self, Load};
use lab_kit::server::ServerProcess;
use lab_kit::watchdog::within;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const LIMIT: Duration = Duration::from_secs(20);

fn binary() -> &'static Path {
    Path::new(assert_cmd::cargo::cargo_bin!("ch06-epoll-echo-server"))
}

fn start(backend: &str) -> ServerProcess {
    ServerProcess::start(binary(), &["--backend", backend])
}

/// Many clients at once (see `lab_kit::clients::echo_many`: half of them
/// half-close), every byte of every echo compared.
fn echo_many(server: &ServerProcess, connections: usize, max_message: usize, seed: u64) {
    let load = Load {
        connections,
        threads: 4,
        max_message,
        seed,
    };
    clients::echo_many(server.addr, load).unwrap_or_else(|e| panic!("{e}"));
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn a_thousand_clients_at_once_get_every_byte_back_and_nothing_leaks() {
    let mut server = start("epoll");
    let at_start = server.descriptors_above_stdio();
    let count = |kind: &str| at_start.iter().filter(|d| d.contains(kind)).count();
    assert_eq!(
        (count("socket:"), count("anon_inode:[eventpoll]")),
        (1, 1),
        "a fresh server holds one listener and one epoll instance: {at_start:?}"
    );
    echo_many(&server, 1000, 64 * 1024, 0x5eed);
    server.wait_for_closed(1000);
    assert_eq!(
        server.descriptors_above_stdio(),
        at_start,
        "after every client left, the server should hold only what it held at the start \
         (its listener and epoll instance): a connection was not closed somewhere"
    );
}

#[test]
fn every_backend_passes_the_shared_echo_server_checks() {
    for backend in ["epoll", "poll", "select"] {
        let mut server = start(backend);
        clients::check_echo_server(&mut server);
    }
}

#[test]
fn a_client_that_never_reads_does_not_grow_the_server_or_stall_others() {
    const TOTAL: usize = 16 * 1024 * 1024;
    let mut server = start("epoll");
    let addr = server.addr;
    let rss_before = vm_rss_kib(server.pid());
    let hog = TcpStream::connect(addr).unwrap();
    let mut hog_writer = hog.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let pattern: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        hog_writer.write_all(&pattern).unwrap();
        hog_writer.shutdown(Shutdown::Write).unwrap();
    });
    server.wait_for_line(
        LIMIT,
        "`reading paused` for the client that never reads",
        |l| l.contains("reading paused"),
    );

    // Others are still served while the hog's output is stuck.
    within(
        Duration::from_secs(5),
        "a second client's echo while the first never reads",
        move || {
            let mut other = TcpStream::connect(addr).unwrap();
            other.write_all(b"ping").unwrap();
            let mut back = [0u8; 4];
            other.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"ping");
        },
    );
    let rss_paused = vm_rss_kib(server.pid());
    assert!(
        rss_paused < rss_before + 8 * 1024,
        "the server grew from {rss_before} KiB to {rss_paused} KiB while a client sent \
         without reading: it must stop reading that client when its buffer is full"
    );

    // Now read everything back: nothing may be lost.
    let received = within(LIMIT, "the 16 MiB echo to be read back", move || {
        let mut hog = hog;
        let mut all = Vec::with_capacity(TOTAL);
        hog.read_to_end(&mut all).unwrap();
        all
    });
    writer.join().unwrap();
    assert_eq!(received.len(), TOTAL, "every byte must come back");
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8),
        "the echo must be byte-exact"
    );
}

#[test]
fn resets_and_half_closes_end_only_their_own_connection() {
    let mut server = start("epoll");
    let addr = server.addr;
    within(LIMIT, "resets and half-closes to be handled", move || {
        let mut steady = TcpStream::connect(addr).unwrap();
        for round in 0..20 {
            clients::reset(addr, b"bye").unwrap();
            let words = format!("round {round}");
            let echo = clients::half_close(addr, words.as_bytes()).unwrap();
            assert_eq!(
                echo,
                words.as_bytes(),
                "a half-closed client must get its whole echo, then end of file"
            );
            // The long-lived client is still served.
            steady.write_all(b"ok").unwrap();
            let mut back = [0u8; 2];
            steady.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"ok");
        }
    });
    // 20 resets + 20 half-closes + the steady client, when it goes.
    let log = server.wait_for_closed(41);
    let resets = log.iter().filter(|l| l.contains("ECONNRESET")).count();
    assert!(
        resets > 0,
        "the resets should show up as ECONNRESET in the log"
    );
}

#[test]
fn an_idle_server_sleeps_in_epoll_wait() {
    let mut server = start("epoll");
    let pid = Pid::from_raw(server.pid() as i32);
    let stats = |server: &mut ServerProcess| -> u64 {
        // A signal landing just before the server enters its wait is only
        // seen at the next signal (see `serve_on`): ask again until it answers.
        let mut asked = 0;
        let line = loop {
            kill(pid, Signal::SIGUSR1).unwrap();
            asked += 1;
            if let Some(line) =
                server.try_wait_for_line(Duration::from_millis(500), |l| l.starts_with("stats:"))
            {
                break line;
            }
            assert!(asked < 20, "no `stats:` line after {asked} SIGUSR1s");
        };
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the wake-up count in {line:?}"))
    };
    let before = stats(&mut server);
    // The measurement window: one idle second.
    thread::sleep(Duration::from_secs(1));
    let after = stats(&mut server);
    assert!(
        after - before <= 1,
        "an idle server woke up {} times in one second: it should sleep in epoll_wait \
         (is something registered for EPOLLOUT all the time, or a timeout of 0 used?)",
        after - before
    );
}
