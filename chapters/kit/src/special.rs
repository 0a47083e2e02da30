//! Traced calls on the descriptors that are not sockets: eventfd, timerfd
//! and signalfd, plus the signal calls that go with signalfd (`sigprocmask`,
//! `kill`, `fork`, `waitpid`).
//!
//! Like [`crate::trace`], each wrapper makes the real call (through nix's
//! `sys::eventfd`, `sys::timerfd`, `sys::signalfd`, `sys::signal`) and prints
//! one line from the real arguments and result. The 8 or 128 bytes these
//! descriptors hand out are decoded on the line:
//!
//! ```text
//! write(efd, u64 3) -> 8
//! read(efd, 8) -> 8: counter=6
//! read(timer, 8) -> 8: expirations=3
//! read(sigfd, 128) -> 128: SIGUSR1 from self (SI_USER)
//! ```
//!
//! No times are printed: a timer's arguments are shown as given (`50ms`) or
//! relative to the clock reading they were computed from (`now-20s`), and
//! the time a timer has left is never shown.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd, siginfo};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::sys::wait::WaitStatus;
use nix::time::ClockId as TimeClockId;
use nix::unistd::{ForkResult, Pid};

use crate::names::{name, name_of};
use crate::trace::{emit, errno, result, timeout};

fn raw(fd: &impl AsFd) -> RawFd {
    fd.as_fd().as_raw_fd()
}

/// Names the set bits of `bits` from `names`, `A|B`, or `0`.
fn flag_names(bits: i32, names: &[(i32, &str)]) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let known = names.iter().fold(0, |acc, (bit, _)| acc | bit);
    if bits & !known != 0 {
        parts.push(format!("{:#x}", bits & !known));
    }
    if parts.is_empty() {
        "0".to_string()
    } else {
        parts.join("|")
    }
}

/// A 64-bit counter value: decimal, or `MAX-1` near the top, where `MAX`
/// is 2^64-1 (the largest value an eventfd counter can hold is `MAX-1`).
pub fn counter(value: u64) -> String {
    match u64::MAX - value {
        0 => "MAX".to_string(),
        below if below < 1000 => format!("MAX-{below}"),
        _ => value.to_string(),
    }
}

// ---------------------------------------------------------------------------
// eventfd

/// `EFD_SEMAPHORE|EFD_NONBLOCK|EFD_CLOEXEC`, in that order, or `0`.
pub fn efd_flags(flags: EfdFlags) -> String {
    flag_names(
        flags.bits(),
        &[
            (EfdFlags::EFD_SEMAPHORE.bits(), "EFD_SEMAPHORE"),
            (EfdFlags::EFD_NONBLOCK.bits(), "EFD_NONBLOCK"),
            (EfdFlags::EFD_CLOEXEC.bits(), "EFD_CLOEXEC"),
        ],
    )
}

/// [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html): a
/// descriptor around a 64-bit counter that starts at `initval`, named
/// `efd_name`: `eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC) -> efd`.
pub fn eventfd(initval: u32, flags: EfdFlags, efd_name: &str) -> nix::Result<EventFd> {
    let r = EventFd::from_value_and_flags(initval, flags);
    if let Ok(efd) = &r {
        name(efd, efd_name);
    }
    emit("eventfd", || {
        let shown = result(&r, |efd| name_of(raw(efd)));
        format!("eventfd({initval}, {}) -> {shown}", efd_flags(flags))
    });
    r
}

/// [write(2)](https://man7.org/linux/man-pages/man2/write.2.html) of one
/// 8-byte integer to an eventfd, which adds it to the counter:
/// `write(efd, u64 3) -> 8`. A write that would take the counter past
/// `MAX-1` (2^64-2) blocks, or fails with EAGAIN on a non-blocking eventfd;
/// writing `MAX` (2^64-1) itself is EINVAL.
pub fn eventfd_write(efd: &EventFd, value: u64) -> nix::Result<usize> {
    let r = efd.write(value);
    emit("write", || {
        let shown = result(&r, |n| n.to_string());
        format!(
            "write({}, u64 {}) -> {shown}",
            name_of(raw(efd)),
            counter(value)
        )
    });
    r
}

/// [read(2)](https://man7.org/linux/man-pages/man2/read.2.html) of an
/// eventfd's 8 bytes: `read(efd, 8) -> 8: counter=6`. Without
/// `EFD_SEMAPHORE` it returns the whole counter and sets it to 0; with it,
/// it returns 1 and takes 1 off. A counter of 0 blocks, or is EAGAIN on a
/// non-blocking eventfd.
pub fn eventfd_read(efd: &EventFd) -> nix::Result<u64> {
    let r = efd.read();
    emit("read", || {
        let shown = result(&r, |&v| format!("8: counter={}", counter(v)));
        format!("read({}, 8) -> {shown}", name_of(raw(efd)))
    });
    r
}

// ---------------------------------------------------------------------------
// timerfd

fn clock_name(clock: ClockId) -> &'static str {
    match clock {
        ClockId::CLOCK_REALTIME => "CLOCK_REALTIME",
        ClockId::CLOCK_MONOTONIC => "CLOCK_MONOTONIC",
        ClockId::CLOCK_BOOTTIME => "CLOCK_BOOTTIME",
        ClockId::CLOCK_REALTIME_ALARM => "CLOCK_REALTIME_ALARM",
        ClockId::CLOCK_BOOTTIME_ALARM => "CLOCK_BOOTTIME_ALARM",
        _ => "CLOCK_?",
    }
}

/// `TFD_NONBLOCK|TFD_CLOEXEC`, or `0`.
pub fn tfd_flags(flags: TimerFlags) -> String {
    flag_names(
        flags.bits(),
        &[
            (TimerFlags::TFD_NONBLOCK.bits(), "TFD_NONBLOCK"),
            (TimerFlags::TFD_CLOEXEC.bits(), "TFD_CLOEXEC"),
        ],
    )
}

/// [timerfd_create(2)](https://man7.org/linux/man-pages/man2/timerfd_create.2.html):
/// a timer that counts on `clock`, named `timer_name`:
/// `timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK|TFD_CLOEXEC) -> timer`.
pub fn timerfd_create(clock: ClockId, flags: TimerFlags, timer_name: &str) -> nix::Result<TimerFd> {
    let r = TimerFd::new(clock, flags);
    if let Ok(timer) = &r {
        name(timer, timer_name);
    }
    emit("timerfd_create", || {
        let shown = result(&r, |t| name_of(raw(t)));
        format!(
            "timerfd_create({}, {}) -> {shown}",
            clock_name(clock),
            tfd_flags(flags)
        )
    });
    r
}

fn spec(d: Duration) -> TimeSpec {
    TimeSpec::from_duration(d)
}

/// `it_value` and `it_interval` as nix wants them. A zero `value` disarms;
/// nix then has no `Expiration` for it, which is why [`timerfd_settime`]
/// calls `unset` for it (the same `timerfd_settime` with a zero
/// `itimerspec`).
fn expiration(value: TimeSpec, interval: Duration) -> Expiration {
    if interval.is_zero() {
        Expiration::OneShot(value)
    } else {
        Expiration::IntervalDelayed(value, spec(interval))
    }
}

/// [timerfd_settime(2)](https://man7.org/linux/man-pages/man2/timerfd_settime.2.html)
/// with a relative time: the timer first expires `value` from now, then
/// every `interval` (zero: once):
/// `timerfd_settime(timer, 0, {value=50ms, interval=0}) -> 0`. A zero
/// `value` disarms the timer: `{value=0 (disarm), interval=0}`.
pub fn timerfd_settime(timer: &TimerFd, value: Duration, interval: Duration) -> nix::Result<()> {
    let r = if value.is_zero() {
        timer.unset()
    } else {
        timer.set(
            expiration(spec(value), interval),
            TimerSetTimeFlags::empty(),
        )
    };
    emit("timerfd_settime", || {
        let shown = result(&r, |_| "0".to_string());
        let value = if value.is_zero() {
            "0 (disarm)".to_string()
        } else {
            timeout(Some(value))
        };
        format!(
            "timerfd_settime({}, 0, {{value={value}, interval={}}}) -> {shown}",
            name_of(raw(timer)),
            timeout(Some(interval))
        )
    });
    r
}

/// [clock_gettime(2)](https://man7.org/linux/man-pages/man2/clock_gettime.2.html):
/// reads `clock` and prints `clock_gettime(CLOCK_MONOTONIC) -> now` (the
/// value differs on every run, so the line calls it `now`).
pub fn clock_now(clock: ClockId) -> nix::Result<TimeSpec> {
    let r = nix::time::clock_gettime(TimeClockId::from_raw(clock as nix::libc::clockid_t));
    emit("clock_gettime", || {
        let shown = result(&r, |_| "now".to_string());
        format!("clock_gettime({}) -> {shown}", clock_name(clock))
    });
    r
}

/// [timerfd_settime(2)](https://man7.org/linux/man-pages/man2/timerfd_settime.2.html)
/// with `TFD_TIMER_ABSTIME`: the timer first expires at `now - ago` on the
/// timer's own clock, where `now` is a reading of `now_of` taken just
/// before ([`clock_now`] prints it), then every `interval`:
/// `timerfd_settime(timer, TFD_TIMER_ABSTIME, {value=CLOCK_MONOTONIC now-20s, interval=10s}) -> 0`.
///
/// A time in the past expires at once, and a periodic timer then counts
/// every period that has passed since (`timerfd_create(2)`, "If the
/// specified time has already passed"): a count the kernel guarantees,
/// whatever the machine's speed, as long as less than one `interval` goes
/// by before the read. `now_of` may differ from the timer's clock: that is
/// the mistake of giving a timer a time read from another clock.
pub fn timerfd_settime_abs(
    timer: &TimerFd,
    now_of: ClockId,
    ago: Duration,
    interval: Duration,
) -> nix::Result<()> {
    let now = clock_now(now_of)?;
    let at = now - spec(ago);
    let r = timer.set(
        expiration(at, interval),
        TimerSetTimeFlags::TFD_TIMER_ABSTIME,
    );
    emit("timerfd_settime", || {
        let shown = result(&r, |_| "0".to_string());
        let value = if ago.is_zero() {
            format!("{} now", clock_name(now_of))
        } else {
            format!("{} now-{}", clock_name(now_of), timeout(Some(ago)))
        };
        format!(
            "timerfd_settime({}, TFD_TIMER_ABSTIME, {{value={value}, interval={}}}) -> {shown}",
            name_of(raw(timer)),
            timeout(Some(interval))
        )
    });
    r
}

/// [timerfd_gettime(2)](https://man7.org/linux/man-pages/man2/timerfd_gettime.2.html):
/// whether the timer is armed, and its interval. The time left is not
/// printed (it differs on every run):
/// `timerfd_gettime(timer) -> {value=0 (disarmed), interval=0}` or
/// `-> {value=armed, interval=10s}`.
pub fn timerfd_gettime(timer: &TimerFd) -> nix::Result<Option<Expiration>> {
    let r = timer.get();
    emit("timerfd_gettime", || {
        let shown = result(&r, |e| match e {
            None => "{value=0 (disarmed), interval=0}".to_string(),
            Some(Expiration::OneShot(_)) => "{value=armed, interval=0}".to_string(),
            Some(Expiration::IntervalDelayed(_, i)) | Some(Expiration::Interval(i)) => {
                format!(
                    "{{value=armed, interval={}}}",
                    timeout(Some(Duration::from(*i)))
                )
            }
        });
        format!("timerfd_gettime({}) -> {shown}", name_of(raw(timer)))
    });
    r
}

/// [read(2)](https://man7.org/linux/man-pages/man2/read.2.html) of a
/// timerfd's 8 bytes: how many times it expired since it was last read or
/// set, which resets the count: `read(timer, 8) -> 8: expirations=3`.
/// No expiration yet: EAGAIN (non-blocking) or a wait.
pub fn timerfd_read(timer: &TimerFd) -> nix::Result<u64> {
    // nix's TimerFd::wait reads the count but drops it: read the 8 bytes
    // through nix's read(2).
    let mut bytes = [0u8; 8];
    let r = nix::unistd::read(timer, &mut bytes).map(|_| u64::from_ne_bytes(bytes));
    emit("read", || {
        let shown = result(&r, |&n| format!("8: expirations={n}"));
        format!("read({}, 8) -> {shown}", name_of(raw(timer)))
    });
    r
}

// ---------------------------------------------------------------------------
// signals and signalfd

/// `{SIGINT, SIGUSR1}`: the signals of a set, in signal-number order.
pub fn sigset(set: &SigSet) -> String {
    let names: Vec<&str> = set.iter().map(|s| s.as_str()).collect();
    format!("{{{}}}", names.join(", "))
}

/// [sigprocmask(2)](https://man7.org/linux/man-pages/man2/sigprocmask.2.html):
/// changes the calling thread's signal mask:
/// `sigprocmask(SIG_BLOCK, {SIGINT, SIGUSR1}) -> 0`. A blocked signal is
/// not delivered: it stays pending until it is unblocked, or read from a
/// signalfd. Threads created afterwards inherit the mask.
pub fn sigprocmask(how: SigmaskHow, set: &SigSet) -> nix::Result<()> {
    let r = nix::sys::signal::sigprocmask(how, Some(set), None);
    emit("sigprocmask", || {
        let how = match how {
            SigmaskHow::SIG_BLOCK => "SIG_BLOCK",
            SigmaskHow::SIG_UNBLOCK => "SIG_UNBLOCK",
            SigmaskHow::SIG_SETMASK => "SIG_SETMASK",
            _ => "SIG_?",
        };
        let shown = result(&r, |_| "0".to_string());
        format!("sigprocmask({how}, {}) -> {shown}", sigset(set))
    });
    r
}

/// `SFD_NONBLOCK|SFD_CLOEXEC`, or `0`.
pub fn sfd_flags(flags: SfdFlags) -> String {
    flag_names(
        flags.bits(),
        &[
            (SfdFlags::SFD_NONBLOCK.bits(), "SFD_NONBLOCK"),
            (SfdFlags::SFD_CLOEXEC.bits(), "SFD_CLOEXEC"),
        ],
    )
}

/// [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html) with
/// fd -1 (a new descriptor), named `sfd_name`:
/// `signalfd(-1, {SIGINT, SIGUSR1}, SFD_NONBLOCK|SFD_CLOEXEC) -> sigfd`.
/// It reports the signals of `mask` that are pending; it does not block
/// them (that is [`sigprocmask`]'s job, and it must come first).
pub fn signalfd(mask: &SigSet, flags: SfdFlags, sfd_name: &str) -> nix::Result<SignalFd> {
    let r = SignalFd::with_flags(mask, flags);
    if let Ok(sfd) = &r {
        name(sfd, sfd_name);
    }
    emit("signalfd", || {
        let shown = result(&r, |sfd| name_of(raw(sfd)));
        format!(
            "signalfd(-1, {}, {}) -> {shown}",
            sigset(mask),
            sfd_flags(flags)
        )
    });
    r
}

/// Who sent a signal, from its `signalfd_siginfo`: `self` (this process),
/// `another process`, or `the kernel`, with the `si_code` name.
pub fn sender(info: &siginfo) -> String {
    let code = match info.ssi_code {
        nix::libc::SI_USER => "SI_USER",
        nix::libc::SI_QUEUE => "SI_QUEUE",
        nix::libc::SI_TKILL => "SI_TKILL",
        nix::libc::SI_KERNEL => "SI_KERNEL",
        other => return format!("code {other}"),
    };
    let who = if info.ssi_code == nix::libc::SI_KERNEL {
        "the kernel"
    } else if info.ssi_pid as i32 == nix::unistd::getpid().as_raw() {
        "self"
    } else {
        "another process"
    };
    format!("{who} ({code})")
}

/// The signal of a `signalfd_siginfo`: `SIGUSR1`, or its number.
pub fn signal_of(info: &siginfo) -> Result<Signal, u32> {
    Signal::try_from(info.ssi_signo as i32).map_err(|_| info.ssi_signo)
}

/// [read(2)](https://man7.org/linux/man-pages/man2/read.2.html) of one
/// `struct signalfd_siginfo` (128 bytes) from a signalfd, which takes the
/// signal off the pending set: `read(sigfd, 128) -> 128: SIGUSR1 from self
/// (SI_USER)`, or `-> EAGAIN (...)` when none is pending (nix's
/// `read_signal` answers `None` for EAGAIN; this returns it as `Ok(None)`
/// too).
pub fn signalfd_read(sfd: &SignalFd) -> nix::Result<Option<siginfo>> {
    let r = sfd.read_signal();
    emit("read", || {
        let size = std::mem::size_of::<siginfo>();
        let shown = match &r {
            Ok(Some(info)) => {
                let sig = match signal_of(info) {
                    Ok(s) => s.as_str().to_string(),
                    Err(n) => format!("signal {n}"),
                };
                format!("{size}: {sig} from {}", sender(info))
            }
            Ok(None) => errno(Errno::EAGAIN),
            Err(e) => errno(*e),
        };
        format!("read({}, {size}) -> {shown}", name_of(raw(sfd)))
    });
    r
}

/// [kill(2)](https://man7.org/linux/man-pages/man2/kill.2.html) to this
/// process: `kill(self, SIGUSR1) -> 0`. A process-directed signal: any
/// thread that does not block it may take it.
pub fn kill_self(signal: Signal) -> nix::Result<()> {
    let r = nix::sys::signal::kill(nix::unistd::getpid(), signal);
    emit("kill", || {
        let shown = result(&r, |_| "0".to_string());
        format!("kill(self, {}) -> {shown}", signal.as_str())
    });
    r
}

/// [fork(2)](https://man7.org/linux/man-pages/man2/fork.2.html): the line
/// is printed by the child, `fork() -> 0 (in the child)`, so it comes
/// before whatever the child prints next; the parent prints nothing for it
/// (its result, the child's pid, differs on every run). A parent that waits
/// for the child before printing anything keeps the transcript in order.
///
/// # Safety
///
/// As for `nix::unistd::fork`: in a process with other threads, the child
/// may only make async-signal-safe calls before it execs or exits.
pub unsafe fn fork() -> nix::Result<ForkResult> {
    // SAFETY: the caller upholds fork's contract (see above).
    let r = unsafe { nix::unistd::fork() };
    if let Ok(ForkResult::Child) | Err(_) = &r {
        emit("fork", || {
            let shown = result(&r, |_| "0 (in the child)".to_string());
            format!("fork() -> {shown}")
        });
    }
    r
}

/// [waitpid(2)](https://man7.org/linux/man-pages/man2/waitpid.2.html) for
/// one child, without its pid on the line:
/// `waitpid(child, 0) -> killed by SIGUSR1` or `-> exited with status 0`.
pub fn waitpid(child: Pid) -> nix::Result<WaitStatus> {
    let r = nix::sys::wait::waitpid(child, None);
    emit("waitpid", || {
        let shown = result(&r, |status| match status {
            WaitStatus::Exited(_, code) => format!("exited with status {code}"),
            WaitStatus::Signaled(_, sig, core) => {
                let core = if *core { " (core dumped)" } else { "" };
                format!("killed by {}{core}", sig.as_str())
            }
            other => format!("{other:?}"),
        });
        format!("waitpid(child, 0) -> {shown}")
    });
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_near_the_top_read_as_offsets_from_max() {
        assert_eq!(counter(3), "3");
        assert_eq!(counter(u64::MAX - 1), "MAX-1");
        assert_eq!(counter(u64::MAX), "MAX");
    }

    #[test]
    fn flags_and_sets_print_by_name() {
        assert_eq!(
            efd_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC),
            "EFD_NONBLOCK|EFD_CLOEXEC"
        );
        assert_eq!(efd_flags(EfdFlags::empty()), "0");
        assert_eq!(tfd_flags(TimerFlags::TFD_NONBLOCK), "TFD_NONBLOCK");
        let mut set = SigSet::empty();
        set.add(Signal::SIGUSR1);
        set.add(Signal::SIGINT);
        assert_eq!(sigset(&set), "{SIGINT, SIGUSR1}");
    }

    #[test]
    fn an_eventfd_counter_adds_up_and_a_timer_counts_past_periods() {
        let efd = eventfd(0, EfdFlags::EFD_NONBLOCK, "efd").unwrap();
        eventfd_write(&efd, 2).unwrap();
        eventfd_write(&efd, 3).unwrap();
        assert_eq!(eventfd_read(&efd), Ok(5));
        assert_eq!(eventfd_read(&efd), Err(Errno::EAGAIN));

        // Blocking timer: the read waits for the first expiration, which
        // is due at once; by then 3 periods of 10 s have passed.
        let timer = timerfd_create(ClockId::CLOCK_MONOTONIC, TimerFlags::empty(), "t").unwrap();
        let (ago, period) = (Duration::from_secs(20), Duration::from_secs(10));
        timerfd_settime_abs(&timer, ClockId::CLOCK_MONOTONIC, ago, period).unwrap();
        assert_eq!(timerfd_read(&timer), Ok(3));
        timerfd_settime(&timer, Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!(timerfd_gettime(&timer).unwrap(), None);
    }
}
