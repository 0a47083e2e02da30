//! # Chapter 08, exercise 1: a worker pool over one epoll instance
//!
//! Read first: the book's chapter 08 ("One instance, many threads" and
//! "The ONESHOT life cycle"), and
//! [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html):
//! EPOLLONESHOT and EPOLL_CTL_MOD. Run
//! `cargo run -p ch08-oneshot-and-exclusive -- duplicate-handling`.
//!
//! Several worker threads share one [`Pool`]; each calls
//! [`Pool::work_once`] in a loop. A connection must be handled by one worker
//! at a time: two workers reading one connection at once tear its messages
//! apart. With a level-triggered registration, one message wakes *every*
//! idle worker; EPOLLONESHOT makes the kernel disable the entry as it
//! reports it, until someone re-arms it.
//!
//! Write:
//!
//! - [`Pool::add`]: register `conn` on the pool's epoll instance under
//!   `token`, for reading, one-shot (`EPOLLIN | EPOLLONESHOT`);
//! - [`Pool::work_once`]: wait up to `timeout` for ONE event (room for one
//!   event); if none came, return `Ok(None)`. Otherwise call
//!   `handle(token, fd)`, and only once it has returned, re-arm the
//!   connection with `EPOLL_CTL_MOD` (`EPOLLIN | EPOLLONESHOT` again; the
//!   entry is still in the interest list, only disabled), then return
//!   `Ok(Some(token))`.
//!
//! Check with `cargo lab check ch08_oneshot_pool`.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// One epoll instance shared by worker threads, and the connections
/// registered on it by token.
pub struct Pool {
    epoll: Epoll,
    conns: Mutex<HashMap<u64, Arc<OwnedFd>>>,
}

/// What a connection is registered for, and re-armed with.
const INTEREST: EpollFlags = EpollFlags::EPOLLIN.union(EpollFlags::EPOLLONESHOT);

impl Pool {
    /// An empty pool with its own epoll instance.
    pub fn new() -> nix::Result<Pool> {
        Ok(Pool {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            conns: Mutex::new(HashMap::new()),
        })
    }

    /// The pool's epoll instance (the tests read its interest list).
    pub fn epoll(&self) -> &Epoll {
        &self.epoll
    }

    /// The connection registered under `token`.
    fn conn(&self, token: u64) -> Option<Arc<OwnedFd>> {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&token)
            .cloned()
    }

    /// Registers `conn` under `token`, and keeps it.
    pub fn add(&self, conn: OwnedFd, token: u64) -> nix::Result<()> {
        // One report, then the entry is disabled: no second worker can be
        // woken for this connection until the first re-arms it.
        self.epoll.add(&conn, EpollEvent::new(INTEREST, token))?;
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, Arc::new(conn));
        Ok(())
    }

    /// One worker's turn: wait for one connection, handle it, re-arm it.
    pub fn work_once(
        &self,
        timeout: Duration,
        handle: impl FnOnce(u64, BorrowedFd<'_>),
    ) -> nix::Result<Option<u64>> {
        let mut events = [EpollEvent::empty(); 1];
        let ms = EpollTimeout::try_from(timeout).unwrap_or(EpollTimeout::MAX);
        if self.epoll.wait(&mut events, ms)? == 0 {
            return Ok(None);
        }
        let token = events[0].data();
        let Some(conn) = self.conn(token) else {
            return Ok(None);
        };
        handle(token, conn.as_fd());
        // Only now: re-arming earlier would let the kernel report the data
        // this handler has not read yet to another worker.
        let mut event = EpollEvent::new(INTEREST, token);
        self.epoll.modify(&*conn, &mut event)?;
        Ok(Some(token))
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::epoll::interest_list;
    use lab_kit::watchdog::within;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::sync::Condvar;
    use std::time::Instant;

    /// A correct pool answers each test in about a second.
    const LIMIT: Duration = Duration::from_secs(3);
    /// How long a worker waits for an event it should not get.
    const WORKER_WAIT: Duration = Duration::from_secs(1);
    const ONESHOT: u32 = EpollFlags::EPOLLONESHOT.bits() as u32;
    const IN: u32 = EpollFlags::EPOLLIN.bits() as u32;

    /// A pool with one connection `token`; returns the peer that writes to it.
    fn pool_with(token: u64) -> (Arc<Pool>, UnixStream) {
        let (peer, conn) = UnixStream::pair().unwrap();
        conn.set_nonblocking(true).unwrap();
        let pool = Pool::new().unwrap();
        pool.add(OwnedFd::from(conn), token).unwrap_or_else(|e| {
            panic!("Pool::add failed: {e}. Register with epoll.add(&conn, EpollEvent::new(flags, token))")
        });
        (Arc::new(pool), peer)
    }

    /// The mask the kernel holds for `token` right now (fdinfo).
    fn mask_of(pool: &Pool, token: u64) -> u32 {
        interest_list(pool.epoll())
            .unwrap()
            .iter()
            .find(|r| r.data == token)
            .unwrap_or_else(|| panic!("conn-{token} is not in the interest list"))
            .events
    }

    /// What went wrong, for a work_once that should have handled `token`.
    fn explain(token: u64, r: &nix::Result<Option<u64>>) -> String {
        match r {
            Err(nix::errno::Errno::EEXIST) => "the re-arm failed with EEXIST: a fired ONESHOT \
                entry is disabled, not removed, so EPOLL_CTL_ADD finds it still there. Re-arm \
                with EPOLL_CTL_MOD"
                .to_string(),
            Ok(None) => format!(
                "a message was waiting on conn-{token} and work_once found no event: after an \
                 event an EPOLLONESHOT entry stays disabled until it is re-armed with \
                 EPOLL_CTL_MOD. Did the previous turn re-arm it once the handler was done?"
            ),
            other => {
                format!("a message was waiting on conn-{token} and work_once returned {other:?}")
            }
        }
    }

    /// Reads everything queued on `fd` (non-blocking).
    fn drain(fd: BorrowedFd<'_>) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = nix::unistd::read(fd, &mut buf) {
            all.extend_from_slice(&buf[..n]);
        }
        all
    }

    /// What the handlers of two racing workers saw.
    #[derive(Default)]
    struct Seen {
        inside: usize,
        most_inside: usize,
        entered: usize,
        workers_done: usize,
        masks: Vec<u32>,
    }

    /// Two workers, each making one `work_once` call, both asleep in
    /// epoll_wait before `peer` sends one message. A handler stays inside
    /// (the message unread) until another worker enters too, or the other
    /// worker's call has returned: so a second worker woken for the same
    /// message is always seen.
    fn two_workers_one_message(token: u64) -> (Seen, Vec<nix::Result<Option<u64>>>) {
        let (pool, mut peer) = pool_with(token);
        let seen = Arc::new((Mutex::new(Seen::default()), Condvar::new()));
        let mut tids = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..2 {
            let (pool, seen) = (Arc::clone(&pool), Arc::clone(&seen));
            let (tid_send, tid) = std::sync::mpsc::channel();
            workers.push(std::thread::spawn(move || {
                tid_send.send(nix::unistd::gettid()).unwrap();
                let result = pool.work_once(WORKER_WAIT, |t, fd| {
                    let (lock, changed) = &*seen;
                    let mut s = lock.lock().unwrap();
                    s.inside += 1;
                    s.entered += 1;
                    s.most_inside = s.most_inside.max(s.inside);
                    s.masks.push(mask_of(&pool, t));
                    changed.notify_all();
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while s.entered < 2 && s.workers_done == 0 && Instant::now() < deadline {
                        s = changed
                            .wait_timeout(s, Duration::from_millis(50))
                            .unwrap()
                            .0;
                    }
                    drop(s);
                    drain(fd);
                    lock.lock().unwrap().inside -= 1;
                });
                let (lock, changed) = &*seen;
                lock.lock().unwrap().workers_done += 1;
                changed.notify_all();
                result
            }));
            tids.push(tid.recv().unwrap());
        }
        for tid in tids {
            lab_kit::proc::wait_until_asleep(tid, Duration::from_secs(2), |a| a.is_epoll_wait())
                .expect("a worker never slept in epoll_wait: work_once must wait for an event");
        }
        peer.write_all(b"hello\n").unwrap();
        let results = workers.into_iter().map(|w| w.join().unwrap()).collect();
        let seen = Arc::try_unwrap(seen).ok().unwrap().0.into_inner().unwrap();
        (seen, results)
    }

    #[test]
    fn one_message_is_handled_by_one_worker() {
        let (seen, results) = within(LIMIT, "two workers and one message", || {
            two_workers_one_message(1)
        });
        if seen.most_inside > 1 {
            let armed = seen.masks.iter().any(|m| m & ONESHOT != 0 && m & IN != 0);
            let why = if seen.masks.iter().any(|m| m & ONESHOT == 0) {
                "conn-1 is registered without EPOLLONESHOT, so one message woke both \
                 workers (a level-triggered entry goes back on the ready list and the next \
                 sleeper is woken). Register it with EPOLLIN | EPOLLONESHOT"
            } else if armed {
                "you re-armed conn-1 before the handler had finished with it: the unread \
                 message was reported again at once, to the other worker. Re-arm \
                 (EPOLL_CTL_MOD) only after handle() returns"
            } else {
                "look at when the entry is disabled and re-armed"
            };
            panic!("two workers handled conn-1 at the same time: {why}");
        }
        assert_eq!(
            seen.entered, 1,
            "one message was sent and {} workers handled it",
            seen.entered
        );
        for r in &results {
            if let Err(nix::errno::Errno::EEXIST) = r {
                panic!("{}", explain(1, r));
            }
        }
        let mut got: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(Some(t)) => format!("Some({t})"),
                Ok(None) => "None".into(),
                Err(e) => format!("Err({e})"),
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            ["None", "Some(1)"],
            "one worker handles conn-1 and returns Ok(Some(1)); the other finds nothing \
             within its timeout and returns Ok(None)"
        );
    }

    #[test]
    fn the_entry_is_disabled_while_its_handler_runs() {
        let masks = within(LIMIT, "two messages handled one after the other", || {
            let (pool, mut peer) = pool_with(1);
            let mut masks = Vec::new();
            for message in [&b"first\n"[..], b"second\n"] {
                peer.write_all(message).unwrap();
                let r = pool.work_once(WORKER_WAIT, |t, fd| {
                    masks.push(mask_of(&pool, t));
                    drain(fd);
                });
                assert!(matches!(r, Ok(Some(1))), "{}", explain(1, &r));
            }
            masks
        });
        let shown = |m: u32| format!("{m:#x}");
        assert!(
            masks[0] & ONESHOT != 0,
            "while a worker handles conn-1 the kernel holds the mask {} for it, without \
             EPOLLONESHOT ({ONESHOT:#x}): another worker can be woken for the same \
             connection. Register it with EPOLLIN | EPOLLONESHOT",
            shown(masks[0])
        );
        assert!(
            masks[0] & IN == 0,
            "while its handler runs conn-1 is armed again (mask {}, EPOLLIN set): you \
             re-armed it before handle() returned. The kernel reports unread data to the \
             next waiting worker at once; re-arm after the handler is done",
            shown(masks[0])
        );
        assert!(
            masks[1] & ONESHOT != 0,
            "the second message was handled with conn-1's mask at {} (no EPOLLONESHOT): \
             your re-arm dropped the flag, and from now on every message wakes every idle \
             worker. Re-arm with EPOLLIN | EPOLLONESHOT",
            shown(masks[1])
        );
    }

    #[test]
    fn conn_is_rearmed_once_handled() {
        let second = within(LIMIT, "two messages on conn-3", || {
            let (pool, mut peer) = pool_with(3);
            peer.write_all(b"first\n").unwrap();
            let first = pool.work_once(WORKER_WAIT, |_, fd| {
                drain(fd);
            });
            assert!(matches!(first, Ok(Some(3))), "{}", explain(3, &first));
            peer.write_all(b"second line\n").unwrap();
            pool.work_once(Duration::from_millis(500), |_, fd| {
                drain(fd);
            })
        });
        assert!(
            matches!(second, Ok(Some(3))),
            "conn-3 went silent with 12 bytes queued (work_once returned {second:?}): \
             after an event an EPOLLONESHOT entry stays disabled until you re-arm it with \
             EPOLL_CTL_MOD. Re-arm it once the handler is done"
        );
    }

    #[test]
    fn no_event_is_none() {
        let (result, called) = within(LIMIT, "work_once to return after its timeout", || {
            let (pool, _peer) = pool_with(1);
            let mut called = false;
            let r = pool.work_once(Duration::from_millis(100), |_, _| called = true);
            (r, called)
        });
        assert!(!called, "nothing was sent, yet handle() was called");
        assert!(
            matches!(result, Ok(None)),
            "nothing was sent: work_once returns Ok(None) after its timeout, got {result:?}"
        );
    }
}
