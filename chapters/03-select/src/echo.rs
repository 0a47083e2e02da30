//! The echo server loop, written once against [`Poller`].
//!
//! Chapter 03 runs it over select, chapter 04 over poll, chapter 06 over
//! epoll: the text below does not change, only the backend does (as Redis's
//! `ae.c` runs over `ae_select.c` or `ae_epoll.c`).
//!
//! What makes it correct, top to bottom:
//! - every socket is non-blocking (chapter 02's `set_nonblocking`), so one
//!   slow peer never stops the loop;
//! - the listener is drained: accept until EAGAIN;
//! - each connection has an output buffer; it asks for WRITABLE only while
//!   that buffer holds bytes (a socket is writable almost always, so asking
//!   all the time would wake the loop for nothing);
//! - it stops reading a connection whose buffer is full and resumes when it
//!   drains, so a peer that sends but never reads costs at most
//!   `max_buffered` bytes;
//! - it asks the poller only for what it will act on now. Every backend is
//!   level-triggered: a condition the loop ignores but still asks about is
//!   reported on every wait, and the loop spins. So READABLE goes while
//!   reading is paused (full buffer) or over (end of file), WRITABLE is
//!   there only while bytes wait, and the listener asks for nothing while
//!   accepting is paused (out of descriptors);
//! - one read per readiness when the data is short: a read that returns
//!   fewer bytes than asked has emptied the socket (a stream socket returns
//!   what is queued), so the read that would say EAGAIN is skipped;
//! - end of file from the peer: send what is left, then close;
//! - a reset or error closes that connection only; accept errors are logged
//!   and the loop goes on.
//!
//! Events carry [`Token`]s (the listener is [`LISTENER`], a connection's
//! token is its id), never raw descriptor numbers: the kernel hands a closed
//! number out again, a connection id is never reused.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use ch02_nonblocking_io::set_nonblocking;
use lab_kit::trace;
use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::poller::{Event, Interest, Poller, Token, TokenMap};

/// The listener's token. Connections get tokens 1, 2, 3, ... (their ids).
pub const LISTENER: Token = Token(0);

/// How many bytes a connection may have waiting to be sent back before the
/// loop stops reading from it (64 KiB).
pub const DEFAULT_MAX_BUFFERED: usize = 64 * 1024;

/// How many bytes one read asks for.
const READ_CHUNK: usize = 16 * 1024;

/// One accepted connection.
struct Connection {
    /// `conn-ID` in the log; also its token.
    id: usize,
    fd: OwnedFd,
    /// Bytes read from the peer and not yet written back.
    pending: Vec<u8>,
    /// The peer sent end of file (read returned 0): nothing more to read.
    peer_done: bool,
    /// What the poller watches this connection for right now.
    interest: Interest,
}

/// Why a connection is closed, for the log line `conn-1 closed: REASON`.
type CloseReason = String;

/// An echo server: everything read from a connection is written back to it.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// use ch03_select::{EchoServer, SelectPoller};
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let mut server = EchoServer::new(SelectPoller::new(), listener)?;
/// server.run()
/// # }
/// ```
pub struct EchoServer<P: Poller> {
    poller: P,
    listener: TcpListener,
    connections: TokenMap<Connection>,
    next_id: usize,
    /// Accepting is paused after EMFILE/ENFILE until a connection closes.
    accept_paused: bool,
    /// An open `/dev/null` kept in reserve for EMFILE (chapter 10), if
    /// [`with_spare_descriptor`](Self::with_spare_descriptor) asked for one.
    spare: Option<OwnedFd>,
    max_buffered: usize,
    events: Vec<Event>,
    /// One buffer for every read, made once. (A buffer made for each event
    /// would be filled with zeros first: 16 KiB of writes to memory for a
    /// 64-byte message.)
    read_buf: Vec<u8>,
    log: Box<dyn FnMut(&str)>,
}

impl<P: Poller> EchoServer<P> {
    /// Makes `listener` non-blocking and registers it with `poller`. Log
    /// lines go to standard output until [`with_log`](Self::with_log).
    pub fn new(mut poller: P, listener: TcpListener) -> io::Result<EchoServer<P>> {
        lab_kit::name(&listener, "listener");
        set_nonblocking(&listener)?;
        poller.add(listener.as_raw_fd(), LISTENER, Interest::READABLE)?;
        Ok(EchoServer {
            poller,
            listener,
            connections: TokenMap::default(),
            next_id: 1,
            accept_paused: false,
            spare: None,
            max_buffered: DEFAULT_MAX_BUFFERED,
            events: Vec::new(),
            read_buf: vec![0; READ_CHUNK],
            log: Box::new(|line| println!("{line}")),
        })
    }

    /// Sets how many bytes a connection may have waiting to be sent back
    /// before the loop stops reading from it (at least 1).
    pub fn with_max_buffered(mut self, bytes: usize) -> EchoServer<P> {
        self.max_buffered = bytes.max(1);
        self
    }

    /// Keeps one descriptor (`/dev/null`) in reserve: out of descriptors,
    /// the server trades it for one queued connection at a time and closes
    /// that connection at once, instead of leaving it waiting (chapter 10,
    /// "EMFILE: accept when you cannot").
    pub fn with_spare_descriptor(mut self) -> io::Result<EchoServer<P>> {
        self.spare = Some(trace::open(
            "/dev/null",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            "spare",
        )?);
        Ok(self)
    }

    /// Sends log lines (`conn-1 opened`, ...) to `log` instead of stdout.
    pub fn with_log(mut self, log: impl FnMut(&str) + 'static) -> EchoServer<P> {
        self.log = Box::new(log);
        self
    }

    /// The backend, e.g. to ask its [`name`](Poller::name).
    pub fn poller(&self) -> &P {
        &self.poller
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// How many bytes the server holds, read and not yet written back, over
    /// all connections: what backpressure keeps bounded.
    pub fn bytes_waiting(&self) -> usize {
        self.connections.values().map(|c| c.pending.len()).sum()
    }

    // ANCHOR: run
    /// Runs the loop until a wait fails with something other than EINTR.
    /// It does not return otherwise: the default action of SIGINT (Ctrl-C)
    /// ends the process.
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            match self.turn(None) {
                Ok(_) => {}
                // A signal handler ran while we waited: wait again. (With
                // the default SIGINT action there is no handler: the process
                // just ends.)
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    (self.log)("wait interrupted (EINTR); waiting again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One turn of the loop: wait for readiness (at most `timeout`; `None`:
    /// no limit), then handle every event. Returns how many events came.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let mut events = std::mem::take(&mut self.events);
        self.poller.wait(&mut events, timeout)?;
        for event in &events {
            if event.token == LISTENER {
                self.accept_all()?;
            } else {
                self.on_connection_event(*event);
            }
        }
        let count = events.len();
        self.events = events;
        Ok(count)
    }
    // ANCHOR_END: run

    // ANCHOR: accept_loop
    /// Accepts every connection waiting in the listener's queue. The
    /// listener is non-blocking, so an empty queue is EAGAIN, not a hang.
    fn accept_all(&mut self) -> io::Result<()> {
        loop {
            let id = self.next_id;
            match trace::accept(&self.listener, &format!("conn-{id}")) {
                Ok(fd) => {
                    self.next_id += 1;
                    self.open(id, fd);
                }
                // The queue is empty: back to waiting.
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                // Out of descriptors (per process or system-wide) or memory.
                // The connection stays queued and the listener stays
                // readable, so still asking about it would wake us on every
                // wait with nothing we can do: a busy loop.
                Err(e @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)) => {
                    return self.out_of_descriptors(e);
                }
                // The client gave up before we accepted it, or a network
                // error was pending on the new connection: accept(2) says to
                // treat these like EAGAIN and go on. This one connection is
                // lost, the server is not.
                Err(
                    e @ (Errno::ECONNABORTED
                    | Errno::EPROTO
                    | Errno::EPERM
                    | Errno::ENETDOWN
                    | Errno::ENOPROTOOPT
                    | Errno::EHOSTDOWN
                    | Errno::ENONET
                    | Errno::EHOSTUNREACH
                    | Errno::EOPNOTSUPP
                    | Errno::ENETUNREACH),
                ) => {
                    (self.log)(&format!("accept: {}; going on", trace::errno(e)));
                }
                // EBADF, EINVAL, ENOTSOCK, ...: the listener itself is wrong.
                Err(e) => return Err(e.into()),
            }
        }
    }
    // ANCHOR_END: accept_loop

    // ANCHOR: out_of_descriptors
    /// accept failed with `e` (EMFILE, ENFILE, ENOBUFS or ENOMEM): the
    /// connection is still queued, and the listener still readable.
    ///
    /// With a spare descriptor ([`with_spare_descriptor`](Self::with_spare_descriptor))
    /// and EMFILE or ENFILE: close the spare, which frees one descriptor,
    /// accept, close that connection at once (its client sees end of file,
    /// not a hang), and open the spare again; repeat until the queue is
    /// empty. Without one: ask for nothing on the listener until a
    /// connection closes and frees a descriptor (the clients wait in the
    /// queue meanwhile). Either way, no busy loop. Chapter 10 shows both.
    fn out_of_descriptors(&mut self, e: Errno) -> io::Result<()> {
        if matches!(e, Errno::EMFILE | Errno::ENFILE) {
            while let Some(spare) = self.spare.take() {
                let _ = trace::close(spare);
                // Closed before the spare comes back: the spare needs the
                // number this connection was given.
                let accepted = trace::accept(&self.listener, "refused").map(trace::close);
                if accepted.is_ok() {
                    (self.log)(&format!(
                        "refused a connection: {}; closed it at once (spare descriptor)",
                        trace::errno(e)
                    ));
                }
                match trace::open("/dev/null", OFlag::O_RDONLY | OFlag::O_CLOEXEC, "spare") {
                    Ok(fd) => self.spare = Some(fd),
                    Err(err) => (self.log)(&format!("spare descriptor: {}", trace::errno(err))),
                }
                match accepted {
                    // One less in the queue: try the next one.
                    Ok(_) | Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                    // The queue is empty: nothing waits, nothing to pause.
                    Err(Errno::EAGAIN) => return Ok(()),
                    // Even a free descriptor did not help: pause below.
                    Err(_) => break,
                }
            }
        }
        (self.log)(&format!(
            "accept: {}; not accepting until a connection closes",
            trace::errno(e)
        ));
        self.poller
            .modify(self.listener.as_raw_fd(), LISTENER, Interest::NONE)?;
        self.accept_paused = true;
        Ok(())
    }
    // ANCHOR_END: out_of_descriptors

    /// Makes a new connection non-blocking and registers it for reading.
    /// If either fails (for select: a descriptor >= FD_SETSIZE), only this
    /// connection is refused.
    fn open(&mut self, id: usize, fd: OwnedFd) {
        let token = Token(id);
        let registered = set_nonblocking(&fd)
            .map_err(io::Error::from)
            .and_then(|()| self.poller.add(fd.as_raw_fd(), token, Interest::READABLE));
        match registered {
            Ok(()) => {
                self.connections.insert(
                    token,
                    Connection {
                        id,
                        fd,
                        pending: Vec::new(),
                        peer_done: false,
                        interest: Interest::READABLE,
                    },
                );
                (self.log)(&format!("conn-{id} opened"));
            }
            Err(e) => {
                let _ = trace::close(fd);
                (self.log)(&format!("conn-{id} refused: {e}"));
            }
        }
    }

    // ANCHOR: connection_event
    /// Reads, writes, and re-registers one connection after an event.
    fn on_connection_event(&mut self, event: Event) {
        let max = self.max_buffered;
        // An event may name a connection that an earlier event of the same
        // batch closed; tokens are never reused, so it is simply gone.
        let Some(conn) = self.connections.get_mut(&event.token) else {
            return;
        };
        let paused_before = conn.reading_paused(max);
        let outcome = match conn.on_event(event, max, &mut self.read_buf) {
            Err(reason) => Err(reason),
            // Everything the peer sent has been echoed: done.
            Ok(()) if conn.peer_done && conn.pending.is_empty() => Err("peer closed".into()),
            Ok(()) => {
                let (id, waiting, paused_now) =
                    (conn.id, conn.pending.len(), conn.reading_paused(max));
                if paused_now && !paused_before {
                    (self.log)(&format!(
                        "conn-{id} reading paused: {waiting} bytes wait to be sent"
                    ));
                } else if paused_before && !paused_now {
                    (self.log)(&format!("conn-{id} reading resumed"));
                }
                Self::update_interest(&mut self.poller, conn, event.token, max)
                    .map_err(|e| format!("poller: {e}"))
            }
        };
        if let Err(reason) = outcome {
            self.close(event.token, &reason);
        }
    }

    // ANCHOR: interest
    /// Asks the poller for what `conn` needs now, and nothing more: every
    /// condition asked for is level-triggered, so one the loop would not act
    /// on would wake it on every wait (a busy loop).
    /// - READABLE while the peer may still send and the buffer has room.
    ///   Not while paused: the unread data (and a later end of file, which
    ///   keeps the socket readable for good) would be reported on every
    ///   wait, and the loop would not read it.
    /// - WRITABLE only while bytes wait to be sent: an idle socket is
    ///   always writable.
    ///
    /// Hang-ups and errors are reported unasked (poll, epoll) or as
    /// readable (select); the loop acts on them in `on_event` by reading or
    /// writing, which fails, and closes.
    fn update_interest(
        poller: &mut P,
        conn: &mut Connection,
        token: Token,
        max_buffered: usize,
    ) -> io::Result<()> {
        let wanted = Interest {
            readable: !conn.peer_done && conn.pending.len() < max_buffered,
            writable: !conn.pending.is_empty(),
        };
        if wanted != conn.interest {
            poller.modify(conn.fd.as_raw_fd(), token, wanted)?;
            conn.interest = wanted;
        }
        Ok(())
    }
    // ANCHOR_END: interest
    // ANCHOR_END: connection_event

    // ANCHOR: close
    /// Unregisters and closes a connection, in that order: a backend may
    /// hand a registered number to the kernel on every wait, and a closed
    /// number can be given to the next accept.
    fn close(&mut self, token: Token, reason: &str) {
        let Some(conn) = self.connections.remove(&token) else {
            return;
        };
        if let Err(e) = self.poller.delete(conn.fd.as_raw_fd()) {
            (self.log)(&format!("conn-{} delete: {e}", conn.id));
        }
        // close(2) can report an error, but the descriptor is gone either
        // way; there is nothing to retry.
        let _ = trace::close(conn.fd);
        (self.log)(&format!("conn-{} closed: {reason}", conn.id));
        if self.accept_paused {
            match self
                .poller
                .modify(self.listener.as_raw_fd(), LISTENER, Interest::READABLE)
            {
                Ok(()) => {
                    self.accept_paused = false;
                    (self.log)("accepting again");
                }
                Err(e) => (self.log)(&format!("listener: {e}")),
            }
        }
    }
    // ANCHOR_END: close
}

impl Connection {
    /// Reading stops while the buffer is full (and after end of file).
    fn reading_paused(&self, max_buffered: usize) -> bool {
        !self.peer_done && self.pending.len() >= max_buffered
    }

    // ANCHOR: read_write
    /// Handles one event: read while there is data and room, then write
    /// back what is pending. `Err` means: close this connection.
    ///
    /// A read or write that moves fewer bytes than asked ends its loop. On
    /// a stream socket a read returns what is queued, up to the size asked
    /// for, so a short read has emptied the receive queue, and a short write
    /// has filled the send buffer (epoll(7), Q&A 9). The next call would
    /// only say EAGAIN; the next wait reports the socket again if more data
    /// arrives or room appears (every bit here is level-triggered).
    fn on_event(
        &mut self,
        event: Event,
        max_buffered: usize,
        buf: &mut [u8],
    ) -> Result<(), CloseReason> {
        // select reports a hang-up or an error as readable; poll and epoll
        // report them on their own. Either way a read tells which it is.
        let may_read = event.readable || event.hangup || event.error;
        let mut got_data = false;
        if may_read && !self.peer_done {
            // Read until end of file, EAGAIN, a short read, or a full
            // buffer (then stop: the rest waits in the kernel until the
            // peer reads its echo).
            while self.pending.len() < max_buffered {
                let room = (max_buffered - self.pending.len()).min(buf.len());
                match trace::read(&self.fd, &mut buf[..room]) {
                    Ok(0) => {
                        self.peer_done = true;
                        break;
                    }
                    Ok(n) => {
                        self.pending.extend_from_slice(&buf[..n]);
                        got_data = true;
                        if n < room {
                            break; // short read: the queue is empty
                        }
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(format!("read: {}", trace::errno(e))),
                }
            }
        }
        // Write when the socket said so, or at once when new data came in
        // (the send buffer usually has room, which saves a wait).
        let may_write = event.writable || event.hangup || event.error || got_data;
        if may_write {
            while !self.pending.is_empty() {
                // A write to a peer that is gone fails with EPIPE: Rust
                // programs start with SIGPIPE ignored, so it is an error
                // here, not a signal that ends the process.
                match trace::write(&self.fd, &self.pending) {
                    Ok(n) => {
                        let short = n < self.pending.len();
                        self.pending.drain(..n);
                        if short {
                            break; // short write: the send buffer is full
                        }
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(format!("write: {}", trace::errno(e))),
                }
            }
        }
        Ok(())
    }
    // ANCHOR_END: read_write
}
