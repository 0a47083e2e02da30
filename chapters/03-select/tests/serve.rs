//! `ch03-select serve`, the echo loop over select, driven by real clients:
//! many at once with byte-exact echoes, a half-close, a reset, and no
//! descriptor left behind.

use std::path::Path;

use lab_kit::clients::{self, Load};
use lab_kit::server::ServerProcess;

fn binary() -> &'static Path {
    assert_cmd::cargo::cargo_bin!("ch03-select")
}

#[test]
fn echoes_many_clients_exactly_then_holds_only_the_listener() {
    let mut server = ServerProcess::start(binary(), &[]);
    let addr = server.addr;
    // The listener, plus whatever the server inherited from this test's
    // environment (a build tool's pipe, say).
    let at_start = server.descriptors_above_stdio();
    // A few resets, at the same time as the load, must not hurt anyone.
    let resets = std::thread::spawn(move || {
        for _ in 0..5 {
            clients::reset(addr, &[7u8; 3000]).expect("reset client");
        }
    });
    let load = Load {
        connections: 200,
        threads: 4,
        max_message: 64 * 1024,
        seed: 3,
    };
    let echoed = clients::echo_many(addr, load).unwrap_or_else(|e| panic!("{e}"));
    assert!(echoed > 0);
    resets.join().expect("reset thread");

    // One half-closing client with more than the server buffers per
    // connection (64 KiB): it must get every byte back, then end of file.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let echo = clients::half_close(addr, &big).expect("half-closing client");
    assert!(
        echo == big,
        "the half-closed client got {} of {} bytes back (or different bytes)",
        echo.len(),
        big.len()
    );

    let log = server.wait_for_closed(200 + 5 + 1);
    let opened = log.iter().filter(|l| l.ends_with(" opened")).count();
    assert_eq!(
        opened,
        206,
        "every connection is logged as opened:\n{}",
        log.join("\n")
    );
    let peer_closed = log
        .iter()
        .filter(|l| l.ends_with(" closed: peer closed"))
        .count();
    assert!(
        peer_closed >= 201,
        "the 201 well-behaved clients end with `peer closed`:\n{}",
        log.join("\n")
    );
    assert_eq!(log[1], "backend: select");

    let fds = server.descriptors_above_stdio();
    assert!(
        fds == at_start,
        "after every client left, the server should hold only what it held at start \
         (its listener):\nat start:\n{}\nnow:\n{}",
        at_start.join("\n"),
        fds.join("\n")
    );
}

#[test]
fn the_log_names_connections_by_id() {
    let mut server = ServerProcess::start(binary(), &[]);
    let echo = clients::half_close(server.addr, b"hello").expect("client");
    assert_eq!(echo, b"hello");
    let log = server.wait_for_closed(1);
    // Everything but the first line (its port changes on every run).
    insta::assert_snapshot!("serve_log", log[1..].join("\n"));
}

#[test]
fn sigint_ends_the_server() {
    let server = ServerProcess::start(binary(), &[]);
    let status = server.interrupt();
    assert!(
        !status.success(),
        "SIGINT's default action ends the process: {status:?}"
    );
}
