//! The reactor's life, one scenario each, every system call traced.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{Context, Result};
use ch12_reactor::reactor::{Clock, Interest, Next, Reactor, Ready, Token};
use lab_kit::epoll::show_interest_list;
use lab_kit::trace::{self, emit, result, view};
use lab_kit::{fixtures, note};
use nix::sys::signal::{Signal, kill};
use nix::unistd::getpid;

/// A socket that says so when it closes: the reactor drops a handler after
/// `EPOLL_CTL_DEL`, and the `close` line shows that order.
struct Traced(Option<OwnedFd>);

impl Traced {
    fn new(stream: UnixStream) -> Result<Traced> {
        ch02_nonblocking_io::set_nonblocking(&stream)?;
        Ok(Traced(Some(OwnedFd::from(stream))))
    }
}

impl AsFd for Traced {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_ref().expect("open until dropped").as_fd()
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            let _ = trace::close(fd);
        }
    }
}

/// Reads 64 bytes at a time until EAGAIN (or end of file).
fn drain(fd: &Traced) {
    let mut buf = [0u8; 64];
    while let Ok(n) = trace::read(fd, &mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// A handler that drains its socket: what every scenario's sockets get.
fn draining<S>(_: &mut Reactor<S>, _: Token, _: Ready, fd: &Traced) -> Next {
    drain(fd);
    Next::Done
}

fn slot(token: Token) -> String {
    format!("slot {}, generation {}", token.index(), token.generation())
}

// ANCHOR: registration
pub fn registration() -> Result<()> {
    note("A reactor: one epoll instance, and a slab of handlers indexed by token.");
    let mut reactor = Reactor::new(())?;
    let (peer_a, a) = fixtures::socketpair("peer-a", "conn-a")?;
    let (peer_b, b) = fixtures::socketpair("peer-b", "conn-b")?;
    let (a, b) = (Traced::new(a)?, Traced::new(b)?);
    note("conn-a's handler closes conn-b and registers a newcomer, conn-c:");
    let peer_c_slot = std::rc::Rc::new(std::cell::RefCell::new(None));
    let keep_peer_c = peer_c_slot.clone();
    let b_token = std::rc::Rc::new(std::cell::Cell::new(None::<Token>));
    let b_token_seen = b_token.clone();
    let a_token =
        reactor.register_fn("conn-a", a, Interest::Read, move |r, _, _, fd: &Traced| {
            drain(fd);
            if let Some(b) = b_token_seen.take() {
                r.deregister(b);
                let (peer_c, c) = fixtures::socketpair("peer-c", "conn-c").expect("socketpair");
                let c = Traced::new(c).expect("fcntl");
                let c_token = r
                    .register_fn("conn-c", c, Interest::Read, draining)
                    .expect("register");
                view("slab", "slab", || format!("conn-c => {}", slot(c_token)));
                *keep_peer_c.borrow_mut() = Some(peer_c);
            }
            Next::Done
        })?;
    let token = reactor.register_fn("conn-b", b, Interest::Read, draining)?;
    b_token.set(Some(token));
    view("slab", "slab", || format!("conn-a => {}", slot(a_token)));
    view("slab", "slab", || format!("conn-b => {}", slot(token)));
    show_interest_list_of(&reactor);

    trace::blank();
    note("Both peers write; one wait returns both events, conn-a's first (it was");
    note("ready first). Its handler frees conn-b's slot, and conn-c gets that");
    note("slot with the next generation: a new token. conn-b's event, further down");
    note("the same batch, carries the old token, and finds nobody.");
    trace::write(&peer_a, b"a")?;
    trace::write(&peer_b, b"b")?;
    reactor.run_once(Some(Duration::ZERO))?;
    show_interest_list_of(&reactor);
    note("With the token reused as is (a plain fd or slot number), conn-b's");
    note("event would have run conn-c's handler: a read on a socket with no data,");
    note("or worse, a reply to the wrong client (chapter 10).");
    drop(peer_c_slot);
    Ok(())
}
// ANCHOR_END: registration

fn show_interest_list_of<S>(reactor: &Reactor<S>) {
    let _ = show_interest_list(reactor.epoll());
}

// ANCHOR: timer
pub fn timer() -> Result<()> {
    note("The clock is one the scenario moves by hand, so the timeouts below are");
    note("the same on every run; `serve` uses the monotonic clock.");
    let mut reactor = Reactor::with_clock((), Clock::manual())?;
    let (peer, conn) = fixtures::socketpair("peer", "conn")?;
    reactor.register_fn("conn", Traced::new(conn)?, Interest::Read, draining)?;
    note("A timer every 100 ms (as Redis's serverCron runs 10 times a second):");
    let tick = reactor.add_timer("tick", Duration::from_millis(100), |_| {
        Some(Duration::from_millis(100))
    });
    note("The nearest deadline is the wait's timeout:");
    trace::write(&peer, b"1")?;
    reactor.run_once(None)?;
    reactor.clock().advance(Duration::from_millis(60));
    trace::write(&peer, b"2")?;
    note("60 ms later, 40 ms are left:");
    reactor.run_once(None)?;
    reactor.clock().advance(Duration::from_millis(40));
    trace::write(&peer, b"3")?;
    note("At the deadline the timeout is 0. The socket's handler runs first, then");
    note("the timer (ae.c's order: file events, then time events):");
    reactor.run_once(None)?;
    note("It asked to run again in 100 ms:");
    trace::write(&peer, b"4")?;
    reactor.run_once(None)?;
    note("Cancelled, no timer is left: a wait would block until an event. Look only:");
    reactor.cancel_timer(tick);
    reactor.run_once(Some(Duration::ZERO))?;
    Ok(())
}
// ANCHOR_END: timer

// ANCHOR: waker
pub fn waker() -> Result<()> {
    let mut reactor = Reactor::new(())?;
    let waker = reactor.waker(|_, _| {})?;
    let me = nix::unistd::gettid();
    note("Another thread waits until this one sleeps in epoll_wait (no timeout),");
    note("then calls waker.wake() once (its calls are not printed):");
    let theirs = waker.clone();
    let helper = std::thread::spawn(move || {
        let limit = Duration::from_secs(5);
        lab_kit::proc::wait_until_asleep(me, limit, |a| a.is_epoll_wait()).map(|_| theirs.wake())
    });
    reactor.run_once(None)?;
    match helper.join() {
        Ok(Some(Ok(()))) => {}
        _ => anyhow::bail!("the helper thread never saw the reactor asleep in epoll_wait"),
    }
    trace::blank();
    note("Three wakes before the reactor looks: the counter adds them up, and");
    note("they cost one event and one read:");
    for _ in 0..3 {
        waker.wake()?;
    }
    reactor.run_once(Some(Duration::ZERO))?;
    reactor.run_once(Some(Duration::ZERO))?;
    Ok(())
}
// ANCHOR_END: waker

// ANCHOR: shutdown
pub fn shutdown() -> Result<()> {
    let mut reactor = Reactor::new(())?;
    let (_peer, conn) = fixtures::socketpair("peer", "conn")?;
    reactor.register_fn("conn", Traced::new(conn)?, Interest::Read, draining)?;
    note("Block SIGINT and SIGTERM, and read them from a signalfd instead:");
    reactor.on_signals(&[Signal::SIGINT, Signal::SIGTERM], |reactor, signal| {
        note(&format!("{}: stop after this round.", signal.as_str()));
        reactor.stop();
    })?;
    note("`kill -TERM` from outside, here from the process itself. The signal is");
    note("blocked, so it waits, pending, and the signalfd becomes readable:");
    let r = kill(getpid(), Signal::SIGTERM);
    emit("kill", || {
        format!("kill(self, SIGTERM) -> {}", result(&r, |_| "0".into()))
    });
    r.context("kill")?;
    note("run() loops until stop(), then deregisters everything, each handler");
    note("dropped after its EPOLL_CTL_DEL:");
    reactor.run()?;
    Ok(())
}
// ANCHOR_END: shutdown

// ANCHOR: budget
pub fn budget() -> Result<()> {
    let mut reactor = Reactor::new(())?;
    let (peer_flood, flood) = fixtures::socketpair("peer-flood", "flood")?;
    let (peer_quiet, quiet) = fixtures::socketpair("peer-quiet", "quiet")?;
    note("Each turn a handler reads at most 2 x 4 KiB; with more possibly queued it");
    note("returns Next::Again, and the reactor runs it next round, event or not.");
    let budgeted = |_: &mut Reactor<()>, _: Token, _: Ready, fd: &Traced| {
        let mut buf = [0u8; 4096];
        for _ in 0..2 {
            match trace::read(fd, &mut buf) {
                Ok(n) if n == buf.len() => continue,
                _ => return Next::Done, // EAGAIN, a short read, or the end.
            }
        }
        Next::Again
    };
    reactor.register_fn("flood", Traced::new(flood)?, Interest::Read, budgeted)?;
    reactor.register_fn("quiet", Traced::new(quiet)?, Interest::Read, budgeted)?;
    note("The flood sends 16 KiB, then the quiet peer 4 bytes:");
    let flood_bytes = vec![b'x'; 16 * 1024];
    trace::write(&peer_flood, &flood_bytes)?;
    trace::write(&peer_quiet, b"ping")?;
    reactor.run_once(None)?;
    note("quiet was served in the first round. Under EPOLLET no new event comes");
    note("for flood's queued bytes, so the next wait only looks (timeout 0):");
    reactor.run_once(None)?;
    reactor.run_once(None)?;
    note("flood is drained. Nobody is re-queued; a wait would now block. Look only:");
    reactor.run_once(Some(Duration::ZERO))?;
    Ok(())
}
// ANCHOR_END: budget
