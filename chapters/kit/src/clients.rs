//! Echo clients for the servers' tests: many connections at once, a client
//! that half-closes, a client that resets.
//!
//! [`echo_many`] drives hundreds of connections from a few threads. Each
//! thread keeps its connections non-blocking and reads while it writes, so a
//! server that echoes slowly (or applies backpressure) never deadlocks the
//! test; every step is under a deadline, so a broken server fails the test
//! with a message instead of hanging it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

/// How long [`echo_many`] and the single clients may take in all.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// What [`echo_many`] does.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Connections in all (they are all open at the same time).
    pub connections: usize,
    /// Threads the connections are spread over.
    pub threads: usize,
    /// Each connection sends a random number of bytes in `1..=max_message`.
    pub max_message: usize,
    /// Seed of the sizes and contents, so a failure can be replayed.
    pub seed: u64,
}

/// A small deterministic generator (xorshift64*): sizes and bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

struct Client {
    index: usize,
    stream: TcpStream,
    sent: Vec<u8>,
    written: usize,
    received: Vec<u8>,
    /// Half-close (shutdown SHUT_WR) after the last byte is written, and
    /// expect the server to close after the echo; otherwise close once the
    /// whole echo is in.
    half_close: bool,
    done: bool,
}

/// Opens `load.connections` connections to `addr` (all at once), sends each
/// a random message, and checks that exactly the same bytes come back.
/// Even-numbered connections half-close after sending (and must then get
/// the rest of their echo and end of file); odd ones close after reading
/// their whole echo. Returns the total number of bytes echoed, or what went
/// wrong.
pub fn echo_many(addr: SocketAddr, load: Load) -> Result<usize, String> {
    let deadline = Instant::now() + CLIENT_LIMIT;
    let per_thread = load.connections.div_ceil(load.threads.max(1));
    let mut workers = Vec::new();
    for t in 0..load.threads.max(1) {
        let first = t * per_thread;
        let last = ((t + 1) * per_thread).min(load.connections);
        if first >= last {
            break;
        }
        workers.push(thread::spawn(move || {
            let mut clients = Vec::new();
            for index in first..last {
                let mut rng =
                    Rng(load.seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let size = 1 + (rng.next() as usize) % load.max_message.max(1);
                let sent: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
                let stream = TcpStream::connect(addr)
                    .map_err(|e| format!("connection {index}: connect: {e}"))?;
                stream
                    .set_nonblocking(true)
                    .map_err(|e| format!("connection {index}: O_NONBLOCK: {e}"))?;
                clients.push(Client {
                    index,
                    stream,
                    sent,
                    written: 0,
                    received: Vec::new(),
                    half_close: index % 2 == 0,
                    done: false,
                });
            }
            drive(&mut clients, deadline)
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker
            .join()
            .map_err(|_| "a client thread panicked".to_string())??;
    }
    Ok(total)
}

/// Runs one thread's clients to completion with poll(2).
fn drive(clients: &mut [Client], deadline: Instant) -> Result<usize, String> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let open: Vec<usize> = (0..clients.len()).filter(|&i| !clients[i].done).collect();
        if open.is_empty() {
            return Ok(clients.iter().map(|c| c.received.len()).sum());
        }
        if Instant::now() > deadline {
            let stuck: Vec<String> = open
                .iter()
                .take(5)
                .map(|&i| {
                    let c = &clients[i];
                    format!(
                        "connection {}: wrote {}/{} bytes, got {} back",
                        c.index,
                        c.written,
                        c.sent.len(),
                        c.received.len()
                    )
                })
                .collect();
            return Err(format!(
                "{} connections still unfinished after {CLIENT_LIMIT:?}; the server stopped \
                 echoing (a missed event, or a connection never woken). First ones:\n{}",
                open.len(),
                stuck.join("\n")
            ));
        }
        let ready: Vec<(usize, PollFlags)> = {
            let mut fds: Vec<PollFd> = open
                .iter()
                .map(|&i| {
                    let c = &clients[i];
                    let mut flags = PollFlags::POLLIN;
                    if c.written < c.sent.len() {
                        flags |= PollFlags::POLLOUT;
                    }
                    PollFd::new(c.stream.as_fd(), flags)
                })
                .collect();
            match nix::poll::poll(&mut fds, PollTimeout::from(200u16)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            open.iter()
                .zip(&fds)
                .map(|(&i, p)| (i, p.revents().unwrap_or(PollFlags::POLLERR)))
                .filter(|(_, r)| !r.is_empty())
                .collect()
        };
        for (i, revents) in ready {
            step(&mut clients[i], revents, &mut buf)?;
        }
    }
}

/// Writes what the socket takes, reads what it has, and checks the echo.
fn step(c: &mut Client, revents: PollFlags, buf: &mut [u8]) -> Result<(), String> {
    if revents.contains(PollFlags::POLLOUT) && c.written < c.sent.len() {
        match c.stream.write(&c.sent[c.written..]) {
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("connection {}: write: {e}", c.index)),
        }
        if c.written == c.sent.len() && c.half_close {
            c.stream
                .shutdown(Shutdown::Write)
                .map_err(|e| format!("connection {}: shutdown: {e}", c.index))?;
        }
    }
    if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
        loop {
            match c.stream.read(buf) {
                Ok(0) => {
                    if c.received.len() != c.sent.len() {
                        return Err(format!(
                            "connection {}: the server closed after echoing {} of {} bytes",
                            c.index,
                            c.received.len(),
                            c.sent.len()
                        ));
                    }
                    c.done = true;
                    return Ok(());
                }
                Ok(n) => {
                    let at = c.received.len();
                    if at + n > c.sent.len() || c.sent[at..at + n] != buf[..n] {
                        return Err(format!(
                            "connection {}: bytes {at}..{} of the echo differ from what was sent",
                            c.index,
                            at + n
                        ));
                    }
                    c.received.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("connection {}: read: {e}", c.index)),
            }
        }
        // A client that does not half-close is done once its echo is in;
        // dropping it closes the connection.
        if !c.half_close && c.received.len() == c.sent.len() {
            c.done = true;
        }
    }
    Ok(())
}

/// Connects, sends `data`, half-closes (shutdown SHUT_WR), and returns
/// everything the server sends until it closes, with a read timeout.
pub fn half_close(addr: SocketAddr, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(CLIENT_LIMIT))?;
    stream.set_write_timeout(Some(CLIENT_LIMIT))?;
    // Send and receive at once: the echo of a large message fills the
    // socket buffers before all of it is sent.
    let reader = stream.try_clone()?;
    let collector = thread::spawn(move || {
        let mut reader = reader;
        let mut echo = Vec::new();
        reader.read_to_end(&mut echo).map(|_| echo)
    });
    stream.write_all(data)?;
    stream.shutdown(Shutdown::Write)?;
    collector
        .join()
        .map_err(|_| io::Error::other("the reading thread panicked"))?
}

/// Connects, sends `data`, then closes with SO_LINGER 0, which makes the
/// kernel send a reset (RST) instead of a FIN.
pub fn reset(addr: SocketAddr, data: &[u8]) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_write_timeout(Some(CLIENT_LIMIT))?;
    stream.write_all(data)?;
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &linger)?;
    drop(stream);
    Ok(())
}

/// The checks every echo server's `serve` tests share. With `server`
/// freshly started: 200 clients at once with byte-exact echoes (half of
/// them half-closing), 5 resets alongside, one half-closing client sending
/// 300 KB (more than a server buffers per connection), then every
/// connection logged `opened` and `closed`, and no descriptor left beyond
/// what the server held at the start. Panics with what went wrong.
pub fn check_echo_server(server: &mut crate::server::ServerProcess) {
    let addr = server.addr;
    // The listener, plus whatever the server inherited from the test's
    // environment (a build tool's pipe, say).
    let at_start = server.descriptors_above_stdio();
    // A few resets, at the same time as the load, must not hurt anyone.
    let resets = thread::spawn(move || {
        for _ in 0..5 {
            reset(addr, &[7u8; 3000]).expect("reset client");
        }
    });
    let load = Load {
        connections: 200,
        threads: 4,
        max_message: 64 * 1024,
        seed: 3,
    };
    let echoed = echo_many(addr, load).unwrap_or_else(|e| panic!("{e}"));
    assert!(echoed > 0);
    resets.join().expect("reset thread");

    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let echo = half_close(addr, &big).expect("half-closing client");
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
    let fds = server.descriptors_above_stdio();
    assert!(
        fds == at_start,
        "after every client left, the server should hold only what it held at start \
         (its listener):\nat start:\n{}\nnow:\n{}",
        at_start.join("\n"),
        fds.join("\n")
    );
}
