//! The real `serve` process, driven by real sockets: many clients at once,
//! a client that never reads, resets, half-closes, descriptor leaks, and
//! whether an idle server sleeps.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use lab_kit::clients::{self, Load};
use lab_kit::server::ServerProcess;
use lab_kit::watchdog::within;
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(20);

/// How long a whole test may take before the watchdog fails it.
const TEST_LIMIT: Duration = Duration::from_secs(90);

/// Runs a whole test under the watchdog: whatever blocks, the test fails
/// after [`TEST_LIMIT`] with its name instead of hanging.
fn watched(test: &str, body: impl FnOnce() + Send + 'static) {
    within(TEST_LIMIT, &format!("`{test}` to finish"), body);
}

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
    watched(
        "a thousand clients at once get every byte back and nothing leaks",
        || {
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
        },
    );
}

#[test]
fn every_backend_passes_the_shared_echo_server_checks() {
    watched("every backend passes the shared echo server checks", || {
        for backend in ["epoll", "poll", "select"] {
            let mut server = start(backend);
            clients::check_echo_server(&mut server);
        }
    });
}

#[test]
fn a_client_that_never_reads_does_not_grow_the_server_or_stall_others() {
    watched(
        "a client that never reads does not grow the server or stall others",
        || {
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
        },
    );
}

#[test]
fn resets_and_half_closes_end_only_their_own_connection() {
    watched(
        "resets and half closes end only their own connection",
        || {
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
        },
    );
}

/// Asks the server for its `stats:` line (SIGUSR1) and returns it.
fn stats(server: &mut ServerProcess) -> String {
    server.signal_for_line(Signal::SIGUSR1, "stats:")
}

/// The server's wake-up count (returns from its wait with events so far).
fn wakeups(server: &mut ServerProcess) -> u64 {
    let line = stats(server);
    ch06_epoll_echo_server::wakeups_in_stats(&line)
        .unwrap_or_else(|| panic!("cannot read the wake-up count in {line:?}"))
}

#[test]
fn an_idle_server_sleeps_in_epoll_wait() {
    watched("an idle server sleeps in epoll wait", || {
        let mut server = start("epoll");
        let before = wakeups(&mut server);
        // The measurement window: one idle second.
        thread::sleep(Duration::from_secs(1));
        let after = wakeups(&mut server);
        assert!(
            after - before <= 1,
            "an idle server woke up {} times in one second: it should sleep in epoll_wait \
             (is something registered for EPOLLOUT all the time, or a timeout of 0 used?)",
            after - before
        );
    });
}

/// One socket's line of /proc/net/tcp: its state (`01` ESTABLISHED, `08`
/// CLOSE_WAIT, ...) and the bytes in its receive queue not yet read by the
/// program.
struct TcpRow {
    state: String,
    receive_queue: u64,
}

/// The TCP socket `local` -> `remote`, as the kernel lists it in
/// /proc/net/tcp (tcp(7)), if it exists.
fn tcp_row(local: SocketAddr, remote: SocketAddr) -> Option<TcpRow> {
    // /proc/net/tcp prints an IPv4 address as the 32-bit number in host
    // byte order, in hex, and the port in hex: 0100007F:1F90.
    let hex = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => format!("{:08X}:{:04X}", u32::from_ne_bytes(ip.octets()), a.port()),
        IpAddr::V6(_) => panic!("the tests use IPv4 loopback"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        // tx_queue:rx_queue, both in hex.
        let (_, rx) = fields.get(4)?.split_once(':')?;
        Some(TcpRow {
            state: fields[3].to_string(),
            receive_queue: u64::from_str_radix(rx, 16).ok()?,
        })
    })
}

/// Waits until `done` holds for the kernel's view of the server's end of
/// `client`'s connection, and panics with `expected` after 5 s. The states
/// it waits for come within microseconds on loopback; nothing here depends
/// on how long they take.
fn wait_for_server_end(
    server_addr: SocketAddr,
    client: &TcpStream,
    expected: &str,
    done: impl Fn(&TcpRow) -> bool,
) {
    let client_addr = client.local_addr().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tcp_row(server_addr, client_addr).is_some_and(|row| done(&row)) {
        assert!(Instant::now() < deadline, "waited 5 s for {expected}");
        thread::sleep(Duration::from_micros(200));
    }
}

/// The byte at `offset` of the stream a test client sends.
fn pattern_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// Connects a client that writes, never reading, until the server logs
/// `reading paused` for it, and returns it with the number of bytes sent.
///
/// It writes 32 KiB, then waits until the kernel shows that the server has
/// read all of it (or has paused) before the next 32 KiB. So when the
/// server pauses, at most those 32 KiB wait unread in its receive buffer,
/// which has room for more (its window starts at 64 KiB and more): a FIN
/// sent next is not stuck behind data. (Before it pauses, the server fills
/// its send buffer, which the kernel may grow to 4 MiB: that many bytes go
/// through first.)
fn fill_until_paused(server: &mut ServerProcess) -> (TcpStream, u64) {
    let addr = server.addr;
    let mut client = TcpStream::connect(addr).unwrap();
    let mut sent: u64 = 0;
    let mut chunk = vec![0u8; 32 * 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    let paused = |l: &str| l.contains("reading paused");
    loop {
        for (i, byte) in chunk.iter_mut().enumerate() {
            *byte = pattern_byte(sent + i as u64);
        }
        // A blocking write: the server is reading (it has not paused), and
        // the chunk fits the socket buffers.
        client.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
        loop {
            if server.try_wait_for_line(Duration::ZERO, paused).is_some() {
                return (client, sent);
            }
            // Only the server's side: the client's send queue also counts
            // bytes the server's kernel has not acknowledged yet, and
            // acknowledgements may be delayed by up to 40 ms.
            let client_addr = client.local_addr().unwrap();
            let read_it_all = matches!(
                tcp_row(addr, client_addr),
                Some(server_end) if server_end.receive_queue == 0
            );
            if read_it_all {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server neither read the client's data nor logged `reading paused` \
                 ({sent} bytes sent): it must read, or stop reading when a connection's \
                 buffer is full and say so"
            );
            thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Reads everything `client` gets until end of file and checks it against
/// the `sent` bytes of the pattern.
fn read_back_everything(client: TcpStream, sent: u64) {
    let received = within(
        LIMIT,
        "the paused client's echo, then end of file",
        move || {
            let mut client = client;
            client.set_nonblocking(false).unwrap();
            let mut all = Vec::new();
            client.read_to_end(&mut all).unwrap();
            all
        },
    );
    assert_eq!(
        received.len() as u64,
        sent,
        "the paused client must get back every byte it sent, then end of file"
    );
    if let Some(at) = (0..received.len()).find(|&i| received[i] != pattern_byte(i as u64)) {
        panic!("the echo differs from what was sent at byte {at}");
    }
}

/// A client whose reading the server paused (its buffer is full) shuts down
/// its sending side. Every registered condition is level-triggered, so a
/// loop that still asked about that connection's input (EPOLLIN, or
/// EPOLLRDHUP, which stays true once the FIN is in) would be told about it
/// on every wait and could do nothing: a busy loop at 100% CPU.
///
/// The bound: while nothing happens, a correct server does not wake at all,
/// so one idle second must add 0 wake-ups (a server with the bug adds
/// hundreds of thousands). Serving another client then costs it at most 3
/// (the new connection, its message, its close), so the count may grow by
/// 3 at most over that part.
fn a_paused_client_that_half_closes_does_not_make_the_server_spin(backend: &str) {
    let mut server = start(backend);
    let addr = server.addr;
    let (paused, sent) = fill_until_paused(&mut server);
    paused.shutdown(Shutdown::Write).unwrap();
    // 08 = CLOSE_WAIT: the FIN is in the server's socket, unread.
    wait_for_server_end(
        addr,
        &paused,
        "the client's FIN to reach the server's socket (state 08, CLOSE_WAIT)",
        |server_end| server_end.state == "08",
    );

    let before = wakeups(&mut server);
    // The measurement window: one second in which nothing happens.
    thread::sleep(Duration::from_secs(1));
    let idle = wakeups(&mut server) - before;
    assert!(
        idle == 0,
        "{backend}: the server woke up {idle} times in one idle second after a paused client \
         half-closed. While reading is paused, do not ask about that connection's input \
         (no EPOLLIN, no EPOLLRDHUP: level-triggered, they stay true and are reported on \
         every wait)"
    );

    // Another client is still served, at the cost of a few wake-ups.
    let before = wakeups(&mut server);
    within(
        LIMIT,
        "another client's echo while one is paused",
        move || {
            let mut other = TcpStream::connect(addr).unwrap();
            other.write_all(b"ping").unwrap();
            let mut back = [0u8; 4];
            other.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"ping");
        },
    );
    server.wait_for_closed(1);
    let serving = wakeups(&mut server) - before;
    assert!(
        serving <= 3,
        "{backend}: serving one more client took {serving} wake-ups; a correct server needs \
         at most 3 (accept, echo, close)"
    );

    // Finally the paused client reads: everything comes back, then the
    // server closes the connection (it has sent all, and the peer is done).
    read_back_everything(paused, sent);
    let log = server.wait_for_closed(2);
    assert!(
        log.iter().any(|l| l == "conn-1 closed: peer closed"),
        "{backend}: the paused client's connection should end with `conn-1 closed: peer \
         closed`:\n{}",
        log.join("\n")
    );
}

#[test]
fn epoll_a_paused_client_that_half_closes_does_not_make_the_server_spin() {
    watched(
        "epoll a paused client that half closes does not make the server spin",
        || {
            a_paused_client_that_half_closes_does_not_make_the_server_spin("epoll");
        },
    );
}

#[test]
fn poll_a_paused_client_that_half_closes_does_not_make_the_server_spin() {
    watched(
        "poll a paused client that half closes does not make the server spin",
        || {
            a_paused_client_that_half_closes_does_not_make_the_server_spin("poll");
        },
    );
}

#[test]
fn select_a_paused_client_that_half_closes_does_not_make_the_server_spin() {
    watched(
        "select a paused client that half closes does not make the server spin",
        || {
            a_paused_client_that_half_closes_does_not_make_the_server_spin("select");
        },
    );
}

/// One echo of `message` on `client`, under the watchdog.
fn echo_once(client: &TcpStream, message: &'static [u8]) {
    let client = client.try_clone().unwrap();
    within(LIMIT, "an echo", move || {
        let mut client = client;
        client.write_all(message).unwrap();
        let mut back = vec![0u8; message.len()];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, message);
    });
}

/// Out of descriptors: accept fails with EMFILE and the connection stays in
/// the listener's queue, so the listener stays readable. A loop that still
/// asked about it would be woken on every wait and could do nothing. A
/// correct server stops asking until a connection closes: one idle second
/// adds 0 wake-ups. It keeps serving the connections it has, and once one
/// closes it accepts the waiting one.
fn out_of_descriptors_the_server_neither_spins_nor_stops(backend: &str) {
    let mut server = start(backend);
    // A new descriptor takes the lowest free number, and the limit caps the
    // number: allow up to the second free number, room for 2 connections.
    // (The server may hold descriptors it inherited, with gaps below them.)
    let open: Vec<u64> = server
        .descriptors_above_stdio()
        .iter()
        .filter_map(|d| d.split(' ').next()?.parse().ok())
        .collect();
    let second_free = (3..).filter(|n| !open.contains(n)).nth(1).unwrap();
    server.set_fd_limit(second_free + 1);

    let mut clients = Vec::new();
    loop {
        let client = TcpStream::connect(server.addr).unwrap();
        clients.push(client);
        let refused = |l: &str| l.starts_with("accept: EMFILE");
        let opened = format!("conn-{} opened", clients.len());
        let line = server.wait_for_line(LIMIT, "`opened` or `accept: EMFILE`", |l| {
            l == opened || refused(l)
        });
        if refused(&line) {
            break;
        }
        assert!(
            clients.len() < 20,
            "{backend}: 20 connections accepted under a limit that leaves room for 2"
        );
    }
    let waiting = clients.pop().unwrap();

    let before = wakeups(&mut server);
    // The measurement window: one second in which nothing happens.
    thread::sleep(Duration::from_secs(1));
    let idle = wakeups(&mut server) - before;
    assert!(
        idle == 0,
        "{backend}: out of descriptors, the server woke up {idle} times in one idle second. \
         The refused connection stays queued and the listener stays readable: stop asking \
         about the listener until a connection closes"
    );

    // The open connections are still served.
    for client in &clients {
        echo_once(client, b"still here");
    }
    // One closes: the server accepts the one that waited, and serves it.
    drop(clients.remove(0));
    let n = clients.len() + 2;
    server.wait_for_line(LIMIT, "`accepting again` after a close", |l| {
        l == "accepting again"
    });
    server.wait_for_line(LIMIT, "the waiting connection to be opened", |l| {
        l == format!("conn-{n} opened")
    });
    echo_once(&waiting, b"my turn");
}

#[test]
fn epoll_out_of_descriptors_the_server_neither_spins_nor_stops() {
    watched(
        "epoll out of descriptors the server neither spins nor stops",
        || {
            out_of_descriptors_the_server_neither_spins_nor_stops("epoll");
        },
    );
}

#[test]
fn poll_out_of_descriptors_the_server_neither_spins_nor_stops() {
    watched(
        "poll out of descriptors the server neither spins nor stops",
        || {
            out_of_descriptors_the_server_neither_spins_nor_stops("poll");
        },
    );
}

#[test]
fn select_out_of_descriptors_the_server_neither_spins_nor_stops() {
    watched(
        "select out of descriptors the server neither spins nor stops",
        || {
            out_of_descriptors_the_server_neither_spins_nor_stops("select");
        },
    );
}

/// Sends `signal` to the server once.
fn send(server: &ServerProcess, signal: Signal) {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    kill(Pid::from_raw(server.pid() as i32), signal).expect("signal the server");
}

/// Reads `client` until end of file and returns what came; a reset
/// (ECONNRESET) fails the test: a clean shutdown closes with a FIN.
fn read_until_clean_end_of_file(client: TcpStream, who: &str) -> Vec<u8> {
    let who = who.to_string();
    within(LIMIT, "the client to see end of file", move || {
        let mut client = client;
        client.set_nonblocking(false).unwrap();
        let mut all = Vec::new();
        if let Err(e) = client.read_to_end(&mut all) {
            panic!(
                "{who}: reading after the shutdown failed with {e} after {} bytes: the server \
                 must close cleanly (read the client's unread input before close, or the \
                 kernel sends a reset)",
                all.len()
            );
        }
        all
    })
}

/// Ctrl-C on a server with clients: the SIGINT comes through the signalfd,
/// every connection is closed cleanly (its client reads end of file, not
/// a reset; with `with_paused_client`, a client whose reading the server
/// paused first gets a byte-exact part of its echo), the server prints
/// `shutting down: N connections closed` and exits with 0. (Filling a
/// client until the server pauses moves megabytes; once, on epoll, is
/// enough to check it.)
fn ctrl_c_closes_every_connection_and_exits_0(backend: &str, with_paused_client: bool) {
    let mut server = start(backend);
    let at_start = server.descriptors_above_stdio();
    assert!(
        at_start.iter().any(|d| d.contains("anon_inode:[signalfd]")),
        "{backend}: the server should hold a signalfd: {at_start:?}"
    );
    let mut idle = Vec::new();
    for i in 1..=3 {
        let client = TcpStream::connect(server.addr).unwrap();
        echo_once(&client, b"hello");
        server.wait_for_line(LIMIT, "the client to be opened", |l| {
            l == format!("conn-{i} opened")
        });
        idle.push(client);
    }
    let paused = with_paused_client.then(|| fill_until_paused(&mut server));

    send(&server, Signal::SIGINT);
    let line = server.wait_for_line(LIMIT, "`shutting down: ...`", |l| {
        l.starts_with("shutting down")
    });
    let connected = if with_paused_client { 4 } else { 3 };
    assert_eq!(
        line,
        format!("shutting down: {connected} connections closed"),
        "{backend}: {connected} clients were connected"
    );
    let status = server.wait_for_exit(LIMIT);
    assert_eq!(
        status.code(),
        Some(0),
        "{backend}: after SIGINT the server must exit by itself with status 0 ({status})"
    );
    for (i, client) in idle.into_iter().enumerate() {
        let rest = read_until_clean_end_of_file(client, &format!("idle client {}", i + 1));
        assert!(rest.is_empty(), "an idle client had nothing more to get");
    }
    if let Some((paused, sent)) = paused {
        let echoed = read_until_clean_end_of_file(paused, "the paused client");
        assert!(
            echoed.len() as u64 <= sent,
            "the paused client got more than it sent"
        );
        if let Some(at) = (0..echoed.len()).find(|&i| echoed[i] != pattern_byte(i as u64)) {
            panic!("{backend}: the paused client's echo differs from what it sent at byte {at}");
        }
    }
}

#[test]
fn epoll_ctrl_c_closes_every_connection_and_exits_0() {
    watched("epoll ctrl c closes every connection and exits 0", || {
        ctrl_c_closes_every_connection_and_exits_0("epoll", true);
    });
}

#[test]
fn poll_ctrl_c_closes_every_connection_and_exits_0() {
    watched("poll ctrl c closes every connection and exits 0", || {
        ctrl_c_closes_every_connection_and_exits_0("poll", false);
    });
}

#[test]
fn select_ctrl_c_closes_every_connection_and_exits_0() {
    watched("select ctrl c closes every connection and exits 0", || {
        ctrl_c_closes_every_connection_and_exits_0("select", false);
    });
}

#[test]
fn sigterm_also_stops_the_server_cleanly() {
    watched("sigterm also stops the server cleanly", || {
        let mut server = start("epoll");
        let client = TcpStream::connect(server.addr).unwrap();
        echo_once(&client, b"hi");
        send(&server, Signal::SIGTERM);
        server.wait_for_line(LIMIT, "`shutting down: 1 connections closed`", |l| {
            l == "shutting down: 1 connections closed"
        });
        assert_eq!(server.wait_for_exit(LIMIT).code(), Some(0));
        read_until_clean_end_of_file(client, "the client");
    });
}

/// With a flag set by a handler, a SIGUSR1 that landed between the loop's
/// check of the flag and its wait went unanswered until some socket had
/// news. Through the signalfd it stays pending and the wait returns: each
/// single SIGUSR1, never repeated, gets its `stats:` line at once.
#[test]
fn every_single_sigusr1_is_answered_without_resending() {
    watched("every single sigusr1 is answered without resending", || {
        let mut server = start("epoll");
        for round in 0..100 {
            send(&server, Signal::SIGUSR1);
            let line =
                server.try_wait_for_line(Duration::from_secs(5), |l| l.starts_with("stats:"));
            assert!(
                line.is_some(),
                "round {round}: one SIGUSR1 got no `stats:` line within 5 s; the signal must \
                 not be lost between a check and the wait"
            );
        }
    });
}
