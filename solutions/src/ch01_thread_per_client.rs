//! # Chapter 01, exercise 2: a thread per client
//!
//! Read first: the book's chapter 01 ("Run it": `second-client-waits` and
//! `thread-per-client`), [accept(2)](https://man7.org/linux/man-pages/man2/accept.2.html)
//! and [read(2)](https://man7.org/linux/man-pages/man2/read.2.html).
//!
//! A server that calls [`echo`] on each accepted connection in turn serves
//! one client at a time: while `echo` sleeps in `read` on client 1's socket,
//! client 2 waits in the listener's queue, unanswered, however long
//! client 1 stays idle.
//!
//! Write [`serve`]: accept connections forever and echo each one on its own
//! thread, so every client is answered whatever the others do. Each
//! connection must be closed when its client is done.
//!
//! Check with `cargo lab check ch01_thread_per_client`.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::thread;

/// Echoes everything `conn` sends back to it until the client shuts down
/// its side, then returns (dropping `conn` closes the connection). Done for
/// you: it blocks in `read` whenever the client is quiet.
pub fn echo(conn: TcpStream) -> io::Result<()> {
    let (mut from, mut to) = (&conn, &conn);
    io::copy(&mut from, &mut to)?;
    Ok(())
}

/// Accepts connections on `listener` forever, echoing each on its own
/// thread. Returns only if `accept` fails.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _peer) = listener.accept()?;
        // The thread owns the stream: when echo returns, the stream is
        // dropped and the connection closed. Nobody joins the thread.
        thread::spawn(move || echo(stream));
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpStream};
    use std::time::Duration;

    /// Starts `serve` on a background thread, on a port the kernel picks.
    fn start_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || serve(listener));
        addr
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream
    }

    /// Sends `message` and reads the echo; on failure, says who got what.
    fn ask(stream: &mut TcpStream, who: &str, message: &[u8], while_: &str) {
        stream.write_all(message).unwrap();
        let mut echo = vec![0u8; message.len()];
        match stream.read_exact(&mut echo) {
            Ok(()) => assert_eq!(echo, message, "{who} got a wrong echo"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => panic!(
                "{who} got no echo within 2 s{while_}. Your server is still busy \
                 elsewhere: a read on another client's socket sleeps until that client \
                 sends or hangs up. Accept each connection and hand it to its own \
                 thread (std::thread::spawn(move || echo(stream))), then go straight \
                 back to accept."
            ),
            Err(e) => panic!("{who}: reading the echo failed: {e}"),
        }
    }

    #[test]
    fn echoes_one_client() {
        let addr = start_server();
        within(
            Duration::from_secs(10),
            "one client to be echoed",
            move || {
                let mut client = connect(addr);
                ask(&mut client, "the only client", b"hello", "");
            },
        );
    }

    #[test]
    fn answers_client_2_while_client_1_is_idle() {
        let addr = start_server();
        within(
            Duration::from_secs(10),
            "client 2 to be echoed while client 1 stays connected",
            move || {
                let mut client_1 = connect(addr);
                ask(&mut client_1, "client 1", b"one", "");
                let mut client_2 = connect(addr);
                ask(
                    &mut client_2,
                    "client 2",
                    b"two",
                    " while client 1 stayed connected and idle",
                );
                drop(client_1);
            },
        );
    }

    #[test]
    fn answers_ten_clients_that_all_stay_connected() {
        let addr = start_server();
        within(
            Duration::from_secs(20),
            "ten clients to be echoed, each while the earlier ones stay connected",
            move || {
                let mut clients = Vec::new();
                for i in 1..=10 {
                    let mut client = connect(addr);
                    let who = format!("client {i}");
                    ask(
                        &mut client,
                        &who,
                        who.as_bytes(),
                        " while the clients before it stayed connected",
                    );
                    clients.push(client);
                }
            },
        );
    }

    #[test]
    fn closes_the_connection_when_the_client_is_done() {
        let addr = start_server();
        within(
            Duration::from_secs(10),
            "the echo, then end of file, after the client shut down its side",
            move || {
                let mut client = connect(addr);
                client.write_all(b"bye").unwrap();
                client.shutdown(Shutdown::Write).unwrap();
                let mut received = Vec::new();
                match client.read_to_end(&mut received) {
                    Ok(_) => assert_eq!(received, b"bye", "the echo before end of file"),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        panic!(
                            "the client shut down its side but got no end of file within 2 s \
                             (it had received {:?}). When echo returns, the server \
                             must close its end: let the TcpStream drop at the end of the \
                             thread, don't keep it.",
                            String::from_utf8_lossy(&received)
                        )
                    }
                    Err(e) => panic!("reading the echo failed: {e}"),
                }
            },
        );
    }
}
