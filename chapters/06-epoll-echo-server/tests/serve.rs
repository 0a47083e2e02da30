//! The real `serve` process, driven by real sockets: many clients at once,
//! a client that never reads, resets, half-closes, descriptor leaks, and
//! whether an idle server sleeps.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use ch03_select::poller::{Event, Interest, Poller, Token};
use ch05_epoll_api::EpollPoller;
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

/// A small deterministic pseudo-random generator (xorshift), so the
/// message sizes are varied but the same on every run.
struct Sizes(u64);
impl Sizes {
    fn next(&mut self, max: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        1 + (self.0 % max as u64) as usize
    }
}

/// One client of [`echo_many`]: sends `message`, expects it back.
struct Client {
    stream: TcpStream,
    message: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
    done: bool,
}

/// Connects `count` clients at once, each with a message of a random size
/// up to `max_size`, drives them all from one epoll loop (writing while
/// reading, so nobody deadlocks), and checks every byte that comes back.
fn echo_many(addr: SocketAddr, count: usize, max_size: usize, seed: u64) {
    let mut sizes = Sizes(seed);
    let mut poller = EpollPoller::new().unwrap();
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nonblocking(true).unwrap();
        let size = sizes.next(max_size);
        let message: Vec<u8> = (0..size).map(|j| (i * 31 + j * 7) as u8).collect();
        poller
            .add(stream.as_raw_fd(), Token(i), Interest::BOTH)
            .unwrap();
        clients.push(Client {
            stream,
            message,
            sent: 0,
            received: Vec::new(),
            done: false,
        });
    }
    let deadline = Instant::now() + LIMIT;
    let mut remaining = count;
    let mut events: Vec<Event> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while remaining > 0 {
        assert!(
            Instant::now() < deadline,
            "{remaining} of {count} clients still waiting for their echo after {LIMIT:?}"
        );
        poller
            .wait(&mut events, Some(Duration::from_millis(500)))
            .unwrap();
        for event in &events {
            let client = &mut clients[event.token.0];
            if client.done {
                continue;
            }
            if event.writable && client.sent < client.message.len() {
                match client.stream.write(&client.message[client.sent..]) {
                    Ok(n) => client.sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("client {}: write failed: {e}", event.token.0),
                }
                if client.sent == client.message.len() {
                    poller
                        .modify(client.stream.as_raw_fd(), event.token, Interest::READABLE)
                        .unwrap();
                }
            }
            if event.readable || event.hangup {
                loop {
                    match client.stream.read(&mut buf) {
                        Ok(0) => panic!(
                            "client {}: the server closed after echoing {} of {} bytes",
                            event.token.0,
                            client.received.len(),
                            client.message.len()
                        ),
                        Ok(n) => client.received.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("client {}: read failed: {e}", event.token.0),
                    }
                }
                if client.received.len() >= client.message.len() {
                    assert!(
                        client.received == client.message,
                        "client {}: the echo differs from what was sent ({} bytes sent, {} back)",
                        event.token.0,
                        client.message.len(),
                        client.received.len()
                    );
                    client.done = true;
                    remaining -= 1;
                    poller.delete(client.stream.as_raw_fd()).unwrap();
                }
            }
        }
    }
}

/// Waits until the server has logged `count` lines ending a connection.
fn wait_for_closes(server: &mut ServerProcess, count: usize) {
    let closed = |log: &[String]| log.iter().filter(|l| l.contains(" closed")).count();
    while closed(server.log()) < count {
        server.wait_for_line(LIMIT, &format!("{count} `closed` lines"), |l| {
            l.contains(" closed")
        });
    }
}

/// The descriptors the server holds, apart from stdin, stdout and stderr.
/// (A process can inherit more from whoever started it, so tests compare
/// with what the server held right after it started.)
fn descriptors_beyond_stdio(server: &ServerProcess) -> Vec<String> {
    let dir = format!("/proc/{}/fd", server.pid());
    let mut held: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let entry = e.ok()?;
            let number: i32 = entry.file_name().to_str()?.parse().ok()?;
            (number > 2).then(|| std::fs::read_link(entry.path()).ok())?
        })
        .map(|target| {
            let target = target.display().to_string();
            // `socket:[12345]` -> `socket`; keep `anon_inode:[eventpoll]`.
            if target.starts_with("socket:") {
                "socket".to_string()
            } else {
                target
            }
        })
        .collect();
    held.sort();
    held
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
    let addr = server.addr;
    let at_start = descriptors_beyond_stdio(&server);
    let count = |kind: &str| at_start.iter().filter(|d| *d == kind).count();
    assert_eq!(
        (count("socket"), count("anon_inode:[eventpoll]")),
        (1, 1),
        "a fresh server holds one listener and one epoll instance: {at_start:?}"
    );
    within(LIMIT * 2, "1000 clients to be echoed", move || {
        echo_many(addr, 1000, 64 * 1024, 0x5eed)
    });
    wait_for_closes(&mut server, 1000);
    assert_eq!(
        descriptors_beyond_stdio(&server),
        at_start,
        "after every client left, the server should hold only what it held at the start \
         (its listener and epoll instance): a connection was not closed somewhere"
    );
}

#[test]
fn poll_and_select_backends_run_the_same_loop() {
    for backend in ["poll", "select"] {
        let mut server = start(backend);
        let addr = server.addr;
        let at_start = descriptors_beyond_stdio(&server);
        within(LIMIT, "200 clients to be echoed", move || {
            echo_many(addr, 200, 32 * 1024, 0xbac)
        });
        wait_for_closes(&mut server, 200);
        assert_eq!(
            descriptors_beyond_stdio(&server),
            at_start,
            "{backend}: only what the server held at the start should be left"
        );
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
            // A reset: SO_LINGER 0 makes close send RST.
            let rude = TcpStream::connect(addr).unwrap();
            (&rude).write_all(b"bye").unwrap();
            let linger = nix::libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            nix::sys::socket::setsockopt(&rude, nix::sys::socket::sockopt::Linger, &linger)
                .unwrap();
            drop(rude);
            // A half-close: send, shut down writing, read the echo to EOF.
            let mut half = TcpStream::connect(addr).unwrap();
            let words = format!("round {round}");
            half.write_all(words.as_bytes()).unwrap();
            half.shutdown(Shutdown::Write).unwrap();
            let mut echo = String::new();
            half.read_to_string(&mut echo).unwrap();
            assert_eq!(
                echo, words,
                "a half-closed client must get its whole echo, then EOF"
            );
            // The long-lived client is still served.
            steady.write_all(b"ok").unwrap();
            let mut back = [0u8; 2];
            steady.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"ok");
        }
    });
    // 20 resets + 20 half-closes + the steady client, when it goes.
    wait_for_closes(&mut server, 40);
    let resets = server
        .log()
        .iter()
        .filter(|l| l.contains("ECONNRESET"))
        .count();
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
