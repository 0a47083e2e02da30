//! Chapter 01, blocking I/O: an echo server built from blocking `read` and
//! `write`, first serving one client at a time, then one thread per client.
//!
//! Every call goes through [`lab_kit::trace`], so a scenario that enables
//! tracing on its thread shows each `read` and `write`, while a server on a
//! background thread (or `serve`) stays silent.

use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::thread;

use lab_kit::trace;
use nix::errno::Errno;

/// Where a server reports connection events, one line each:
/// `conn-1 opened`, `conn-1 closed after echoing 12 bytes`.
pub type Log = fn(&str);

/// A [`Log`] that prints each event on stdout (what `serve` uses).
pub fn print_log(line: &str) {
    println!("{line}");
}

/// A [`Log`] that drops every event (a scenario's background server).
pub fn quiet_log(_line: &str) {}

/// The stack each client thread asks for. Rust's default is 2 MiB and
/// glibc's is `ulimit -s` (often 8 MiB); every thread reserves its own.
pub const CLIENT_STACK_SIZE: usize = 256 * 1024;

// ANCHOR: write_all
/// Writes every byte of `data` to `fd`
/// ([write(2)](https://man7.org/linux/man-pages/man2/write.2.html)).
///
/// One `write` may take fewer bytes than it was given (a signal handler ran
/// after part of the buffer was queued, a send timeout expired): the count
/// it returns is what the kernel took, so we loop on the rest.
/// ([signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html),
/// "Interruption of system calls and library functions by signal handlers".)
pub fn write_all(fd: impl AsFd, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match trace::write(&fd, data) {
            // On a blocking socket or pipe, write sleeps until it can take at
            // least one byte, so a non-empty write never returns 0 here.
            Ok(written) => data = &data[written..],
            // A signal handler installed without SA_RESTART ran before any
            // byte was queued (with SA_RESTART the kernel restarts the call
            // itself): nothing was written, so make the same call again.
            // `cargo run -p ch01-blocking-io -- eintr` shows both cases.
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
// ANCHOR_END: write_all

// ANCHOR: echo
/// Sends back everything `conn` sends, until the client ends its side
/// (read returns 0, end of file). Returns how many bytes were echoed.
///
/// Each [read(2)](https://man7.org/linux/man-pages/man2/read.2.html) on a
/// blocking socket sleeps on the socket's wait queue until data or end of
/// file arrives: while it sleeps, this thread can do nothing else.
pub fn echo(conn: impl AsFd) -> nix::Result<u64> {
    let mut buf = [0u8; 4096];
    let mut echoed = 0;
    loop {
        let received = match trace::read(&conn, &mut buf) {
            Ok(0) => return Ok(echoed),
            Ok(n) => n,
            // A handler installed without SA_RESTART interrupted the
            // sleeping read before any data came: retry.
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        write_all(&conn, &buf[..received])?;
        echoed += received as u64;
    }
}
// ANCHOR_END: echo

/// Takes the next connection off the listener's queue and names it
/// `conn-ID` ([accept(2)](https://man7.org/linux/man-pages/man2/accept.2.html)).
/// Blocks while the queue is empty.
fn accept_next(listener: &TcpListener, id: u64) -> nix::Result<OwnedFd> {
    loop {
        match trace::accept(listener, &format!("conn-{id}")) {
            // EINTR: a handler installed without SA_RESTART interrupted the
            // sleeping accept. ECONNABORTED: the
            // client gave up while queued. Neither is the listener's fault.
            Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
            other => return other,
        }
    }
}

/// Echoes one client, logs its life, and closes it.
fn serve_client(conn: OwnedFd, id: u64, log: Log) {
    log(&format!("conn-{id} opened"));
    let outcome = echo(&conn);
    // close(2) lets the client's next read return 0 (end of file).
    let closed = trace::close(conn);
    match (outcome, closed) {
        (Ok(bytes), Ok(())) => log(&format!("conn-{id} closed after echoing {bytes} bytes")),
        (Err(e), _) | (Ok(_), Err(e)) => log(&format!("conn-{id} closed: {}", trace::errno(e))),
    }
}

// ANCHOR: one_at_a_time
/// Serves clients one after the other: the next `accept` happens only when
/// the current client has hung up. While [`echo`] sleeps in `read` on
/// `conn-1`, `conn-2` waits in the listener's queue, even though the
/// kernel already completed its handshake and queued the bytes it sent.
///
/// Returns only if `accept` fails.
pub fn serve_one_at_a_time(listener: &TcpListener, log: Log) -> nix::Result<()> {
    let mut id = 0;
    loop {
        id += 1;
        let conn = accept_next(listener, id)?;
        serve_client(conn, id, log);
    }
}
// ANCHOR_END: one_at_a_time

// ANCHOR: thread_per_client
/// Serves each client on its own thread, so a client that is slow (or
/// idle) only blocks its own thread. Each thread is a kernel task with its
/// own stack of [`CLIENT_STACK_SIZE`] bytes: the cost grows with the number
/// of *connections*, not with the work they ask for.
///
/// Returns only if `accept` fails.
pub fn serve_thread_per_client(listener: &TcpListener, log: Log) -> nix::Result<()> {
    let mut id = 0;
    loop {
        id += 1;
        let conn = accept_next(listener, id)?;
        let spawned = thread::Builder::new()
            .name(format!("conn-{id}"))
            .stack_size(CLIENT_STACK_SIZE)
            .spawn(move || serve_client(conn, id, log));
        // Threads run out (RLIMIT_NPROC, memory): the connection is closed
        // when the closure that owns it is dropped, and the server goes on.
        if let Err(e) = spawned {
            log(&format!("conn-{id} refused: no thread for it: {e}"));
        }
    }
}
// ANCHOR_END: thread_per_client
