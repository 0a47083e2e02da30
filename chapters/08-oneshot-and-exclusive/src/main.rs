//! `ch08-oneshot-and-exclusive`: who wakes up when several threads wait for
//! the same readiness, and which flag changes that.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use ch02_nonblocking_io::set_nonblocking;
use ch08_oneshot_and_exclusive::{
    WAIT_LIMIT, Waited, Waiters, reuseport_listener, tally_waits, thread_names,
};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use lab_kit::epoll::{self, Op, create1, ctl, show_interest_list};
use lab_kit::names::name_token;
use lab_kit::{fixtures, note, trace};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

const PACKAGE: &str = "ch08-oneshot-and-exclusive";
const INTRO: &str = "EPOLLONESHOT and EPOLLEXCLUSIVE, threads sharing epoll, the thundering herd";

#[derive(Parser)]
#[command(name = PACKAGE, about = INTRO)]
struct Cli {
    #[command(subcommand)]
    scenario: Option<Scenario>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SharedMode {
    // Level-triggered (no flag).
    Level,
    // Edge-triggered (EPOLLET).
    Edge,
    // Level-triggered with EPOLLONESHOT.
    Oneshot,
}

#[derive(Args)]
struct SharedFlag {
    /// How conn is registered: EPOLLIN, EPOLLIN|EPOLLET, or EPOLLIN|EPOLLONESHOT.
    #[arg(long, value_enum, default_value = "level")]
    mode: SharedMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum HerdMode {
    // Each instance registers the listener with EPOLLIN (no flag).
    Plain,
    // Each instance registers it with EPOLLIN|EPOLLONESHOT (the myth).
    Oneshot,
    // Each instance registers it with EPOLLIN|EPOLLEXCLUSIVE.
    Exclusive,
    // One SO_REUSEPORT listener per thread, each in its own instance.
    Reuseport,
}

#[derive(Args)]
struct HerdFlag {
    /// plain: EPOLLIN; oneshot: EPOLLIN|EPOLLONESHOT; exclusive: EPOLLIN|EPOLLEXCLUSIVE;
    /// reuseport: EPOLLIN, but one SO_REUSEPORT listener per thread.
    #[arg(long, value_enum, default_value = "plain")]
    mode: HerdMode,
}

#[derive(Subcommand)]
enum Scenario {
    /// 4 threads wait on ONE epoll instance; one write: how many return?
    SharedEpoll(SharedFlag),
    /// Two workers, one connection, a message in two parts: without and with ONESHOT
    DuplicateHandling,
    /// ONESHOT without the re-arm: data and even a hang-up are never reported
    ForgottenRearm,
    /// 4 threads, each with its OWN instance, one listener: how many wake per connection?
    Herd(HerdFlag),
    /// Every EINVAL of EPOLLEXCLUSIVE, checked against epoll_ctl(2)
    ExclusiveRules,
}

fn main() -> std::process::ExitCode {
    lab_kit::cli::run_main(run)
}

fn run() -> Result<()> {
    let cli: Cli = lab_kit::cli::parse();
    let Some(scenario) = cli.scenario else {
        lab_kit::transcript::print_scenarios(PACKAGE, INTRO, &Cli::command());
        return Ok(());
    };
    trace::enable();
    match scenario {
        Scenario::SharedEpoll(m) => shared_epoll(m.mode),
        Scenario::DuplicateHandling => duplicate_handling(),
        Scenario::ForgottenRearm => forgotten_rearm(),
        Scenario::Herd(m) => herd(m.mode),
        Scenario::ExclusiveRules => exclusive_rules(),
    }
}

/// Tokens for `data`, named so events print by name.
const CONN: u64 = 1;
const LISTENER: u64 = 2;
const OTHER: u64 = 3;
const EP_TARGET: u64 = 4;

/// How many threads wait in the scenarios with a crowd.
const THREADS: usize = 4;

/// A wait that only looks (timeout 0), with room for 8 events.
fn look(ep: &Epoll) -> Result<usize> {
    Ok(epoll::wait(
        ep,
        &mut [EpollEvent::empty(); 8],
        Some(Duration::ZERO),
    )?)
}

/// Says that `Waiters::start` found every thread asleep in epoll_wait.
fn say_asleep(names: &[String], ep: &str) {
    trace::view("proc", "proc", || {
        format!(
            "{}..{} asleep in epoll_wait({ep}), from /proc/self/task/*/syscall => {} of {}",
            names[0],
            names[names.len() - 1],
            names.len(),
            names.len()
        )
    });
}

// ANCHOR: shared_epoll
fn shared_epoll(mode: SharedMode) -> Result<()> {
    name_token(CONN, "conn");
    let flags = match mode {
        SharedMode::Level => EpollFlags::EPOLLIN,
        SharedMode::Edge => EpollFlags::EPOLLIN | EpollFlags::EPOLLET,
        SharedMode::Oneshot => EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT,
    };
    note(&format!(
        "ONE epoll instance, shared by {THREADS} threads. conn is registered {}.",
        epoll::epoll_flags(flags)
    ));
    let (peer, conn) = fixtures::socketpair("peer", "conn")?;
    let ep = Arc::new(create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?);
    ctl(&ep.0, Op::Add, conn.as_raw_fd(), flags, CONN)?;
    note(&format!(
        "{THREADS} threads call epoll_wait(ep) with a {WAIT_LIMIT:?} limit; the write comes\n\
         only once all of them are asleep inside it. Nobody reads conn."
    ));
    let names = thread_names("waiter", THREADS);
    let waiters = Waiters::start(&names, {
        let ep = Arc::clone(&ep);
        move |_| Waited::wait(&ep, 8, WAIT_LIMIT)
    })?;
    say_asleep(&names, "ep");
    trace::write(&peer, b"ping")?;
    let waits = waiters.join()?;
    note("What each thread's epoll_wait returned, counted (which thread got what");
    note("depends on the scheduler; how many does not):");
    tally_waits("waiters", &waits);
    trace::tally(
        "waiters that returned with the event",
        waits.iter().filter(|w| w.count() > 0).count(),
    );
    note("And now, one more look from this thread:");
    look(&ep)?;
    show_interest_list(&ep)?;
    match mode {
        SharedMode::Level => note(
            "Level: every thread returned. The first one woken took conn off the ready\n\
             list, asked the socket (still readable), and put it back at the tail\n\
             (ep_send_events). Finding the list non-empty, it woke the next sleeper\n\
             (ep_done_scan), which did the same: a cascade through all of them.",
        ),
        SharedMode::Edge => note(
            "Edge: one thread. The write's callback (ep_poll_callback) woke one sleeper\n\
             (epoll waiters sleep exclusive: ep_poll). That thread reported conn and did\n\
             not put it back, so the list was empty and nobody else was woken. The data\n\
             is still unread; the others slept until their limit.",
        ),
        SharedMode::Oneshot => note(
            "Oneshot: one thread, as with edge. Reporting conn also disabled it: the\n\
             kernel keeps only its private bits (EPOLLONESHOT), so until someone re-arms\n\
             it with EPOLL_CTL_MOD nothing about conn is reported, to anyone.",
        ),
    }
    Ok(())
}
// ANCHOR_END: shared_epoll

/// What a worker thread of [`duplicate_handling`] tells the scenario.
enum WorkerNews {
    /// Its epoll_wait returned.
    Waited(usize, Waited),
    /// It handled the connection: what its read returned, and its re-arm.
    Handled(usize, Handled),
}

struct Handled {
    read: nix::Result<Vec<u8>>,
    rearm: Option<nix::Result<()>>,
}

/// Two worker threads on `ep`: each waits once; a worker that gets an
/// event waits for the scenario's go, then reads `conn` once and, if
/// `rearm` is set, re-arms it with EPOLL_CTL_MOD. Returns the workers, the
/// channel they report on, and one go-sender per worker.
type Workers = (Waiters<()>, Receiver<WorkerNews>, Vec<Sender<()>>);

fn start_workers(
    ep: &Arc<Epoll>,
    conn: &Arc<UnixStream>,
    rearm: Option<EpollFlags>,
) -> Result<Workers> {
    let (news_send, news) = mpsc::channel();
    let mut gos = Vec::new();
    let mut go_recvs = Vec::new();
    for _ in 0..2 {
        let (go_send, go_recv) = mpsc::channel::<()>();
        gos.push(go_send);
        go_recvs.push(Some(go_recv));
    }
    let go_recvs = Arc::new(Mutex::new(go_recvs));
    let names = thread_names("worker", 2);
    let workers = Waiters::start(&names, {
        let (ep, conn) = (Arc::clone(ep), Arc::clone(conn));
        move |i| {
            let go = go_recvs.lock().expect("go list")[i]
                .take()
                .expect("one go each");
            let waited = Waited::wait(&ep, 8, WAIT_LIMIT);
            let got_event = waited.count() > 0;
            let _ = news_send.send(WorkerNews::Waited(i, waited));
            if !got_event || go.recv().is_err() {
                return;
            }
            let mut buf = [0u8; 64];
            let read = trace::read(&*conn, &mut buf).map(|n| buf[..n].to_vec());
            let rearm = rearm.map(|flags| ctl(&ep.0, Op::Mod, conn.as_raw_fd(), flags, CONN));
            let _ = news_send.send(WorkerNews::Handled(i, Handled { read, rearm }));
        }
    })?;
    say_asleep(&names, "ep");
    Ok((workers, news, gos))
}

/// The next report of the workers (they report within [`WAIT_LIMIT`]).
fn next_news(news: &Receiver<WorkerNews>) -> Result<WorkerNews> {
    news.recv_timeout(WAIT_LIMIT * 10)
        .map_err(|_| anyhow!("a worker did not report within {:?}", WAIT_LIMIT * 10))
}

fn show_read(who: &str, handled: &Handled) {
    trace::view("worker", who, || {
        let shown = trace::result(&handled.read, |data| {
            format!("{} {}", data.len(), trace::bytes(data))
        });
        format!("read(conn, 64) => {shown}")
    });
}

fn duplicate_handling() -> Result<()> {
    name_token(CONN, "conn");
    note("1. Two workers share one level-triggered epoll instance. One client sends");
    note("   the line \"hello\\n\" in two parts.");
    let (peer, conn) = fixtures::socketpair("peer", "conn")?;
    set_nonblocking(&conn)?;
    let ep = Arc::new(create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?);
    ctl(&ep.0, Op::Add, conn.as_raw_fd(), EpollFlags::EPOLLIN, CONN)?;
    let conn = Arc::new(conn);
    let (workers, news, gos) = start_workers(&ep, &conn, None)?;
    trace::write(&peer, b"hel")?;
    let mut waits = Vec::new();
    for _ in 0..2 {
        if let WorkerNews::Waited(_, w) = next_news(&news)? {
            waits.push(w);
        }
    }
    tally_waits("workers", &waits);
    trace::tally(
        "workers now handling conn at the same time",
        waits.iter().filter(|w| w.count() > 0).count(),
    );
    note("Both think conn is theirs. One schedule of what happens next (forced here,");
    note("so that the transcript is the same on every run): worker-1 reads first, the");
    note("second part arrives, then worker-2 reads.");
    let mut pieces = Vec::new();
    for (i, go) in gos.iter().enumerate() {
        if i == 1 {
            trace::write(&peer, b"lo\n")?;
        }
        go.send(())
            .map_err(|_| anyhow!("worker-{} is gone", i + 1))?;
        match next_news(&news)? {
            WorkerNews::Handled(j, handled) => {
                show_read(&format!("thread worker-{}", j + 1), &handled);
                pieces.push(handled.read.unwrap_or_default());
            }
            WorkerNews::Waited(..) => bail!("a worker waited twice"),
        }
    }
    workers.join()?;
    trace::tally(
        "workers holding a piece of the one line",
        pieces.iter().filter(|p| !p.is_empty()).count(),
    );
    trace::tally(
        "workers holding the whole line \"hello\\n\"",
        pieces.iter().filter(|p| p.as_slice() == b"hello\n").count(),
    );
    note("The line is torn in two, each half in another thread: neither can parse it.");
    note("With a protocol, replies would go out in the wrong order, or twice.");

    trace::blank();
    note("2. The same with EPOLLONESHOT: a reported entry is disabled until re-armed.");
    let oneshot = EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT;
    ctl(&ep.0, Op::Mod, conn.as_raw_fd(), oneshot, CONN)?;
    show_interest_list(&ep)?;
    let (workers, news, gos) = start_workers(&ep, &conn, Some(oneshot))?;
    trace::write(&peer, b"hel")?;
    let mut waits = Vec::new();
    let handler = loop {
        match next_news(&news)? {
            WorkerNews::Waited(i, w) if w.count() > 0 => {
                waits.push(w);
                break i;
            }
            WorkerNews::Waited(_, w) => waits.push(w),
            WorkerNews::Handled(..) => bail!("a worker handled conn before its go"),
        }
    };
    note("One worker returned with conn (which one is up to the scheduler; it is called");
    note("\"the handler\" below). The kernel now keeps only conn's private bits:");
    show_interest_list(&ep)?;
    note("The second part arrives while the handler is busy. The other worker sleeps on,");
    note("and so does a look from this thread:");
    trace::write(&peer, b"lo\n")?;
    look(&ep)?;
    note("The handler reads, and only then re-arms conn:");
    gos[handler]
        .send(())
        .map_err(|_| anyhow!("the handler is gone"))?;
    let handled = match next_news(&news)? {
        WorkerNews::Handled(_, handled) => handled,
        WorkerNews::Waited(_, w) => {
            waits.push(w);
            match next_news(&news)? {
                WorkerNews::Handled(_, handled) => handled,
                WorkerNews::Waited(..) => bail!("a worker waited twice"),
            }
        }
    };
    show_read("handler", &handled);
    trace::view("worker", "handler", || {
        let shown = match &handled.rearm {
            Some(r) => trace::result(r, |_| "0".to_string()),
            None => "not made".to_string(),
        };
        format!("epoll_ctl(ep, MOD, conn, EPOLLIN|EPOLLONESHOT, data=conn) => {shown}")
    });
    show_interest_list(&ep)?;
    while waits.len() < 2 {
        if let WorkerNews::Waited(_, w) = next_news(&news)? {
            waits.push(w);
        }
    }
    workers.join()?;
    tally_waits("workers", &waits);
    note("One worker handled the whole line; the other was never woken for it.");
    Ok(())
}

// ANCHOR: forgotten_rearm
fn forgotten_rearm() -> Result<()> {
    name_token(CONN, "conn");
    let (peer, conn) = fixtures::socketpair("peer", "conn")?;
    set_nonblocking(&conn)?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    let oneshot = EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT;
    ctl(&ep.0, Op::Add, conn.as_raw_fd(), oneshot, CONN)?;
    note("Armed: the mask holds EPOLLIN (and the EPOLLERR|EPOLLHUP the kernel adds).");
    show_interest_list(&ep)?;
    trace::write(&peer, b"first")?;
    look(&ep)?;
    note("Fired: reporting conn left only the private bit EPOLLONESHOT in its mask.");
    show_interest_list(&ep)?;
    note("The handler reads the message... and forgets to re-arm.");
    trace::read(&conn, &mut [0; 64])?;
    trace::write(&peer, b"second")?;
    look(&ep)?;
    note("The peer hangs up. EPOLLHUP is reported even unasked, but not by a disabled");
    note("entry. Even a wait that sleeps for it hears nothing:");
    trace::close(peer.into())?;
    look(&ep)?;
    epoll::wait(
        &ep,
        &mut [EpollEvent::empty(); 8],
        Some(Duration::from_millis(100)),
    )?;
    note("Nothing is lost, only unreported: the bytes are still queued.");
    trace::peek(&conn, &mut [0; 64])?;
    note("Re-arm with EPOLL_CTL_MOD. Like ADD, MOD asks the socket for its state at once");
    note("(ep_modify), so what is already true is reported at the next wait:");
    ctl(&ep.0, Op::Mod, conn.as_raw_fd(), oneshot, CONN)?;
    show_interest_list(&ep)?;
    look(&ep)?;
    note("And it is disabled again, until the next re-arm.");
    show_interest_list(&ep)?;
    Ok(())
}
// ANCHOR_END: forgotten_rearm

/// What one thread of [`herd`] saw: its wait, and its accept (if it got an
/// event).
struct HerdReport {
    waited: Waited,
    accepted: Option<nix::Result<()>>,
}

// ANCHOR: herd
fn herd(mode: HerdMode) -> Result<()> {
    let flags = match mode {
        HerdMode::Plain | HerdMode::Reuseport => EpollFlags::EPOLLIN,
        HerdMode::Oneshot => EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT,
        HerdMode::Exclusive => EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE,
    };
    // The listener each thread watches and accepts from.
    let mut listeners = Vec::new();
    if mode == HerdMode::Reuseport {
        note(&format!(
            "{THREADS} listeners on ONE port (SO_REUSEPORT): each thread has its own listener\n\
             and its own epoll instance. The kernel gives each connection to one listener."
        ));
        let first = reuseport_listener(0, "listener-1")?;
        let port = first.local_addr()?.port();
        listeners.push(Arc::new(first));
        for i in 2..=THREADS {
            listeners.push(Arc::new(reuseport_listener(
                port,
                &format!("listener-{i}"),
            )?));
        }
    } else {
        note(&format!(
            "ONE listening socket; {THREADS} threads, each with its OWN epoll instance\n\
             watching it, registered {}.\n\
             (Pre-fork servers look like this: the listener is inherited, and each\n\
             worker process creates its own instance.)",
            epoll::epoll_flags(flags)
        ));
        let listener = fixtures::listener("listener")?;
        set_nonblocking(&listener)?;
        // Every thread watches (and accepts from) the same socket.
        let shared = Arc::new(listener);
        listeners = vec![shared; THREADS];
    }
    let mut instances = Vec::new();
    // Every thread's data token says "listener": its own (in reuseport mode),
    // or the one they share.
    name_token(LISTENER, "listener");
    for (i, listener) in listeners.iter().enumerate() {
        let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, &format!("ep-{}", i + 1))?;
        ctl(&ep.0, Op::Add, listener.as_raw_fd(), flags, LISTENER)?;
        instances.push(Arc::new(ep));
    }
    show_interest_list(&instances[0])?;
    note(&format!(
        "Each thread: epoll_wait on its own instance ({WAIT_LIMIT:?} limit); then, once all\n\
         {THREADS} have returned, accept if its wait returned the event. (Accepting only\n\
         after everybody's wait keeps the count honest: the connection is still\n\
         queued when each woken thread's wait asks the listener.)"
    ));
    let names = thread_names("waiter", THREADS);
    let after_waits = Arc::new(Barrier::new(THREADS));
    let waiters = Waiters::start(&names, {
        let (instances, listeners) = (instances.clone(), listeners.clone());
        move |i| {
            let waited = Waited::wait(&instances[i], 8, WAIT_LIMIT);
            after_waits.wait();
            let accepted = (waited.count() > 0)
                .then(|| trace::accept(&*listeners[i], &format!("conn-{}", i + 1)).map(drop));
            HerdReport { waited, accepted }
        }
    })?;
    say_asleep(&names, "ep-N");
    let _client = fixtures::connect(listeners[0].local_addr()?, "client")?;
    let reports = waiters.join()?;
    // Counted without the instance's name: which instance's thread the
    // kernel woke is not the lesson (and, with SO_REUSEPORT, differs by run).
    let waits: Vec<Waited> = reports
        .iter()
        .map(|r| Waited {
            ep: "ep-N".to_string(),
            ..r.waited.clone()
        })
        .collect();
    let woken = waits.iter().filter(|w| w.count() > 0).count();
    let accepts: Vec<&nix::Result<()>> =
        reports.iter().filter_map(|r| r.accepted.as_ref()).collect();
    let connections = accepts.iter().filter(|r| r.is_ok()).count();
    let eagain = accepts
        .iter()
        .filter(|r| ***r == Err(Errno::EAGAIN))
        .count();
    if mode == HerdMode::Exclusive {
        note("EPOLLEXCLUSIVE promises \"one or more\" (epoll_ctl(2)): a bound, not a number.");
        trace::view("check", "check", || {
            format!(
                "waiters that returned with the event: at least 1 => {}",
                woken >= 1
            )
        });
        trace::view("check", "check", || {
            format!(
                "waiters that returned with the event: fewer than {THREADS} => {}",
                woken < THREADS
            )
        });
        trace::view("check", "check", || {
            format!(
                "accept calls that returned EAGAIN = woken waiters - 1 => {}",
                eagain + 1 == woken
            )
        });
        if woken == 0 {
            bail!("no waiter returned with the event: EPOLLEXCLUSIVE promises at least one");
        }
    } else {
        tally_waits("waiters", &waits);
        trace::tally("waiters that returned with the event", woken);
        trace::tally("accept calls that returned EAGAIN", eagain);
    }
    trace::tally("accept calls that returned a connection", connections);
    match mode {
        HerdMode::Plain => note(
            "The herd: the listener's wait queue holds one entry per instance, all\n\
             non-exclusive, so one connection runs all four callbacks and wakes all four\n\
             threads. One accept wins; the others did a wake-up and a call for nothing.",
        ),
        HerdMode::Oneshot => note(
            "EPOLLONESHOT did not help: each instance has its own armed entry, and each\n\
             fired once. ONESHOT limits an entry to one report; it cannot stop the other\n\
             instances' entries. (After this, all four entries are disabled.)",
        ),
        HerdMode::Exclusive => note(
            "The entries sit on the listener's wait queue as exclusive waiters: the\n\
             wake-up stops at the first callback that woke a sleeping thread\n\
             (ep_poll_callback returns 1 for it). Added in Linux 4.5.",
        ),
        HerdMode::Reuseport => note(
            "No herd to tame: each connection is queued on ONE listener (picked by a hash\n\
             of the addresses), and only that listener's waiters hear about it.",
        ),
    }
    Ok(())
}
// ANCHOR_END: herd

/// One EPOLLEXCLUSIVE case: what epoll_ctl(2) says the kernel answers.
struct Case {
    ep_op: Op,
    target: std::os::fd::RawFd,
    flags: EpollFlags,
    token: u64,
    expected: Result<(), Errno>,
    why: &'static str,
}

// ANCHOR: exclusive_rules
fn exclusive_rules() -> Result<()> {
    name_token(CONN, "conn");
    name_token(OTHER, "other");
    name_token(EP_TARGET, "inner-ep");
    let (_peer, conn) = fixtures::socketpair("peer", "conn")?;
    let (_peer2, other) = fixtures::socketpair("peer-2", "other")?;
    let ep = create1(EpollCreateFlags::EPOLL_CLOEXEC, "ep")?;
    let inner = create1(EpollCreateFlags::EPOLL_CLOEXEC, "inner-ep")?;
    let ex = EpollFlags::EPOLLEXCLUSIVE;
    let inn = EpollFlags::EPOLLIN;
    let (conn_fd, other_fd, inner_fd) = (conn.as_raw_fd(), other.as_raw_fd(), inner.0.as_raw_fd());
    let cases = [
        Case {
            ep_op: Op::Add,
            target: conn_fd,
            flags: inn | EpollFlags::EPOLLOUT | EpollFlags::EPOLLET | ex,
            token: CONN,
            expected: Ok(()),
            why: "EXCLUSIVE with its allowed companions EPOLLIN, EPOLLOUT, EPOLLET",
        },
        Case {
            ep_op: Op::Mod,
            target: conn_fd,
            flags: inn,
            token: CONN,
            expected: Err(Errno::EINVAL),
            why: "any MOD of an entry added with EXCLUSIVE",
        },
        Case {
            ep_op: Op::Mod,
            target: conn_fd,
            flags: inn | ex,
            token: CONN,
            expected: Err(Errno::EINVAL),
            why: "EXCLUSIVE in a MOD",
        },
        Case {
            ep_op: Op::Del,
            target: conn_fd,
            flags: EpollFlags::empty(),
            token: 0,
            expected: Ok(()),
            why: "DEL is allowed: to change the mask, DEL and ADD again",
        },
        Case {
            ep_op: Op::Add,
            target: other_fd,
            flags: inn,
            token: OTHER,
            expected: Ok(()),
            why: "a plain entry...",
        },
        Case {
            ep_op: Op::Mod,
            target: other_fd,
            flags: inn | ex,
            token: OTHER,
            expected: Err(Errno::EINVAL),
            why: "...cannot become exclusive by MOD",
        },
        Case {
            ep_op: Op::Add,
            target: conn_fd,
            flags: inn | ex | EpollFlags::EPOLLONESHOT,
            token: CONN,
            expected: Err(Errno::EINVAL),
            why: "EXCLUSIVE with ONESHOT",
        },
        Case {
            ep_op: Op::Add,
            target: conn_fd,
            flags: inn | ex | EpollFlags::EPOLLRDHUP,
            token: CONN,
            expected: Err(Errno::EINVAL),
            why: "EXCLUSIVE with RDHUP",
        },
        Case {
            ep_op: Op::Add,
            target: conn_fd,
            flags: inn | ex | EpollFlags::EPOLLPRI,
            token: CONN,
            expected: Err(Errno::EINVAL),
            why: "EXCLUSIVE with PRI",
        },
        Case {
            ep_op: Op::Add,
            target: inner_fd,
            flags: inn | ex,
            token: EP_TARGET,
            expected: Err(Errno::EINVAL),
            why: "EXCLUSIVE on an epoll instance as the target",
        },
        Case {
            ep_op: Op::Add,
            target: inner_fd,
            flags: inn,
            token: EP_TARGET,
            expected: Ok(()),
            why: "the same epoll target without EXCLUSIVE (nesting: chapter 09)",
        },
    ];
    let mut differ = Vec::new();
    for case in &cases {
        note(&format!(
            "{} (epoll_ctl(2): {})",
            case.why,
            match case.expected {
                Ok(()) => "0".to_string(),
                Err(e) => format!("{e:?}"),
            }
        ));
        let got = ctl(&ep.0, case.ep_op, case.target, case.flags, case.token);
        if got != case.expected {
            differ.push(case.why);
        }
    }
    trace::view("check", "check", || {
        format!(
            "answers as epoll_ctl(2) documents them => {} of {}",
            cases.len() - differ.len(),
            cases.len()
        )
    });
    if !differ.is_empty() {
        bail!(
            "this kernel answered differently from epoll_ctl(2) in: {}",
            differ.join("; ")
        );
    }
    Ok(())
}
// ANCHOR_END: exclusive_rules
