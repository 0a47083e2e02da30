//! `ch04-poll serve`, chapter 03's echo loop over poll, driven by real clients:
//! many at once with byte-exact echoes, a half-close, a reset, and no
//! descriptor left behind.

use std::path::Path;

use lab_kit::clients::{self, Load};
use lab_kit::server::ServerProcess;

fn binary() -> &'static Path {
    assert_cmd::cargo::cargo_bin!("ch04-poll")
}

#[test]
fn echoes_many_clients_exactly_then_holds_only_the_listener() {
    let mut server = ServerProcess::start(binary(), &[]);
    clients::check_echo_server(&mut server);
    assert_eq!(server.log()[1], "backend: poll");
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

#[test]
fn the_same_loop_runs_over_select() {
    let mut server = ServerProcess::start(binary(), &["--backend", "select"]);
    let load = Load {
        connections: 50,
        threads: 2,
        max_message: 64 * 1024,
        seed: 4,
    };
    clients::echo_many(server.addr, load).unwrap_or_else(|e| panic!("{e}"));
    let log = server.wait_for_closed(50);
    assert_eq!(log[1], "backend: select");
}
