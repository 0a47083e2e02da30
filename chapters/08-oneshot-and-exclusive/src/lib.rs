//! Chapter 08: EPOLLONESHOT and EPOLLEXCLUSIVE, threads sharing an epoll
//! instance, and the thundering herd.
//!
//! The scenarios need several threads asleep in `epoll_wait` at once, and
//! a transcript that does not depend on which of them the scheduler ran
//! first. This library is how they get it:
//!
//! - [`Waiters`] starts named threads and returns only once every one of
//!   them is really asleep inside `epoll_wait` (read from `/proc`, never a
//!   sleep), so the write that follows finds them all waiting;
//! - each thread makes its calls through lab-kit's traced wrappers (which
//!   print nothing on a helper thread) and keeps what the kernel answered
//!   as a [`Waited`]; the scenario's thread prints it after the join;
//! - [`tally_waits`] counts identical answers, so the transcript says "3
//!   waiters timed out" instead of "waiter-2 and waiter-4 timed out", which
//!   would depend on the scheduler.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lab_kit::epoll::{self, epoll_flags};
use lab_kit::names::{name, name_of, token_name};
use lab_kit::trace;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};

/// How long a waiter thread waits for an event before it reports "no
/// event". It bounds a wait that is *expected* to find nothing (the threads
/// the kernel did not wake); a thread the kernel wakes returns at once.
pub const WAIT_LIMIT: Duration = Duration::from_secs(1);

/// How long to wait for a thread to fall asleep in `epoll_wait`.
pub const ASLEEP_LIMIT: Duration = Duration::from_secs(10);

/// What one `epoll_wait` returned on a helper thread: the delivered events
/// by their `data` token, or the error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waited {
    /// The epoll instance's name (`ep`, `ep-2`).
    pub ep: String,
    /// `maxevents`.
    pub max: usize,
    /// The timeout passed.
    pub timeout: Duration,
    /// The delivered events, `(token, flags)`, or the error.
    pub result: Result<Vec<(u64, EpollFlags)>, Errno>,
}

impl Waited {
    /// Calls `epoll_wait(ep, max, timeout)` through lab-kit's traced wrapper
    /// (on a helper thread it prints nothing, but it counts) and keeps the
    /// answer.
    pub fn wait(ep: &Epoll, max: usize, timeout: Duration) -> Waited {
        let mut events = vec![EpollEvent::empty(); max];
        let r = epoll::wait(ep, &mut events, Some(timeout));
        Waited {
            ep: name_of(ep.0.as_raw_fd()),
            max,
            timeout,
            result: r.map(|n| events[..n].iter().map(|e| (e.data(), e.events())).collect()),
        }
    }

    /// How many events were delivered (0 on error).
    pub fn count(&self) -> usize {
        self.result.as_ref().map_or(0, Vec::len)
    }

    /// The answer as lab-kit prints an `epoll_wait` result:
    /// `1: [conn: EPOLLIN]`, `0: []`, or an errno.
    pub fn answer(&self) -> String {
        match &self.result {
            Ok(events) => {
                let mut shown: Vec<String> = events
                    .iter()
                    .map(|(token, flags)| {
                        format!("{}: {}", token_name(*token), epoll_flags(*flags))
                    })
                    .collect();
                shown.sort();
                format!("{}: [{}]", events.len(), shown.join(", "))
            }
            Err(e) => trace::errno(*e),
        }
    }

    /// The call as it was made: `epoll_wait(ep, max=8, timeout=1s)`.
    pub fn call(&self) -> String {
        format!(
            "epoll_wait({}, max={}, timeout={})",
            self.ep,
            self.max,
            trace::timeout(Some(self.timeout))
        )
    }
}

/// Prints one `[tally]` line per distinct answer among `waits`, with how
/// many threads got it, e.g.
/// `[tally] waiters whose epoll_wait(ep, max=8, timeout=1s) returned 0: [] => 3`.
/// Grouping identical answers keeps the transcript independent of which
/// thread the kernel happened to wake. Lines are sorted, most events first.
pub fn tally_waits(who: &str, waits: &[Waited]) {
    let mut groups: BTreeMap<(std::cmp::Reverse<usize>, String, String), usize> = BTreeMap::new();
    for w in waits {
        *groups
            .entry((std::cmp::Reverse(w.count()), w.call(), w.answer()))
            .or_default() += 1;
    }
    for ((_, call, answer), n) in groups {
        trace::tally(&format!("{who} whose {call} returned {answer}"), n);
    }
}

/// Threads started together, each of which ends up asleep in `epoll_wait`.
pub struct Waiters<T> {
    handles: Vec<(String, JoinHandle<T>)>,
}

impl<T: Send + 'static> Waiters<T> {
    /// Starts one thread per name. Each runs `body(index)`, whose first
    /// blocking call must be an `epoll_wait`; `start` returns once every
    /// thread is asleep inside it (seen in `/proc/self/task/TID/syscall`),
    /// or fails after [`ASLEEP_LIMIT`].
    pub fn start(
        names: &[String],
        body: impl Fn(usize) -> T + Send + Sync + Clone + 'static,
    ) -> std::io::Result<Waiters<T>> {
        let mut handles = Vec::new();
        let mut tids = Vec::new();
        for (i, thread_name) in names.iter().enumerate() {
            let (tid_send, tid_recv) = mpsc::channel();
            let body = body.clone();
            let handle = thread::Builder::new()
                .name(thread_name.clone())
                .spawn(move || {
                    let _ = tid_send.send(nix::unistd::gettid());
                    body(i)
                })?;
            let tid = tid_recv
                .recv()
                .map_err(|_| std::io::Error::other(format!("{thread_name} ended at once")))?;
            handles.push((thread_name.clone(), handle));
            tids.push((thread_name.clone(), tid));
        }
        for (thread_name, tid) in tids {
            lab_kit::proc::wait_until_asleep(tid, ASLEEP_LIMIT, |a| a.is_epoll_wait()).ok_or_else(
                || {
                    std::io::Error::other(format!(
                        "{thread_name} was not asleep in epoll_wait within {ASLEEP_LIMIT:?}"
                    ))
                },
            )?;
        }
        Ok(Waiters { handles })
    }

    /// Waits for every thread to end and returns their results, in the
    /// order of the names given to [`Waiters::start`].
    pub fn join(self) -> std::io::Result<Vec<T>> {
        self.handles
            .into_iter()
            .map(|(thread_name, h)| {
                h.join()
                    .map_err(|_| std::io::Error::other(format!("{thread_name} panicked")))
            })
            .collect()
    }
}

/// `waiter-1`, `waiter-2`, ... (`prefix-N`).
pub fn thread_names(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}-{i}")).collect()
}

/// A non-blocking TCP listener on 127.0.0.1 with `SO_REUSEPORT` set, so
/// several sockets can listen on one port and the kernel spreads incoming
/// connections over them ([socket(7)](https://man7.org/linux/man-pages/man7/socket.7.html),
/// `SO_REUSEPORT`, since Linux 3.9). `port` 0 lets the kernel pick one;
/// the others then bind the same port. Several calls, so a `[setup]` line
/// (the port is not printed: it differs on every run).
pub fn reuseport_listener(port: u16, listener_name: &str) -> nix::Result<TcpListener> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, setsockopt, socket,
        sockopt::ReusePort,
    };
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, ReusePort, &true)?;
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    bind(fd.as_raw_fd(), &SockaddrIn::from(addr))?;
    listen(&fd, Backlog::MAXCONN)?;
    let listener = TcpListener::from(fd);
    name(&listener, listener_name);
    let port_shown = if port == 0 { "0" } else { "the same port" };
    trace::view("listen", "setup", || {
        format!(
            "socket(SOCK_NONBLOCK)+setsockopt(SO_REUSEPORT)+bind(127.0.0.1:{port_shown})+listen => {}",
            name_of(listener.as_raw_fd())
        )
    });
    Ok(listener)
}
