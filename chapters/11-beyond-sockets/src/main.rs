//! `ch11-beyond-sockets`: pipes, eventfd, timerfd and signalfd in one
//! epoll loop, each with its read semantics and its classic mistake.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Result, bail};
use ch02_nonblocking_io::set_nonblocking;
use ch11_beyond_sockets::{OneLoop, Waker};
use clap::{CommandFactory, Parser, Subcommand};
use lab_kit::epoll::{self, Op, create1, ctl};
use lab_kit::names::{name_of, name_token};
use lab_kit::special;
use lab_kit::{fixtures, note, trace};
use nix::fcntl::FcntlArg;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::EfdFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::SfdFlags;
use nix::sys::timerfd::{ClockId, TimerFlags};
use nix::unistd::ForkResult;

const PACKAGE: &str = "ch11-beyond-sockets";

#[derive(Parser)]
#[command(name = PACKAGE, about = "pipes, eventfd, timerfd and signalfd in one epoll loop")]
struct Cli {
    #[command(subcommand)]
    scenario: Option<Scenario>,
}

#[derive(Subcommand)]
enum Scenario {
    /// A pipe in the loop: data, hang-up, a reader gone; the self-pipe waker and a full pipe
    Pipe,
    /// A counter: writes add up to one event and one read; EFD_SEMAPHORE; overflow; a waker thread
    Eventfd,
    /// One-shot and periodic timers: a read returns the expiration count; disarming; two clocks
    Timerfd,
    /// Block, then signalfd; forgetting to block (a child dies); two SIGUSR1 read as one
    Signalfd,
    /// A socket, an eventfd waker, a timer and a signalfd in one loop
    AllInOne,
}

fn main() -> std::process::ExitCode {
    lab_kit::cli::run_main(cli_main)
}

fn cli_main() -> Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(scenario) = cli.scenario else {
        lab_kit::transcript::print_scenarios(
            PACKAGE,
            "pipes, eventfd, timerfd and signalfd in one epoll loop",
            &Cli::command(),
        );
        return Ok(());
    };
    trace::enable();
    match scenario {
        Scenario::Pipe => pipe(),
        Scenario::Eventfd => eventfd(),
        Scenario::Timerfd => timerfd(),
        Scenario::Signalfd => signalfd(),
        Scenario::AllInOne => all_in_one(),
    }
}

/// A wait that only looks (timeout 0), with room for 8 events.
fn look(ep: &Epoll) -> Result<usize> {
    Ok(epoll::wait(
        ep,
        &mut [EpollEvent::empty(); 8],
        Some(Duration::ZERO),
    )?)
}

/// A wait for something the kernel will certainly report soon (a timer
/// that is due, a thread's write). The limit only keeps a broken kernel
/// or program from hanging here; it is never reached.
const SOON: Duration = Duration::from_secs(5);

fn wait_soon(ep: &Epoll) -> Result<usize> {
    let n = epoll::wait(ep, &mut [EpollEvent::empty(); 8], Some(SOON))?;
    if n == 0 {
        bail!("nothing was reported within {SOON:?}");
    }
    Ok(n)
}

/// Registers `fd` with `ep` for `flags`, its token named after the fd.
fn watch(ep: &Epoll, fd: &impl AsFd, token: u64, flags: EpollFlags) -> Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    name_token(token, &name_of(raw));
    ctl(&ep.0, Op::Add, raw, flags, token)?;
    Ok(())
}

// ---------------------------------------------------------------------------

// ANCHOR: pipe
fn pipe() -> Result<()> {
    note("A pipe has two descriptors: data goes in at w and comes out at r.");
    let (r, w) = fixtures::pipe("r", "w")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    watch(&ep, &r, 1, EpollFlags::EPOLLIN)?;
    watch(&ep, &w, 2, EpollFlags::EPOLLOUT)?;
    look(&ep)?;
    trace::write(&w, b"hello")?;
    look(&ep)?;
    note("The only writer goes away, with 5 bytes still in the pipe:");
    trace::close(w)?;
    look(&ep)?;
    let mut buf = [0u8; 64];
    trace::read(&r, &mut buf)?;
    look(&ep)?;
    trace::read(&r, &mut buf)?;
    look(&ep)?;
    note("EPOLLHUP is reported unasked and stays: close (or DEL) r.");
    trace::close(r)?;

    trace::blank();
    note("The other way round: the reader goes away.");
    let (r, w) = fixtures::pipe("r2", "w2")?;
    watch(&ep, &w, 3, EpollFlags::EPOLLOUT)?;
    trace::close(r)?;
    look(&ep)?;
    note("Rust ignores SIGPIPE, so the write fails instead of killing us:");
    trace::write(&w, b"x").ok();
    trace::close(w)?;

    trace::blank();
    self_pipe(&ep)
}
// ANCHOR_END: pipe

/// `fcntl(w, F_GETPIPE_SZ) -> 65536`: the pipe's capacity in bytes.
fn pipe_size(fd: &OwnedFd) -> Result<usize> {
    let r = nix::fcntl::fcntl(fd, FcntlArg::F_GETPIPE_SZ);
    trace::emit("fcntl", || {
        let shown = trace::result(&r, |n| n.to_string());
        format!(
            "fcntl({}, F_GETPIPE_SZ) -> {shown}",
            name_of(fd.as_raw_fd())
        )
    });
    Ok(r? as usize)
}

// ANCHOR: self_pipe
fn self_pipe(ep: &Epoll) -> Result<()> {
    note("The self-pipe trick: to wake a loop, write a byte into a pipe it watches.");
    let (r, w) = fixtures::pipe("wake-r", "wake-w")?;
    set_nonblocking(&r)?;
    set_nonblocking(&w)?;
    watch(ep, &r, 4, EpollFlags::EPOLLIN)?;
    trace::write(&w, b"!")?;
    look(ep)?;
    note("The loop drains the pipe (until EAGAIN), then sleeps again:");
    let mut buf = vec![0u8; 64 * 1024];
    trace::read(&r, &mut buf)?;
    trace::read(&r, &mut buf).ok();
    look(ep)?;

    trace::blank();
    note("The loop is busy; wake-ups pile up, one byte each:");
    let capacity = pipe_size(&w)?;
    let written = trace::quietly(|| {
        let mut bytes = 0usize;
        while let Ok(1) = trace::write(&w, b"!") {
            bytes += 1;
        }
        bytes
    });
    trace::tally("one-byte writes to wake-w before EAGAIN", written);
    trace::write(&w, b"!").ok();
    note("Full. A blocking w would have put the waking thread to sleep here,");
    note("and a waking thread must never block: make w non-blocking, and");
    note("treat EAGAIN as 'a wake-up is already pending'.");
    trace::read(&r, &mut buf)?;
    trace::read(&r, &mut buf).ok();
    if written != capacity {
        bail!("wrote {written} bytes into a pipe of {capacity}");
    }
    Ok(())
}
// ANCHOR_END: self_pipe

// ---------------------------------------------------------------------------

// ANCHOR: eventfd
fn eventfd() -> Result<()> {
    note("An eventfd is a 64-bit counter behind a descriptor.");
    let flags = EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC;
    let efd = special::eventfd(0, flags, "efd")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    watch(&ep, &efd, 1, EpollFlags::EPOLLIN)?;
    look(&ep)?;
    note("Three writes before the loop runs:");
    special::eventfd_write(&efd, 1)?;
    special::eventfd_write(&efd, 2)?;
    special::eventfd_write(&efd, 3)?;
    look(&ep)?;
    special::eventfd_read(&efd)?;
    look(&ep)?;
    special::eventfd_read(&efd).ok();
    note("Writing 0 adds nothing, so it wakes nobody:");
    special::eventfd_write(&efd, 0)?;
    look(&ep)?;

    trace::blank();
    note("EFD_SEMAPHORE: each read takes 1 off the counter.");
    let sem_flags = EfdFlags::EFD_SEMAPHORE | flags;
    let sem = special::eventfd(0, sem_flags, "sem")?;
    special::eventfd_write(&sem, 3)?;
    for _ in 0..4 {
        special::eventfd_read(&sem).ok();
    }

    trace::blank();
    note("The largest counter is MAX-1 (MAX = 2^64-1). Near it, no room to write:");
    ctl(
        &ep.0,
        Op::Mod,
        efd.as_raw_fd(),
        EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT,
        1,
    )?;
    look(&ep)?;
    special::eventfd_write(&efd, u64::MAX - 1)?;
    look(&ep)?;
    special::eventfd_write(&efd, 1).ok();
    special::eventfd_write(&efd, u64::MAX).ok();
    special::eventfd_read(&efd)?;
    ctl(&ep.0, Op::Mod, efd.as_raw_fd(), EpollFlags::EPOLLIN, 1)?;
    waker_thread()
}
// ANCHOR_END: eventfd

// ANCHOR: waker_thread
/// Another thread wakes the loop once the loop really sleeps in
/// epoll_wait; only this (the loop's) thread prints.
fn waker_thread() -> Result<()> {
    trace::blank();
    note("A waker: another thread writes, the loop wakes, reads, sleeps again.");
    let waker = std::sync::Arc::new(Waker::new("waker")?);
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep2")?;
    watch(&ep, &*waker, 2, EpollFlags::EPOLLIN)?;
    let loop_thread = nix::unistd::gettid();
    let theirs = std::sync::Arc::clone(&waker);
    let helper = std::thread::spawn(move || {
        let asleep = lab_kit::proc::wait_until_asleep(loop_thread, SOON, |a| a.is_epoll_wait());
        // Woken in any case, so the loop never waits for nothing.
        (asleep.is_some(), theirs.wake())
    });
    wait_soon(&ep)?;
    let (saw_it_asleep, woke) = helper.join().expect("the waker thread panicked");
    trace::view("thread", "waker thread", || {
        format!(
            "saw the loop asleep in epoll_wait, then wake() => {}",
            trace::result(&woke, |_| "Ok".to_string())
        )
    });
    if !saw_it_asleep {
        bail!("the loop thread was never seen asleep in epoll_wait");
    }
    waker.drain()?;
    look(&ep)?;
    Ok(())
}
// ANCHOR_END: waker_thread

// ---------------------------------------------------------------------------

// ANCHOR: timerfd
fn timerfd() -> Result<()> {
    let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
    let timer = special::timerfd_create(ClockId::CLOCK_MONOTONIC, flags, "timer")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    watch(&ep, &timer, 1, EpollFlags::EPOLLIN)?;
    note("A new timer is disarmed: nothing to read.");
    special::timerfd_read(&timer).ok();
    note("A one-shot timer, one hour away, then disarmed with a zero value:");
    special::timerfd_settime(&timer, Duration::from_secs(3600), Duration::ZERO)?;
    look(&ep)?;
    special::timerfd_gettime(&timer)?;
    special::timerfd_settime(&timer, Duration::ZERO, Duration::ZERO)?;
    special::timerfd_gettime(&timer)?;

    trace::blank();
    note("A one-shot timer, 20ms away; the loop sleeps until it expires:");
    special::timerfd_settime(&timer, Duration::from_millis(20), Duration::ZERO)?;
    wait_soon(&ep)?;
    special::timerfd_read(&timer)?;
    look(&ep)?;
    special::timerfd_gettime(&timer)?;

    trace::blank();
    note("A periodic timer (every 10s) whose first expiration was 20s ago:");
    note("what a loop sees after being busy for 20s. Expired at -20s, -10s, 0s.");
    let period = Duration::from_secs(10);
    special::timerfd_settime_abs(
        &timer,
        ClockId::CLOCK_MONOTONIC,
        Duration::from_secs(20),
        period,
    )?;
    wait_soon(&ep)?;
    special::timerfd_read(&timer)?;
    look(&ep)?;
    special::timerfd_gettime(&timer)?;
    special::timerfd_settime(&timer, Duration::ZERO, Duration::ZERO)?;

    trace::blank();
    note("Absolute times belong to a clock. CLOCK_REALTIME is the date (it can be");
    note("set); CLOCK_MONOTONIC counts from boot (it never jumps).");
    let wall = special::timerfd_create(ClockId::CLOCK_REALTIME, flags, "wall-timer")?;
    watch(&ep, &wall, 2, EpollFlags::EPOLLIN)?;
    special::timerfd_settime_abs(
        &wall,
        ClockId::CLOCK_REALTIME,
        Duration::from_secs(20),
        period,
    )?;
    wait_soon(&ep)?;
    special::timerfd_read(&wall)?;
    special::timerfd_settime(&wall, Duration::ZERO, Duration::ZERO)?;
    note("Mistake: a date given to a CLOCK_MONOTONIC timer is decades away:");
    special::timerfd_settime_abs(
        &timer,
        ClockId::CLOCK_REALTIME,
        Duration::ZERO,
        Duration::ZERO,
    )?;
    look(&ep)?;
    special::timerfd_gettime(&timer)?;
    note("Mistake: a time since boot given to a CLOCK_REALTIME timer is in 1970:");
    special::timerfd_settime_abs(
        &wall,
        ClockId::CLOCK_MONOTONIC,
        Duration::ZERO,
        Duration::ZERO,
    )?;
    wait_soon(&ep)?;
    special::timerfd_read(&wall)?;
    Ok(())
}
// ANCHOR_END: timerfd

// ---------------------------------------------------------------------------

// ANCHOR: forgot_to_block
/// A child process makes a signalfd for SIGUSR1 without blocking SIGUSR1
/// first, and sends itself one.
fn forgot_to_block() -> Result<()> {
    note("In a child process: a signalfd for SIGUSR1, without blocking SIGUSR1.");
    let mut usr1 = SigSet::empty();
    usr1.add(Signal::SIGUSR1);
    // SAFETY: this process has one thread here (no other thread could hold
    // a lock the child needs), and the child only makes system calls and
    // prints before it exits.
    match unsafe { special::fork() }? {
        ForkResult::Child => {
            let survived = special::signalfd(&usr1, SfdFlags::SFD_CLOEXEC, "child's sigfd")
                .and_then(|_| special::kill_self(Signal::SIGUSR1));
            // Only reached if the signal did not end the child.
            // SAFETY: _exit ends the child at once, without running the
            // parent's exit handlers twice.
            unsafe { nix::libc::_exit(if survived.is_ok() { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            special::waitpid(child)?;
            note("Where is the child's kill(self, SIGUSR1) line? SIGUSR1 was not");
            note("blocked, so its default action (end the process) ran before kill");
            note("returned: waitpid says how the child ended. A signalfd only");
            note("reports signals that stay pending, and only blocked ones do.");
        }
    }
    Ok(())
}
// ANCHOR_END: forgot_to_block

// ANCHOR: signalfd
fn signalfd() -> Result<()> {
    forgot_to_block()?;

    trace::blank();
    note("Now in order: block the signals first, then make the signalfd.");
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGUSR1);
    special::sigprocmask(SigmaskHow::SIG_BLOCK, &mask)?;
    let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
    let sigfd = special::signalfd(&mask, flags, "sigfd")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    watch(&ep, &sigfd, 1, EpollFlags::EPOLLIN)?;
    look(&ep)?;
    note("Two SIGUSR1 before the loop reads:");
    special::kill_self(Signal::SIGUSR1)?;
    special::kill_self(Signal::SIGUSR1)?;
    look(&ep)?;
    special::signalfd_read(&sigfd)?;
    special::signalfd_read(&sigfd)?; // EAGAIN is Ok(None)
    look(&ep)?;
    note("Ctrl-C sends SIGINT: blocked, it is one more thing to read.");
    special::kill_self(Signal::SIGINT)?;
    look(&ep)?;
    special::signalfd_read(&sigfd)?;
    special::signalfd_read(&sigfd)?;
    Ok(())
}
// ANCHOR_END: signalfd

// ---------------------------------------------------------------------------

/// Prints what one turn of the loop handled: `[loop] => echoed 4 bytes`.
fn report(handled: &ch11_beyond_sockets::Handled, stopping: bool) {
    trace::view("loop", "loop", || {
        let mut parts = Vec::new();
        if handled.echoed > 0 {
            parts.push(format!("echoed {} bytes", handled.echoed));
        }
        if handled.wakes > 0 {
            parts.push(format!("woken {} time(s)", handled.wakes));
        }
        if handled.expirations > 0 {
            parts.push(format!("timer expired {} time(s)", handled.expirations));
        }
        for signal in &handled.signals {
            parts.push(format!("got {}", signal.as_str()));
        }
        if stopping {
            parts.push("stopping".to_string());
        }
        if parts.is_empty() {
            parts.push("nothing".to_string());
        }
        format!("=> {}", parts.join(", "))
    });
}

// ANCHOR: all_in_one
fn all_in_one() -> Result<()> {
    let (peer, conn) = fixtures::socketpair("peer", "conn")?;
    let mut one = OneLoop::new(conn)?;
    let handled = one.turn(Some(Duration::ZERO))?;
    report(&handled, one.stopping);

    trace::blank();
    note("1. The peer sends: the socket wakes the loop.");
    trace::write(&peer, b"ping")?;
    let handled = one.turn(Some(SOON))?;
    report(&handled, one.stopping);
    trace::read(&peer, &mut [0u8; 64])?;

    trace::blank();
    note("2. Another thread wakes the loop while it sleeps in epoll_wait.");
    let loop_thread = nix::unistd::gettid();
    let waker = std::sync::Arc::clone(&one.waker);
    let helper = std::thread::spawn(move || {
        let asleep = lab_kit::proc::wait_until_asleep(loop_thread, SOON, |a| a.is_epoll_wait());
        (asleep.is_some(), waker.wake())
    });
    let handled = one.turn(Some(SOON))?;
    let (saw_it_asleep, woke) = helper.join().expect("the waker thread panicked");
    trace::view("thread", "waker thread", || {
        format!(
            "saw the loop asleep in epoll_wait, then wake() => {}",
            trace::result(&woke, |_| "Ok".to_string())
        )
    });
    report(&handled, one.stopping);
    if !saw_it_asleep {
        bail!("the loop thread was never seen asleep in epoll_wait");
    }

    trace::blank();
    note("3. A deadline: a one-shot timer, 20ms away.");
    special::timerfd_settime(&one.timer, Duration::from_millis(20), Duration::ZERO)?;
    let handled = one.turn(Some(SOON))?;
    report(&handled, one.stopping);

    trace::blank();
    note("4. All at once: a due timer, data, a wake-up and SIGTERM, then one wait.");
    special::timerfd_settime_abs(
        &one.timer,
        ClockId::CLOCK_MONOTONIC,
        Duration::ZERO,
        Duration::ZERO,
    )?;
    timer_is_due(&one)?;
    trace::write(&peer, b"bye")?;
    one.waker.wake()?;
    special::kill_self(Signal::SIGTERM)?;
    let handled = one.turn(Some(SOON))?;
    report(&handled, one.stopping);
    if !one.stopping {
        bail!("SIGTERM was not seen");
    }
    Ok(())
}
// ANCHOR_END: all_in_one

/// Waits until the timer is readable (a poll of the timer alone), so that
/// the next wait is sure to see it, whatever the kernel does with a time
/// already passed (the expiry may run from the timer interrupt, a moment
/// after timerfd_settime returns).
fn timer_is_due(one: &OneLoop) -> Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(one.timer.as_fd(), PollFlags::POLLIN)];
    let n = trace::poll(&mut fds, PollTimeout::from(5000u16))?;
    if n != 1 {
        bail!("the timer was not due within 5 s");
    }
    Ok(())
}
