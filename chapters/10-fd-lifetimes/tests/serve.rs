//! The real `serve` process (chapter 03's echo loop with a spare
//! descriptor) under a descriptor limit it cannot serve everybody within:
//! it refuses the extra clients at once, never spins, and serves normally
//! again once the storm has passed.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::Duration;

use lab_kit::server::ServerProcess;
use lab_kit::watchdog::within;
use nix::sys::signal::Signal;

/// How long one expected log line or echo may take.
const LIMIT: Duration = Duration::from_secs(20);

/// How long a refused client may wait for the server to close it. The
/// server closes it in the same wake-up that accepts it; a client left in
/// the listener's queue would wait forever.
const PROMPTLY: Duration = Duration::from_secs(3);

/// Clients that arrive while the server is full.
const STORM: u64 = 50;

fn binary() -> &'static Path {
    Path::new(assert_cmd::cargo::cargo_bin!("ch10-fd-lifetimes"))
}

/// The server's wake-up count, from its `stats:` line (SIGUSR1).
fn wakeups(server: &mut ServerProcess) -> u64 {
    let line = server.signal_for_line(Signal::SIGUSR1, "stats:");
    ch06_epoll_echo_server::wakeups_in_stats(&line)
        .unwrap_or_else(|| panic!("no wake-up count in {line:?}"))
}

/// One echo of `message` on `client`.
fn echo_once(client: &mut TcpStream, message: &[u8]) {
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.write_all(message).unwrap();
    let mut back = vec![0u8; message.len()];
    client
        .read_exact(&mut back)
        .unwrap_or_else(|e| panic!("no echo of {message:?} within {LIMIT:?}: {e}"));
    assert_eq!(back, message);
}

/// Connects and waits for `conn-N opened`.
fn connect_kept(server: &mut ServerProcess, id: usize) -> TcpStream {
    let client = TcpStream::connect(server.addr).unwrap();
    let opened = format!("conn-{id} opened");
    server.wait_for_line(LIMIT, &format!("`{opened}`"), |l| l == opened);
    client
}

#[test]
fn out_of_descriptors_it_closes_the_extra_clients_at_once_never_spins_and_recovers() {
    within(
        Duration::from_secs(90),
        "the EMFILE test to finish",
        saturated_server,
    );
}

fn saturated_server() {
    let mut server = ServerProcess::start(binary(), &[]);
    let before = server.descriptors_above_stdio();
    assert!(
        before.iter().any(|d| d.ends_with("-> /dev/null")),
        "the server should hold its spare descriptor (/dev/null) from the start: {before:?}"
    );
    // Room for exactly two connections: a new descriptor takes the lowest
    // free number, and the limit caps the number.
    let open: Vec<u64> = before
        .iter()
        .filter_map(|d| d.split(' ').next()?.parse().ok())
        .collect();
    let second_free = (3..).filter(|n| !open.contains(n)).nth(1).unwrap();
    server.set_fd_limit(second_free + 1);

    let mut kept = vec![connect_kept(&mut server, 1), connect_kept(&mut server, 2)];
    for client in &mut kept {
        echo_once(client, b"before the storm");
    }

    // The storm: every new client finds the server full.
    let start = wakeups(&mut server);
    let mut refused = Vec::new();
    for _ in 0..STORM {
        refused.push(TcpStream::connect(server.addr).unwrap());
    }
    for (i, client) in refused.iter_mut().enumerate() {
        client.set_read_timeout(Some(PROMPTLY)).unwrap();
        match client.read(&mut [0u8; 16]) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(n) => panic!("refused client {i} read {n} bytes; it should see end of file"),
            Err(e) => {
                let woke = wakeups(&mut server) - start;
                let spin = if woke > STORM {
                    " That is a busy loop: a wake-up that accepts nothing comes back at once."
                } else {
                    ""
                };
                panic!(
                    "refused client {i} was not closed within {PROMPTLY:?} ({e}): it was left \
                     waiting in the listener's queue, and the server woke up {woke} times \
                     for {STORM} clients.{spin} Out of descriptors, close the spare, accept, \
                     close the connection, reopen the spare"
                )
            }
        }
    }
    let refusals = |log: &[String]| {
        log.iter()
            .filter(|l| l.starts_with("refused a connection: EMFILE"))
            .count() as u64
    };
    while refusals(server.log()) < STORM {
        server.wait_for_line(LIMIT, "`refused a connection: EMFILE ...`", |l| {
            l.starts_with("refused a connection")
        });
    }
    let during = wakeups(&mut server) - start;
    println!("{during} wake-ups for {STORM} refused clients");
    assert!(
        during <= STORM,
        "{during} wake-ups for {STORM} refused clients: a wake-up that accepts nothing \
         comes back at once (the listener stays readable). The spare descriptor lets \
         every wake-up take a client off the queue"
    );
    // Still full (the two kept clients are open): nothing more happens.
    let saturated = wakeups(&mut server);
    thread::sleep(Duration::from_millis(500));
    let idle = wakeups(&mut server) - saturated;
    assert_eq!(
        idle, 0,
        "{idle} wake-ups in half a second of nothing, while at the descriptor limit: a busy loop"
    );

    // The kept clients were served throughout, and once they leave, new
    // ones are served normally.
    for client in &mut kept {
        echo_once(client, b"during the storm");
    }
    drop(kept);
    server.wait_for_closed(2);
    // The refused connections took no connection id: the next are 3 and 4.
    for id in [3, 4] {
        let mut client = connect_kept(&mut server, id);
        echo_once(
            &mut client,
            format!("after the storm, conn-{id}").as_bytes(),
        );
        drop(client);
    }
    server.wait_for_closed(4);
    assert_eq!(
        server.descriptors_above_stdio(),
        before,
        "after the storm the server should hold what it held at the start \
         (listener, epoll, spare): no descriptor leaked"
    );
}
