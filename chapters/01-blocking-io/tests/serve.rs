//! Drives the real `serve` process with real sockets: many concurrent
//! clients echoed byte for byte, one-at-a-time mode serving clients in turn,
//! and the server's log.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;
use lab_kit::server::ServerProcess;
use lab_kit::watchdog::within;

/// No single read or write in these tests may take longer than this.
const STEP_LIMIT: Duration = Duration::from_secs(10);

fn start(extra_args: &[&str]) -> ServerProcess {
    ServerProcess::start(cargo_bin!("ch01-blocking-io"), extra_args)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the server");
    stream.set_read_timeout(Some(STEP_LIMIT)).unwrap();
    stream.set_write_timeout(Some(STEP_LIMIT)).unwrap();
    stream
}

/// Client `id`'s messages: sizes spread from 1 byte to 100 KiB, bytes that
/// depend on the client, the message and the position, so a byte delivered
/// to the wrong client or out of order is caught.
fn messages(id: usize) -> Vec<Vec<u8>> {
    (0..4)
        .map(|m| {
            let size = 1 + (id * 7919 + m * 104_729) % (100 * 1024);
            (0..size)
                .map(|i| (i * 31 + id * 7 + m * 13) as u8)
                .collect()
        })
        .collect()
}

/// Sends every message on one thread while reading the echo on this one (a
/// 100 KiB message would fill both socket buffers if nobody read), then
/// checks that exactly the sent bytes came back, followed by end of file.
fn echo_client(addr: SocketAddr, id: usize) {
    let mut stream = connect(addr);
    let sent: Vec<u8> = messages(id).concat();
    let mut writer = stream.try_clone().unwrap();
    let to_send = messages(id);
    let sender = thread::spawn(move || {
        for message in to_send {
            writer.write_all(&message).expect("write a message");
        }
        writer.shutdown(Shutdown::Write).expect("shutdown(SHUT_WR)");
    });
    let mut received = Vec::with_capacity(sent.len());
    stream
        .read_to_end(&mut received)
        .unwrap_or_else(|e| panic!("client {id}: reading the echo failed: {e}"));
    sender.join().unwrap();
    assert_eq!(received.len(), sent.len(), "client {id}: echoed length");
    assert!(
        received == sent,
        "client {id}: echoed bytes differ from the sent ones"
    );
}

#[test]
fn hundred_concurrent_clients_get_every_byte_back() {
    let server = start(&[]);
    let addr = server.addr;
    within(
        Duration::from_secs(60),
        "100 clients, each echoed in full",
        move || {
            let clients: Vec<_> = (1..=100)
                .map(|id| thread::spawn(move || echo_client(addr, id)))
                .collect();
            for client in clients {
                client
                    .join()
                    .expect("a client failed (see its message above)");
            }
        },
    );
    drop(server);
}

#[test]
fn one_client_logs_opened_then_closed() {
    let mut server = start(&[]);
    let addr = server.addr;
    within(STEP_LIMIT, "one client echoed", move || {
        echo_client(addr, 1)
    });
    server.wait_for_line(STEP_LIMIT, "conn-1 closed", |line| {
        line.starts_with("conn-1 closed")
    });
    let log = server.log()[1..].join("\n");
    insta::assert_snapshot!("serve_log_one_client", log);
}

#[test]
fn one_at_a_time_serves_clients_in_turn() {
    let mut server = start(&["--one-at-a-time"]);
    let addr = server.addr;
    within(
        Duration::from_secs(30),
        "client-2 served once client-1 hung up",
        move || {
            let mut client_1 = connect(addr);
            let mut client_2 = connect(addr);
            let mut buf = [0u8; 64];
            client_1.write_all(b"one").unwrap();
            client_1.read_exact(&mut buf[..3]).unwrap();
            assert_eq!(&buf[..3], b"one");

            // The server sleeps in read(conn-1): client-2 is not even accepted.
            client_2.write_all(b"two").unwrap();
            client_2
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let early = client_2.read(&mut buf);
            assert!(
                matches!(&early, Err(e) if e.kind() == ErrorKind::WouldBlock),
                "client-2 should get nothing while client-1 is connected, got {early:?}"
            );

            client_1.shutdown(Shutdown::Write).unwrap();
            assert_eq!(client_1.read(&mut buf).unwrap(), 0, "client-1: end of file");
            client_2.set_read_timeout(Some(STEP_LIMIT)).unwrap();
            client_2.read_exact(&mut buf[..3]).unwrap();
            assert_eq!(&buf[..3], b"two");
        },
    );
    server.wait_for_line(STEP_LIMIT, "conn-2 closed", |line| {
        line.starts_with("conn-2 closed")
    });
    let log = server.log().join("\n");
    let log = log
        .split_once('\n')
        .map(|(_address, rest)| rest)
        .unwrap_or("");
    insta::assert_snapshot!("serve_log_one_at_a_time", log);
}

#[test]
fn ctrl_c_ends_the_server() {
    let server = start(&[]);
    let status = server.interrupt();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(2),
        "SIGINT's default action ends the process"
    );
}
