//! The Redis-protocol server on the reactor: an acceptor, one handler per
//! connection with its input and output buffers, a timer for active
//! expiry, and signalfd shutdown. The protocol and the commands are the
//! engine's (`Session`, `Db`); this file owns every system call and the
//! clock.
//!
//! Per connection, as Redis's `networking.c` does it in spirit: read into
//! a query buffer (`readQueryFromClient`, 16 KiB at a time:
//! `PROTO_IOBUF_LEN`), run every complete command in it, append each reply
//! to one output buffer, and write that buffer once (Redis writes in
//! `beforeSleep`, `handleClientsWithPendingWrites`). A pipelined batch of
//! commands that arrived in one read is answered by one write.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use lab_kit::trace::{self, count_of};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::socket::{SockFlag, setsockopt, sockopt};

use crate::reactor::{Handler, Interest, Next, Reactor, Ready, Token};
use crate::session::{Flow, Limits, Millis, Session};
use crate::store::Db;

/// The server's knobs (the `serve` flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// Stop reading a client while this much output waits for it
    /// (chapter 06's backpressure). The engine also stops running a
    /// client's commands once its output reaches this.
    pub out_soft_limit: usize,
    /// Close a client whose pending output grows past this (Redis's
    /// `client-output-buffer-limit`; Redis sets none for normal clients).
    pub out_hard_limit: usize,
    /// Close a client whose unparsed input grows past this (Redis's
    /// `client-query-buffer-limit`, 1 GB there).
    pub query_limit: usize,
    /// Reads per connection per round, then [`Next::Again`]: the budget
    /// that keeps one flooding client from starving the others.
    pub read_budget: usize,
    /// How often the active expiry timer runs (Redis: `hz 10`, 100 ms).
    pub expire_period: Duration,
    /// Log `conn-N opened` / `conn-N closed: why` lines.
    pub log: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            out_soft_limit: 256 * 1024,
            out_hard_limit: 256 * 1024 * 1024,
            query_limit: Limits::default().max_bulk_len + 64 * 1024,
            read_budget: 16,
            expire_period: Duration::from_millis(100),
            log: true,
        }
    }
}

/// Bytes read per `read` call (Redis's `PROTO_IOBUF_LEN`).
pub const READ_CHUNK: usize = 16 * 1024;
/// Keys sampled per active expiry pass (Redis's
/// `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
pub const EXPIRE_SAMPLE: usize = 20;
/// Connections accepted per round before the acceptor yields.
pub const ACCEPT_BUDGET: usize = 64;

/// What every handler shares: the database and the settings.
pub struct Shared {
    pub db: Db,
    pub config: Config,
    next_id: u64,
    open: usize,
    /// `read`s and `write`s on client sockets (not the signalfd's).
    reads: u64,
    writes: u64,
}

/// Milliseconds since the server started, for the engine.
fn millis(reactor: &Reactor<Shared>) -> Millis {
    reactor.now().as_millis() as Millis
}

fn log(shared: &Shared, line: std::fmt::Arguments) {
    if shared.config.log {
        println!("{line}");
    }
}

/// Runs the server on `listener` until SIGINT or SIGTERM.
pub fn serve(listener: TcpListener, config: Config) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let shared = Shared {
        db: Db::new(),
        config,
        next_id: 0,
        open: 0,
        reads: 0,
        writes: 0,
    };
    let mut reactor = Reactor::new(shared)?;
    reactor.on_signals(
        &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGUSR1],
        |reactor, signal| match signal {
            Signal::SIGUSR1 => println!("{}", stats(reactor)),
            _ => {
                println!("{} received: shutting down", signal.as_str());
                reactor.stop();
            }
        },
    )?;
    // Only now, with SIGINT/SIGTERM blocked and read through the signalfd,
    // say where we listen: a test that signals us next finds them handled.
    println!("listening on {}", listener.local_addr()?);
    reactor.register("listener", Acceptor { listener }, Interest::Read)?;
    let period = reactor.state.config.expire_period;
    reactor.add_timer("active-expire", period, move |reactor| {
        active_expire(reactor);
        Some(period)
    });
    reactor.run()?;
    println!("stopped");
    Ok(())
}

// ANCHOR: active_expire
/// Redis's `activeExpireCycle` in small: sample keys with a TTL, delete
/// the expired ones, and go again while more than 10% of the sample was
/// expired (Redis's `ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE`), for at most a
/// quarter of the timer's period (`ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC`),
/// so one pass never holds the loop for long.
fn active_expire(reactor: &mut Reactor<Shared>) {
    let now = millis(reactor);
    let started = std::time::Instant::now();
    let budget = reactor.state.config.expire_period / 4;
    loop {
        let deleted = reactor.state.db.active_expire(now, EXPIRE_SAMPLE);
        if deleted * 10 <= EXPIRE_SAMPLE || started.elapsed() >= budget {
            break;
        }
    }
}
// ANCHOR_END: active_expire

/// The line SIGUSR1 prints: the `read`s and `write`s on client sockets,
/// and the `epoll_wait`s and `accept4`s this thread made (counted by
/// lab-kit's wrappers, printing or not).
pub fn stats(reactor: &Reactor<Shared>) -> String {
    format!(
        "stats: {} connections open, {} keys, {} reads, {} writes, {} epoll_waits, {} accepts",
        reactor.state.open,
        reactor.state.db.len(),
        reactor.state.reads,
        reactor.state.writes,
        count_of("epoll_wait"),
        count_of("accept4"),
    )
}

struct Acceptor {
    listener: TcpListener,
}

impl AsFd for Acceptor {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Handler<Shared> for Acceptor {
    fn ready(&mut self, reactor: &mut Reactor<Shared>, token: Token, _: Ready) -> Next {
        for _ in 0..ACCEPT_BUDGET {
            let r = nix::sys::socket::accept4(
                self.listener.as_raw_fd(),
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            );
            trace::emit("accept4", || {
                let shown = trace::result(&r, |fd| lab_kit::names::name_of(*fd));
                format!("accept4(listener, SOCK_NONBLOCK|SOCK_CLOEXEC) -> {shown}")
            });
            match r {
                Ok(fd) => {
                    // SAFETY: accept4 returned a new descriptor nobody owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    open_connection(reactor, fd);
                }
                // Drained: the next connection makes a new edge.
                Err(Errno::EAGAIN) => return Next::Done,
                Err(Errno::ECONNABORTED) | Err(Errno::EINTR) => continue,
                Err(e @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)) => {
                    // Out of descriptors: the queued connection stays
                    // queued and, under EPOLLET, makes no new event. Try
                    // again in 100 ms (a timer), never in a busy loop.
                    log(
                        &reactor.state,
                        format_args!("accept: {e}; retrying in 100 ms"),
                    );
                    reactor.add_timer("accept-retry", Duration::from_millis(100), move |r| {
                        r.requeue(token);
                        None
                    });
                    return Next::Done;
                }
                Err(e) => {
                    log(&reactor.state, format_args!("accept: {e}"));
                    return Next::Done;
                }
            }
        }
        // Budget spent with more possibly queued: come back next round.
        Next::Again
    }
}

fn open_connection(reactor: &mut Reactor<Shared>, fd: OwnedFd) {
    // Replies are small and the client waits for each: no Nagle delay
    // (Redis sets TCP_NODELAY on every client too).
    let _ = setsockopt(&fd, sockopt::TcpNoDelay, &true);
    reactor.state.next_id += 1;
    let id = reactor.state.next_id;
    let conn = Conn {
        fd,
        session: Session::new(Limits::default()),
        input: Vec::new(),
        in_start: 0,
        in_end: 0,
        out: Vec::new(),
        out_start: 0,
        quit: false,
        eof: false,
        drained: false,
        peer_gone: false,
        farewell: Farewell {
            id,
            why: None,
            log: reactor.state.config.log,
        },
    };
    match reactor.register(&format!("conn-{id}"), conn, Interest::ReadWrite) {
        Ok(_) => {
            reactor.state.open += 1;
            log(&reactor.state, format_args!("conn-{id} opened"));
        }
        Err(e) => log(
            &reactor.state,
            format_args!("conn-{id} not registered: {e}"),
        ),
    }
}

/// One client: its socket, its protocol state, and its two buffers.
struct Conn {
    /// Declared first, so it is dropped (closed) before `farewell` logs.
    fd: OwnedFd,
    session: Session,
    /// The query buffer: bytes `in_start..in_end` are read but not yet
    /// consumed by the engine (an incomplete command, or commands held back
    /// while output is over the soft limit).
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    /// Replies not yet written: `out[out_start..]`.
    out: Vec<u8>,
    out_start: usize,
    /// Set by QUIT or a protocol error: no more commands run, and the
    /// connection closes once its output is flushed.
    quit: bool,
    /// The client shut its side (a read returned 0): what is buffered is
    /// still answered, then the connection closes.
    eof: bool,
    /// The last read found the socket empty (EAGAIN or a short read):
    /// nothing to read until the next EPOLLIN edge.
    drained: bool,
    /// An event said EPOLLRDHUP, EPOLLHUP or EPOLLERR: the end of the
    /// stream (or a reset) is queued behind the data, and no new edge will
    /// announce it, so a short read no longer proves there is nothing left.
    peer_gone: bool,
    /// Logs `conn-N closed: why` when the handler is dropped, *after* `fd`
    /// (fields drop in order): a test that sees the line finds the
    /// descriptor closed.
    farewell: Farewell,
}

struct Farewell {
    id: u64,
    why: Option<String>,
    log: bool,
}

impl Drop for Farewell {
    fn drop(&mut self) {
        if self.log {
            let why = self.why.as_deref().unwrap_or("the server stopped");
            println!("conn-{} closed: {why}", self.id);
        }
    }
}

impl Conn {
    fn pending(&self) -> usize {
        self.out.len() - self.out_start
    }

    // ANCHOR: process
    /// Runs every complete command in the query buffer; their replies go to
    /// the end of `out`.
    fn process(&mut self, shared: &mut Shared, now: Millis) {
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
        }
        while self.in_start < self.in_end && !self.quit {
            let soft = self.out_start + shared.config.out_soft_limit;
            let input = &self.input[self.in_start..self.in_end];
            let (used, flow) = self
                .session
                .handle(input, &mut shared.db, now, &mut self.out, soft);
            self.in_start += used;
            if let Flow::CloseAfterFlush = flow {
                self.quit = true;
            }
            if used == 0 || self.out.len() >= soft {
                break; // An incomplete command, or enough output for now.
            }
        }
        if self.in_start == self.in_end {
            self.in_start = 0;
            self.in_end = 0;
        }
    }
    // ANCHOR_END: process

    // ANCHOR: flush
    /// Writes pending output until it is all written or the socket is full
    /// (EAGAIN: the EPOLLOUT edge will call us when there is room again).
    fn flush(&mut self, shared: &mut Shared) -> Result<(), String> {
        while self.out_start < self.out.len() {
            shared.writes += 1;
            match trace::write(&self.fd, &self.out[self.out_start..]) {
                Ok(n) => self.out_start += n,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(trace::errno(e)),
            }
        }
        Ok(())
    }
    // ANCHOR_END: flush

    /// Reads once into the free end of the query buffer. Returns the bytes
    /// read, 0 at end of file.
    fn read_some(&mut self) -> nix::Result<usize> {
        if self.input.len() - self.in_end < READ_CHUNK {
            // Move the unconsumed tail to the front, then grow if needed.
            self.input.copy_within(self.in_start..self.in_end, 0);
            self.in_end -= self.in_start;
            self.in_start = 0;
            if self.input.len() - self.in_end < READ_CHUNK {
                self.input.resize(self.in_end + READ_CHUNK, 0);
            }
        }
        let room = &mut self.input[self.in_end..];
        let n = trace::read(&self.fd, room)?;
        if n < room.len() && !self.peer_gone {
            // A short read on a stream socket: the receive queue is empty
            // now (epoll(7)); no need to make the EAGAIN call to learn it.
            // Unless the peer's FIN or RST came with the data: then the
            // next read returns 0 or ECONNRESET, and must be made now.
            self.drained = true;
        }
        self.in_end += n;
        Ok(n)
    }

    fn close(&mut self, reactor: &mut Reactor<Shared>, token: Token, why: &str) -> Next {
        reactor.state.open -= 1;
        self.farewell.why = Some(why.to_string());
        // EPOLL_CTL_DEL now; the reactor drops this handler (closing the
        // socket) as soon as we return.
        reactor.deregister(token);
        Next::Done
    }
}

impl Handler<Shared> for Conn {
    // ANCHOR: conn_ready
    fn ready(&mut self, reactor: &mut Reactor<Shared>, token: Token, ready: Ready) -> Next {
        if ready.readable || ready.closed {
            self.drained = false;
        }
        if ready.closed {
            self.peer_gone = true;
        }
        let now = millis(reactor);
        let mut reads = 0;
        loop {
            self.process(&mut reactor.state, now);
            if let Err(e) = self.flush(&mut reactor.state) {
                return self.close(reactor, token, &format!("write: {e}"));
            }
            let pending = self.pending();
            let config = &reactor.state.config;
            if pending > config.out_hard_limit {
                let why = format!("output buffer over the hard limit ({pending} bytes)");
                return self.close(reactor, token, &why);
            }
            if self.quit || (self.eof && pending < config.out_soft_limit) {
                // Nothing more will run: close once the output is out.
                if pending == 0 {
                    let why = if self.quit {
                        "QUIT or protocol error"
                    } else {
                        "end of file"
                    };
                    return self.close(reactor, token, why);
                }
                return Next::Done; // The EPOLLOUT edge brings us back.
            }
            if pending >= config.out_soft_limit {
                // Backpressure: stop reading. The socket buffer is full
                // (the write got EAGAIN), so an EPOLLOUT edge will come
                // once the client reads, and we resume from here.
                return Next::Done;
            }
            if self.in_end - self.in_start > config.query_limit {
                return self.close(reactor, token, "query buffer over the limit");
            }
            if self.drained {
                return Next::Done;
            }
            if reads == config.read_budget {
                return Next::Again; // More may be queued: next round.
            }
            reads += 1;
            reactor.state.reads += 1;
            match self.read_some() {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(Errno::EAGAIN) => self.drained = true,
                Err(Errno::EINTR) => {}
                Err(e) => return self.close(reactor, token, &format!("read: {}", trace::errno(e))),
            }
        }
    }
    // ANCHOR_END: conn_ready
}

impl AsFd for Conn {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
