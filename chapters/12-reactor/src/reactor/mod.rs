//! A small reactor: one epoll instance, a handler per token, timers that
//! feed the wait's timeout, a waker for other threads, and shutdown on
//! SIGINT/SIGTERM through a signalfd.
//!
//! Shaped after mio (`Poll`, `Registry`, `Token`, `Waker`) and Redis's
//! `ae.c` (file events and time events in one loop: wait with the nearest
//! deadline as timeout, run the ready handlers, then the due timers).
//!
//! **Edge-triggered, deliberately.** Every descriptor is registered once
//! with `EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET` and never modified: no
//! `epoll_ctl` per request, not even to start or stop watching for write
//! space (a level-triggered loop must MOD EPOLLOUT in while output is
//! pending and out again after, and MOD EPOLLIN out while it pauses a
//! client, or the pause spins; chapter 06). The price is chapter 07's rule:
//! a handler must read until the socket is drained, or else say so. Here
//! a handler returns [`Next::Again`] when it stops early (its budget is
//! spent, so a flooding connection cannot starve the others); the reactor
//! then calls it again in the next round *without* an event, because under
//! edge triggering none would ever come for the bytes already queued.

pub mod signals;
pub mod slab;
pub mod timers;
pub mod waker;

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lab_kit::epoll::{self, Op};
use lab_kit::names::{name_token, token_name};
use lab_kit::trace::{self, view};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use slab::Slab;
pub use slab::Token;
pub use timers::TimerId;
use timers::Timers;

/// What an event (or a re-queue) tells a handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// EPOLLIN: data (or end of file) to read.
    pub readable: bool,
    /// EPOLLOUT: room to write.
    pub writable: bool,
    /// EPOLLRDHUP, EPOLLHUP or EPOLLERR: the peer is gone or shut its side.
    pub closed: bool,
    /// No event: the handler said [`Next::Again`] last time.
    pub requeued: bool,
}

impl Ready {
    fn from_flags(flags: EpollFlags) -> Ready {
        Ready {
            readable: flags.contains(EpollFlags::EPOLLIN),
            writable: flags.contains(EpollFlags::EPOLLOUT),
            closed: flags
                .intersects(EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR),
            requeued: false,
        }
    }
}

/// What a handler tells the reactor when it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// It went until EAGAIN (or a short read, or it paused on purpose):
    /// the next edge will call it.
    Done,
    /// It stopped before EAGAIN (its budget ran out): call it again in the
    /// next round, event or not. Under EPOLLET no new event comes for bytes
    /// that are already queued.
    Again,
}

/// The code that runs for one registration.
pub trait Handler<S> {
    /// Called with the reactor (to register, deregister, add timers, reach
    /// the shared state), the handler's own token, and what is ready.
    fn ready(&mut self, reactor: &mut Reactor<S>, token: Token, ready: Ready) -> Next;
}

/// A descriptor and a closure that handles it (see [`Reactor::register_fn`]).
pub struct Owned<F, H> {
    fd: F,
    handler: H,
}

impl<S, F, H> Handler<S> for Owned<F, H>
where
    F: AsFd,
    H: FnMut(&mut Reactor<S>, Token, Ready, &F) -> Next,
{
    fn ready(&mut self, reactor: &mut Reactor<S>, token: Token, ready: Ready) -> Next {
        (self.handler)(reactor, token, ready, &self.fd)
    }
}

impl<F: AsFd, H> AsFd for Owned<F, H> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A timer's code: returns `Some(period)` to run again after `period`
/// (like an `ae.c` time event returning its next delay), `None` to end.
pub type TimerFn<S> = Box<dyn FnMut(&mut Reactor<S>) -> Option<Duration>>;

struct Entry<S> {
    fd: RawFd,
    /// `None` only while the handler runs (it is taken out, so it can be
    /// given `&mut Reactor`).
    handler: Option<Box<dyn Handler<S>>>,
    /// The round it last ran in, so a re-queued handler that also got an
    /// event runs once per round.
    round: u64,
}

struct Timer<S> {
    name: &'static str,
    run: TimerFn<S>,
}

/// Where "now" comes from: the monotonic clock, or one a scenario moves by
/// hand so that its transcript shows the same timeouts on every run.
#[derive(Clone)]
pub enum Clock {
    /// `CLOCK_MONOTONIC` (what `Instant` reads), counted from the start.
    Monotonic(Instant),
    /// Milliseconds that change only through [`Clock::advance`].
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock at 0.
    pub fn manual() -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(0)))
    }

    /// Time since the clock started.
    pub fn now(&self) -> Duration {
        match self {
            Clock::Monotonic(start) => start.elapsed(),
            Clock::Manual(ms) => Duration::from_millis(ms.load(Ordering::Relaxed)),
        }
    }

    /// Moves a manual clock forward (a monotonic one moves by itself).
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(ms) = self {
            ms.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
            view("clock", "clock", || {
                format!("+{}ms => {}ms", by.as_millis(), ms.load(Ordering::Relaxed))
            });
        }
    }
}

/// What one descriptor is watched for. Always with EPOLLRDHUP and EPOLLET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// EPOLLIN.
    Read,
    /// EPOLLIN|EPOLLOUT: under EPOLLET, EPOLLOUT fires only when write
    /// space comes back after a write found the buffer full (TCP), so it
    /// costs nothing while there is nothing to write.
    ReadWrite,
}

impl Interest {
    fn flags(self) -> EpollFlags {
        let base = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET;
        match self {
            Interest::Read => base,
            Interest::ReadWrite => base | EpollFlags::EPOLLOUT,
        }
    }
}

/// How many events one `epoll_wait` can return; more stay queued in the
/// kernel for the next wait (in order: chapter 05's rotation).
pub const MAX_EVENTS: usize = 256;

/// The reactor: the epoll instance, the registrations, the timers, and the
/// state `S` that handlers share (the server's database).
pub struct Reactor<S> {
    epoll: Epoll,
    slab: Slab<Entry<S>>,
    timers: Timers<Timer<S>>,
    /// Handlers that said [`Next::Again`], for the next round.
    requeued: Vec<Token>,
    /// The previous round's `requeued`, being run (kept to reuse its memory).
    running: Vec<Token>,
    events: Vec<EpollEvent>,
    clock: Clock,
    round: u64,
    stopped: bool,
    /// The state every handler reaches through `reactor.state`.
    pub state: S,
}

impl<S> Reactor<S> {
    /// A reactor on a new epoll instance (`ep`), on the monotonic clock.
    pub fn new(state: S) -> nix::Result<Reactor<S>> {
        Reactor::with_clock(state, Clock::Monotonic(Instant::now()))
    }

    /// A reactor whose timers read `clock`.
    pub fn with_clock(state: S, clock: Clock) -> nix::Result<Reactor<S>> {
        let epoll = epoll::create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
        Ok(Reactor {
            epoll,
            slab: Slab::default(),
            timers: Timers::default(),
            requeued: Vec::new(),
            running: Vec::new(),
            events: vec![EpollEvent::empty(); MAX_EVENTS],
            clock,
            round: 0,
            stopped: false,
            state,
        })
    }

    // ANCHOR: register
    /// Watches the descriptor `handler` owns for `interest`; its events run
    /// `handler`. `name` is the token's name in a transcript. When it is deregistered, the reactor drops the handler
    /// after `EPOLL_CTL_DEL`, so the registration is gone before the
    /// descriptor closes (chapter 10).
    pub fn register<H>(&mut self, name: &str, handler: H, interest: Interest) -> nix::Result<Token>
    where
        H: Handler<S> + AsFd + 'static,
    {
        let fd = handler.as_fd().as_raw_fd();
        let token = self.slab.insert(Entry {
            fd,
            handler: Some(Box::new(handler)),
            round: 0,
        });
        if trace::printing() {
            name_token(token.0, name);
        }
        if let Err(e) = epoll::ctl(&self.epoll.0, Op::Add, fd, interest.flags(), token.0) {
            self.slab.remove(token);
            return Err(e);
        }
        Ok(token)
    }
    // ANCHOR_END: register

    /// [`register`](Self::register) for a descriptor `fd` and a closure
    /// that gets it with each call: `handler(reactor, token, ready, &fd)`.
    pub fn register_fn<F, H>(
        &mut self,
        name: &str,
        fd: F,
        interest: Interest,
        handler: H,
    ) -> nix::Result<Token>
    where
        F: AsFd + 'static,
        H: FnMut(&mut Reactor<S>, Token, Ready, &F) -> Next + 'static,
    {
        self.register(name, Owned { fd, handler }, interest)
    }

    /// Changes what `token`'s descriptor is watched for (`EPOLL_CTL_MOD`).
    pub fn reregister(&mut self, token: Token, interest: Interest) -> nix::Result<()> {
        let fd = self.slab.get_mut(token).ok_or(Errno::ENOENT)?.fd;
        epoll::ctl(&self.epoll.0, Op::Mod, fd, interest.flags(), token.0)
    }

    /// Stops watching `token` (`EPOLL_CTL_DEL`) and frees its slot with a
    /// new generation. Its handler is dropped (closing what it owns) now,
    /// or, if it is the handler running, as soon as it returns.
    pub fn deregister(&mut self, token: Token) {
        let Some(entry) = self.slab.remove(token) else {
            return;
        };
        // ENOENT/EBADF are not expected (the entry is removed only here);
        // if one came, the registration is gone anyway.
        let _ = epoll::ctl(&self.epoll.0, Op::Del, entry.fd, EpollFlags::empty(), 0);
        drop(entry.handler);
    }

    /// Runs `token`'s handler in the next round without an event.
    pub fn requeue(&mut self, token: Token) {
        self.requeued.push(token);
    }

    /// Runs `run` once `after` has passed (and again every period it
    /// returns). `name` is what a transcript shows when it fires.
    pub fn add_timer(
        &mut self,
        name: &'static str,
        after: Duration,
        run: impl FnMut(&mut Reactor<S>) -> Option<Duration> + 'static,
    ) -> TimerId {
        let deadline = self.clock.now() + after;
        let run: TimerFn<S> = Box::new(run);
        self.timers.insert(deadline, Timer { name, run })
    }

    /// Cancels a timer; false if it already ended or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id).is_some()
    }

    /// The epoll instance (to show its interest list).
    pub fn epoll(&self) -> &Epoll {
        &self.epoll
    }

    /// The reactor's clock (the time since it started).
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// The clock itself (a scenario moves a manual one).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Ends [`run`](Self::run) after the current round.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// How many registrations are live.
    pub fn registrations(&self) -> usize {
        self.slab.len()
    }

    /// Runs rounds until [`stop`](Self::stop), then deregisters everything.
    pub fn run(&mut self) -> nix::Result<()> {
        while !self.stopped {
            self.run_once(None)?;
        }
        self.close_all();
        Ok(())
    }

    /// Deregisters every registration (their handlers drop and close).
    pub fn close_all(&mut self) {
        let tokens = self.slab.tokens();
        view("reactor", "reactor", || {
            format!("close all => {} registrations", tokens.len())
        });
        for token in tokens {
            self.deregister(token);
        }
    }

    // ANCHOR: run_once
    /// One round, as `ae.c`'s `aeProcessEvents`: wait (for at most the time
    /// to the nearest timer, or `limit`, or not at all if a handler is
    /// re-queued), run the handler of each event, then the re-queued ones,
    /// then the due timers. Returns how many events the wait delivered.
    pub fn run_once(&mut self, limit: Option<Duration>) -> nix::Result<usize> {
        self.round += 1;
        std::mem::swap(&mut self.requeued, &mut self.running);
        let mut timeout = match self.timers.next_deadline() {
            Some(deadline) => Some(timers::wait_timeout(deadline, self.clock.now())),
            None => None,
        };
        if let Some(limit) = limit {
            timeout = Some(timeout.map_or(limit, |t| t.min(limit)));
        }
        if !self.running.is_empty() {
            // Someone has work left without an event to come: only look.
            timeout = Some(Duration::ZERO);
        }
        let n = match epoll::wait(&self.epoll, &mut self.events, timeout) {
            Ok(n) => n,
            // A signal handler ran (no SA_RESTART for epoll_wait, signal(7)):
            // nothing happened to our descriptors; the round ends early.
            Err(Errno::EINTR) => 0,
            Err(e) => return Err(e),
        };
        for i in 0..n {
            let event = self.events[i];
            self.dispatch(Token(event.data()), Ready::from_flags(event.events()));
        }
        let running = std::mem::take(&mut self.running);
        for &token in &running {
            let requeued = Ready {
                requeued: true,
                ..Ready::default()
            };
            self.dispatch(token, requeued);
        }
        self.running = running;
        self.running.clear();
        self.run_due_timers();
        Ok(n)
    }
    // ANCHOR_END: run_once

    // ANCHOR: dispatch
    fn dispatch(&mut self, token: Token, ready: Ready) {
        let round = self.round;
        let Some(entry) = self.slab.get_mut(token) else {
            // Its slot was freed earlier in this round (the generation
            // differs): the event is about a descriptor that is gone.
            view("reactor", "reactor", || {
                format!("event for {} => stale token, skipped", token_name(token.0))
            });
            return;
        };
        if ready.requeued && entry.round == round {
            return; // An event already ran it in this round.
        }
        entry.round = round;
        let Some(mut handler) = entry.handler.take() else {
            return;
        };
        if ready.requeued {
            view("reactor", "reactor", || {
                format!(
                    "{} re-queued => handler runs without an event",
                    token_name(token.0)
                )
            });
        }
        let next = handler.ready(self, token, ready);
        match self.slab.get_mut(token) {
            Some(entry) => {
                entry.handler = Some(handler);
                if next == Next::Again {
                    self.requeued.push(token);
                }
            }
            // It deregistered itself: the DEL is done, so dropping it (and
            // closing its descriptor) is safe now.
            None => drop(handler),
        }
    }
    // ANCHOR_END: dispatch

    fn run_due_timers(&mut self) {
        let now = self.clock.now();
        while let Some((id, mut timer)) = self.timers.pop_due(now) {
            view("reactor", "reactor", || {
                format!("timer {} => fired", timer.name)
            });
            if let Some(period) = (timer.run)(self) {
                // At least 1 ms, or a zero period would be due again at
                // once and this loop would never end.
                let deadline = self.clock.now() + period.max(Duration::from_millis(1));
                self.timers.insert_with_id(id, deadline, timer);
            }
        }
    }
}
