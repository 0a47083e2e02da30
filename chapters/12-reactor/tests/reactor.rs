//! The reactor's rules, on real sockets (socketpairs) and a real epoll
//! instance: the per-event budget and re-queue (chapter 07's rules under
//! EPOLLET), stale tokens, timers, the waker.

use std::cell::RefCell;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use ch12_reactor::reactor::{Clock, Interest, Next, Reactor, Ready, Token};
use lab_kit::watchdog::within;

const LIMIT: Duration = Duration::from_secs(10);

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    a.set_nonblocking(true).unwrap();
    (a, b)
}

/// Reads at most `budget` x 4 KiB; `Again` if it stopped with data maybe
/// left, `Done` at EAGAIN or a short read. Logs (name, bytes) per read.
fn budgeted(
    name: &'static str,
    budget: usize,
    requeue: bool,
    log: Rc<RefCell<Vec<(&'static str, usize)>>>,
) -> impl FnMut(&mut Reactor<()>, Token, Ready, &UnixStream) -> Next {
    move |_, _, _, fd| {
        let mut buf = [0u8; 4096];
        for _ in 0..budget {
            match nix::unistd::read(fd, &mut buf) {
                Ok(n) => {
                    log.borrow_mut().push((name, n));
                    if n < buf.len() {
                        return Next::Done;
                    }
                }
                Err(_) => return Next::Done,
            }
        }
        if requeue { Next::Again } else { Next::Done }
    }
}

#[test]
fn a_flooding_socket_does_not_starve_a_quiet_one_and_is_drained_without_new_events() {
    within(LIMIT, "the budget test to finish", || {
        let mut reactor = Reactor::new(()).unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (mut peer_flood, flood) = pair();
        let (mut peer_quiet, quiet) = pair();
        reactor
            .register_fn(
                "flood",
                flood,
                Interest::Read,
                budgeted("flood", 4, true, log.clone()),
            )
            .unwrap();
        reactor
            .register_fn(
                "quiet",
                quiet,
                Interest::Read,
                budgeted("quiet", 4, true, log.clone()),
            )
            .unwrap();
        // 128 KiB: what a socketpair's buffer holds without blocking the peer.
        let flood_bytes = 32 * 4096;
        peer_flood.write_all(&vec![b'x'; flood_bytes]).unwrap();
        peer_quiet.write_all(b"ping").unwrap();
        reactor.run_once(Some(Duration::ZERO)).unwrap();
        let first: Vec<_> = log.borrow().clone();
        assert_eq!(
            first,
            vec![
                ("flood", 4096),
                ("flood", 4096),
                ("flood", 4096),
                ("flood", 4096),
                ("quiet", 4)
            ],
            "round 1: flood gets its budget (4 reads), then quiet is served"
        );
        let mut rounds = 1;
        while log
            .borrow()
            .iter()
            .filter(|(n, _)| *n == "flood")
            .map(|(_, b)| b)
            .sum::<usize>()
            < flood_bytes
        {
            let events = reactor.run_once(Some(Duration::ZERO)).unwrap();
            assert_eq!(
                events, 0,
                "no new data was sent: under EPOLLET no new event comes"
            );
            rounds += 1;
            assert!(
                rounds <= 9,
                "the re-queued flood should drain in 8 rounds of 4 reads"
            );
        }
        assert_eq!(rounds, 8, "32 reads of 4 KiB at 4 per round");
    });
}

#[test]
fn a_handler_that_stops_early_without_again_is_stalled_under_edge_triggering() {
    within(LIMIT, "the stall test to finish", || {
        let mut reactor = Reactor::new(()).unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (mut peer, conn) = pair();
        reactor
            .register_fn(
                "conn",
                conn,
                Interest::Read,
                budgeted("conn", 1, false, log.clone()),
            )
            .unwrap();
        peer.write_all(&[b'x'; 3 * 4096]).unwrap();
        reactor.run_once(Some(Duration::ZERO)).unwrap();
        for _ in 0..3 {
            reactor.run_once(Some(Duration::ZERO)).unwrap();
        }
        assert_eq!(
            log.borrow().len(),
            1,
            "read once, said Done with 8 KiB still queued: no edge comes, nobody calls it"
        );
        // One more byte is a new edge: the handler runs again.
        peer.write_all(b"!").unwrap();
        reactor.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(log.borrow().len(), 2);
    });
}

#[test]
fn an_event_for_a_slot_freed_earlier_in_the_batch_is_skipped() {
    within(LIMIT, "the stale token test to finish", || {
        let mut reactor = Reactor::new(()).unwrap();
        let (mut peer_a, a) = pair();
        let (mut peer_b, b) = pair();
        let ran = Rc::new(RefCell::new(Vec::new()));
        let b_token: Rc<RefCell<Option<Token>>> = Rc::new(RefCell::new(None));
        let (ran_a, b_seen) = (ran.clone(), b_token.clone());
        let newcomer_peer = Rc::new(RefCell::new(None));
        let keep = newcomer_peer.clone();
        reactor
            .register_fn("a", a, Interest::Read, move |r, _, _, _| {
                ran_a.borrow_mut().push("a");
                if let Some(b) = b_seen.borrow_mut().take() {
                    r.deregister(b);
                    let (peer_c, c) = pair();
                    let ran_c = ran_a.clone();
                    let c_token = r
                        .register_fn("c", c, Interest::Read, move |_, _, _, _| {
                            ran_c.borrow_mut().push("c");
                            Next::Done
                        })
                        .unwrap();
                    assert_eq!(c_token.index(), b.index(), "c reuses b's slot");
                    assert_ne!(c_token, b, "with a new token");
                    *keep.borrow_mut() = Some(peer_c);
                }
                Next::Done
            })
            .unwrap();
        let ran_b = ran.clone();
        let token = reactor
            .register_fn("b", b, Interest::Read, move |_, _, _, _| {
                ran_b.borrow_mut().push("b");
                Next::Done
            })
            .unwrap();
        *b_token.borrow_mut() = Some(token);
        peer_a.write_all(b"a").unwrap();
        peer_b.write_all(b"b").unwrap();
        let n = reactor.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(n, 2, "one wait, both events");
        assert_eq!(
            *ran.borrow(),
            vec!["a"],
            "b's stale event must reach neither b nor c"
        );
    });
}

#[test]
fn timers_fire_in_deadline_order_after_the_socket_handlers() {
    within(LIMIT, "the timer test to finish", || {
        let clock = Clock::manual();
        let mut reactor =
            Reactor::with_clock(Rc::new(RefCell::new(Vec::new())), clock.clone()).unwrap();
        let (mut peer, conn) = pair();
        reactor
            .register_fn(
                "conn",
                conn,
                Interest::Read,
                |r: &mut Reactor<Rc<RefCell<Vec<String>>>>, _, _, fd: &UnixStream| {
                    let _ = nix::unistd::read(fd, &mut [0u8; 64]);
                    r.state.borrow_mut().push("conn".into());
                    Next::Done
                },
            )
            .unwrap();
        for (name, after) in [("late", 30), ("early", 10), ("cancelled", 5)] {
            let id = reactor.add_timer(name, Duration::from_millis(after), move |r| {
                r.state.borrow_mut().push(name.into());
                None
            });
            if name == "cancelled" {
                assert!(reactor.cancel_timer(id));
            }
        }
        clock.advance(Duration::from_millis(30));
        peer.write_all(b"x").unwrap();
        reactor.run_once(None).unwrap();
        assert_eq!(*reactor.state.borrow(), vec!["conn", "early", "late"]);
    });
}

#[test]
fn a_wake_from_another_thread_ends_a_wait_without_timeout() {
    within(LIMIT, "the waker to end epoll_wait(-1)", || {
        let mut reactor = Reactor::new(0u64).unwrap();
        let waker = reactor.waker(|r, count| r.state += count).unwrap();
        let me = nix::unistd::gettid();
        let t = std::thread::spawn(move || {
            lab_kit::proc::wait_until_asleep(me, Duration::from_secs(5), |a| a.is_epoll_wait())
                .expect("the reactor should sleep in epoll_wait");
            waker.wake().unwrap();
        });
        reactor.run_once(None).unwrap();
        t.join().unwrap();
        assert_eq!(reactor.state, 1);
    });
}
