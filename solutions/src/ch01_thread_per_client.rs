//! # Chapter 01, exercise 2: a thread per client
//!
//! Read first: the book's chapter 01 ("One slow client blocks everybody"
//! and "A thread per client").
//!
//! Then [accept(2)](https://man7.org/linux/man-pages/man2/accept.2.html)
//! and [read(2)](https://man7.org/linux/man-pages/man2/read.2.html).
//!
//! A server that calls [`echo`] on each accepted connection in turn serves
//! one client at a time: while `echo` sleeps in `read` on client 1's socket,
//! client 2 waits in the listener's queue, unanswered, however long
//! client 1 stays idle.
//!
//! Write [`serve`]: accept connections forever and echo each one on its own
//! thread, so every client is answered whatever the others do. Each
//! connection must be closed when its client is done. If `accept` fails,
//! return its error (don't panic): a failure such as EINVAL, on a listener
//! that was shut down, comes back on every call, so retrying would spin.
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
    use lab_kit::trace::bytes;
    use lab_kit::watchdog::within;
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpStream};
    use std::os::fd::AsRawFd;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::Duration;

    /// A correct server answers every test in well under 0.1 s.
    const LIMIT: Duration = Duration::from_secs(2);

    /// How long a client waits for its echo before it gives up.
    const PATIENCE: Duration = Duration::from_secs(1);

    /// The message a panic carried.
    fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
        payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message")
    }

    /// Starts `serve` on a background thread, on a port the kernel picks.
    fn start_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || serve(listener));
        addr
    }

    fn connect(addr: SocketAddr, who: &str) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| {
            panic!(
                "{who} could not connect ({e}): nobody listens any more. serve must \
                 accept in a loop, forever; did it return after an earlier client? \
                 The listener is closed when serve returns."
            )
        });
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }

    /// What keeps a one-at-a-time server from answering, and the fix.
    const BUSY_ELSEWHERE: &str = "Your server is still busy elsewhere: a read on another \
        client's socket sleeps until that client sends or hangs up. Accept each connection \
        and hand it to its own thread (std::thread::spawn(move || echo(stream))), then go \
        straight back to accept.";

    /// Sends `message` and reads the echo. If none comes in time, fails with
    /// `situation` (what the other clients do) and `why` (what to look at).
    fn ask(stream: &mut TcpStream, who: &str, message: &[u8], situation: &str, why: &str) {
        stream.write_all(message).unwrap();
        let mut echo = vec![0u8; message.len()];
        match stream.read_exact(&mut echo) {
            Ok(()) => assert!(
                echo == message,
                "{who} sent {} and got {} back",
                bytes(message),
                bytes(&echo)
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{who} got no echo within {PATIENCE:?}{situation}. {why}")
            }
            Err(e) => panic!(
                "{who}: the connection ended before the echo came ({e}). Did serve \
                 return after an earlier client? Connections still waiting in the \
                 listener's queue are reset when the listener is closed."
            ),
        }
    }

    #[test]
    fn echoes_one_client() {
        let addr = start_server();
        within(
            LIMIT,
            "one client to be echoed (a correct server answers at once). Does serve reach \
             accept, and hand the stream it gets to echo?",
            move || {
                let mut client = connect(addr, "the only client");
                ask(
                    &mut client,
                    "the only client",
                    b"hello",
                    ", and no other client is connected",
                    "Does serve reach accept, and hand the stream it gets to echo? A loop \
                     that never calls accept answers nobody.",
                );
            },
        );
    }

    #[test]
    fn answers_client_2_while_client_1_is_idle() {
        let addr = start_server();
        within(
            LIMIT,
            "client 2 to be echoed while client 1 stays connected",
            move || {
                let mut client_1 = connect(addr, "client 1");
                ask(
                    &mut client_1,
                    "client 1",
                    b"one",
                    ", the first client",
                    "Does serve reach accept, and hand the stream it gets to echo?",
                );
                let mut client_2 = connect(addr, "client 2");
                ask(
                    &mut client_2,
                    "client 2",
                    b"two",
                    " while client 1 stayed connected and idle",
                    BUSY_ELSEWHERE,
                );
                drop(client_1);
            },
        );
    }

    #[test]
    fn answers_fifty_clients_that_all_stay_connected() {
        let addr = start_server();
        within(
            LIMIT,
            "fifty clients to be echoed, each while the earlier ones stay connected",
            move || {
                let mut clients = Vec::new();
                for i in 1..=50 {
                    let who = format!("client {i}");
                    let mut client = connect(addr, &who);
                    ask(
                        &mut client,
                        &who,
                        who.as_bytes(),
                        " while the clients before it stayed connected and idle",
                        "Each idle client keeps one thread asleep in read, so one thread, \
                         or any fixed number of them, runs out: start a thread per \
                         connection.",
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
            LIMIT,
            "the echo, then end of file, after the client shut down its side",
            move || {
                let mut client = connect(addr, "the client");
                client.write_all(b"bye").unwrap();
                client.shutdown(Shutdown::Write).unwrap();
                let mut received = Vec::new();
                match client.read_to_end(&mut received) {
                    Ok(_) => assert!(
                        received == b"bye",
                        "the client sent \"bye\" and got {} back before end of file",
                        bytes(&received)
                    ),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        panic!(
                            "the client shut down its side but got no end of file within \
                             {PATIENCE:?} (it had received {}). When echo returns, the server \
                             must close its end: let the TcpStream drop at the end of the \
                             thread, don't keep it (or a copy of it).",
                            bytes(&received)
                        )
                    }
                    Err(e) => panic!("reading the echo failed: {e}"),
                }
            },
        );
    }

    #[test]
    fn returns_when_accept_fails() {
        let result = within(
            LIMIT,
            "serve to return: accept fails with EINVAL on this listener, and will fail the \
             same way every time, so retrying (or skipping) it spins forever. Return \
             accept's error: `listener.accept()?`",
            || {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                // shutdown(2) on a listening socket stops it listening: from
                // now on every accept fails with EINVAL.
                nix::sys::socket::shutdown(listener.as_raw_fd(), nix::sys::socket::Shutdown::Read)
                    .unwrap();
                catch_unwind(AssertUnwindSafe(|| serve(listener)))
            },
        );
        match result {
            Ok(Err(e)) => assert_eq!(
                e.raw_os_error(),
                Some(nix::libc::EINVAL),
                "serve returned {e}, but accept failed with EINVAL: return accept's error as it is"
            ),
            Ok(Ok(())) => {
                panic!("serve returned Ok(()) although accept failed: return accept's error (`?`)")
            }
            Err(payload) => panic!(
                "serve panicked ({}) when accept failed: a server should not crash on an \
                 error it can report; return it with `?`",
                panic_message(payload.as_ref())
            ),
        }
    }
}
