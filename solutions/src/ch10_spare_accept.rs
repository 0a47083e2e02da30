//! # Chapter 10, exercise 2: accept under EMFILE with a spare descriptor
//!
//! Read first: the book's chapter 10 ("EMFILE: accept when you cannot"),
//! and [accept(2)](https://man7.org/linux/man-pages/man2/accept.2.html),
//! ERRORS (EMFILE: "The per-process limit on the number of open file
//! descriptors has been reached"). Run
//! `cargo run -p ch10-fd-lifetimes -- emfile`.
//!
//! Out of descriptors, `accept` fails with EMFILE and the connection stays
//! in the listener's queue, so the listener stays readable: a
//! level-triggered loop is woken again at once, fails again, and spins,
//! while the client waits for an answer that never comes.
//!
//! The spare-descriptor remedy: keep one descriptor open that you do not
//! need (`/dev/null`). On EMFILE, close it (one number is free now), accept
//! the connection, close the connection at once (its client sees end of
//! file instead of waiting), and open the spare again, in that order: the
//! spare needs the number the connection had.
//!
//! Write [`Acceptor`]:
//!
//! - [`new`](Acceptor::new): keep the (non-blocking) listener and open the
//!   spare (`/dev/null`, read-only, close-on-exec);
//! - [`accept_ready`](Acceptor::accept_ready): accept every queued
//!   connection with [`accept`] (given below: it counts), until the queue
//!   is empty (EAGAIN). Those it could accept go into
//!   [`Accepted::conns`]; on EMFILE, use the spare to take one connection
//!   off the queue and close it, count it in [`Accepted::refused`], and go
//!   on. EMFILE is not an error of `accept_ready`; other errors are
//!   returned.
//!
//! Check with `cargo lab check ch10_spare_accept`.

use std::cell::Cell;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// What one [`Acceptor::accept_ready`] did.
#[derive(Debug, Default)]
pub struct Accepted {
    /// The connections it accepted and keeps.
    pub conns: Vec<OwnedFd>,
    /// Connections it took off the queue with the spare and closed at once.
    pub refused: usize,
}

/// A listener, and a spare descriptor for the day it runs out.
pub struct Acceptor {
    listener: TcpListener,
    spare: Option<OwnedFd>,
}

impl Acceptor {
    /// Takes a listener, makes it non-blocking, and opens the spare.
    pub fn new(listener: TcpListener) -> io::Result<Acceptor> {
        listener.set_nonblocking(true)?;
        Ok(Acceptor {
            listener,
            spare: Some(open_spare()?),
        })
    }

    /// Accepts every queued connection; out of descriptors, refuses them
    /// one by one with the spare.
    pub fn accept_ready(&mut self) -> io::Result<Accepted> {
        let mut accepted = Accepted::default();
        loop {
            match accept(&self.listener) {
                Ok(conn) => accepted.conns.push(conn),
                Err(Errno::EAGAIN) => return Ok(accepted),
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(Errno::EMFILE) => {
                    // No spare (it could not be opened again): stop here;
                    // the caller should stop asking about the listener.
                    let Some(spare) = self.spare.take() else {
                        return Ok(accepted);
                    };
                    drop(spare);
                    match accept(&self.listener) {
                        Ok(conn) => {
                            // Close it before reopening the spare: the spare
                            // needs the number it holds.
                            drop(conn);
                            accepted.refused += 1;
                            self.spare = Some(open_spare()?);
                        }
                        Err(Errno::EAGAIN) => {
                            self.spare = Some(open_spare()?);
                            return Ok(accepted);
                        }
                        Err(e) => {
                            self.spare = Some(open_spare()?);
                            return Err(e.into());
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Opens the spare descriptor: `/dev/null`, read-only, close-on-exec.
fn open_spare() -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// How many EMFILE failures of [`accept`] in a row count as spinning.
const SPIN: u32 = 1000;

thread_local! {
    /// EMFILE failures of `accept` in a row on this thread.
    static EMFILE_IN_A_ROW: Cell<u32> = const { Cell::new(0) };
}

/// [accept(2)](https://man7.org/linux/man-pages/man2/accept.2.html) on
/// `listener`: a new descriptor, or the error. Use it (not
/// `TcpListener::accept`): it counts EMFILE failures in a row, and after
/// [`SPIN`] of them (nothing freed in between, or the next would succeed)
/// it stops the program with a message instead of letting it spin.
pub fn accept(listener: &TcpListener) -> nix::Result<OwnedFd> {
    let r = nix::sys::socket::accept(listener.as_raw_fd()).map(|fd| {
        // SAFETY: accept returned a new descriptor that nobody else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    let in_a_row = match r {
        Err(Errno::EMFILE) => EMFILE_IN_A_ROW.get() + 1,
        _ => 0,
    };
    EMFILE_IN_A_ROW.set(in_a_row);
    assert!(
        in_a_row < SPIN,
        "accept failed with EMFILE {SPIN} times in a row: retrying accept without freeing a \
         descriptor spins (nothing changes between two tries). Free one first: close the spare"
    );
    r
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::process::Command;
    use std::time::Duration;

    /// The whole test, in its own process; well below the lab's 5 s.
    const LIMIT: Duration = Duration::from_millis(4500);

    /// What the test gets inside its own process (a correct acceptor needs
    /// milliseconds).
    const INSIDE: Duration = Duration::from_secs(3);

    /// How long a refused client may wait to be closed.
    const PROMPTLY: Duration = Duration::from_secs(1);

    /// The environment variable that tells a copy of this test binary to run
    /// the test's body itself.
    const CHILD: &str = "EPOLL_LAB_CH10_SPARE_CHILD";

    /// Runs `body` in a process of its own: this test binary again, running
    /// only the test `test`. The descriptor limit is per process, and other
    /// tests run in threads beside this one: lowering it here would make
    /// their calls fail too. The child's panic message becomes this test's.
    fn in_own_process(test: &str, body: fn()) {
        if std::env::var(CHILD).as_deref() == Ok(test) {
            within(INSIDE, &format!("`{test}` to finish"), body);
            return;
        }
        // Test names leave out the crate: `ch10_spare_accept::tests::NAME`.
        let module = module_path!();
        let module = module.split_once("::").map_or(module, |(_, rest)| rest);
        let output = Command::new(std::env::current_exe().unwrap())
            .args([&format!("{module}::{test}"), "--exact", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD, test)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        if !text.contains("1 passed") {
            let message: Vec<&str> = text
                .lines()
                .skip_while(|l| !l.contains("panicked at"))
                .skip(1)
                .take_while(|l| !l.starts_with("note:") && !l.starts_with("stack backtrace"))
                .collect();
            if message.is_empty() {
                panic!("the test's own process failed:\n{text}");
            }
            panic!("{}", message.join("\n"));
        }
    }

    /// The lowest descriptor number free now (the kernel gives that out
    /// next).
    fn lowest_free() -> u64 {
        let probe = std::fs::File::open("/dev/null").unwrap();
        probe.as_raw_fd() as u64
    }

    /// Sets the soft descriptor limit so that exactly `room` more
    /// descriptors can be opened.
    fn set_room(room: u64) {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
        let free = lowest_free();
        setrlimit(Resource::RLIMIT_NOFILE, free + room, hard).unwrap();
    }

    /// A listener on 127.0.0.1 and `n` clients queued on it.
    fn listener_with_clients(n: usize) -> (TcpListener, Vec<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let clients = (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect();
        (listener, clients)
    }

    /// `n` more clients, connected with the limit raised for a moment
    /// (they need descriptors of their own, in this same process).
    fn more_clients(listener: &TcpListener, n: usize) -> Vec<TcpStream> {
        set_room(n as u64);
        let addr = listener.local_addr().unwrap();
        (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect()
    }

    /// accept_ready, with EMFILE named if it comes back as an error.
    fn accept_ready(acceptor: &mut Acceptor, queued: usize) -> Accepted {
        acceptor.accept_ready().unwrap_or_else(|e| {
            panic!(
                "accept_ready returned an error with {queued} clients queued and no \
                 descriptor free: {e}. Out of descriptors is no reason to fail: on EMFILE, \
                 close the spare, accept, close that connection, and open the spare again \
                 (in that order: if it was opening the spare that failed, the refused \
                 connection still held the number the spare needs)"
            )
        })
    }

    /// Each client must see its connection closed (end of file or reset)
    /// within [`PROMPTLY`].
    fn closed_promptly(clients: &mut [TcpStream], round: &str) {
        for (i, client) in clients.iter_mut().enumerate() {
            client.set_read_timeout(Some(PROMPTLY)).unwrap();
            match client.read(&mut [0u8; 8]) {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                other => panic!(
                    "{round}: client {i} was not closed within {PROMPTLY:?} ({other:?}): it \
                     still waits in the listener's queue. Each refused connection must be \
                     accepted with the spare's number and closed at once"
                ),
            }
        }
    }

    fn refuses_every_queued_client_and_keeps_doing_so() {
        let (listener, mut clients) = listener_with_clients(3);
        let mut acceptor = Acceptor::new(listener).unwrap();
        set_room(0);
        let first = accept_ready(&mut acceptor, 3);
        assert_eq!(
            (first.conns.len(), first.refused),
            (0, 3),
            "3 clients queued, no descriptor free: all 3 should be refused (accepted with the \
             spare's number and closed), none kept. If one was kept, a descriptor was free: the \
             spare's. Open the spare again right after closing each refused connection"
        );
        closed_promptly(&mut clients, "first round");
        // A second storm: the spare must be back in place.
        let mut later = more_clients(&acceptor.listener, 2);
        set_room(0);
        let second = accept_ready(&mut acceptor, 2);
        assert_eq!(
            (second.conns.len(), second.refused),
            (0, 2),
            "a second round of 2 clients at the limit: both should be refused too. Was the \
             spare opened again after each refused connection (after closing it)?"
        );
        closed_promptly(&mut later, "second round");
    }

    #[test]
    fn out_of_descriptors_every_queued_client_is_closed_at_once() {
        within(LIMIT, "the test's own process to finish", || {
            in_own_process(
                "out_of_descriptors_every_queued_client_is_closed_at_once",
                refuses_every_queued_client_and_keeps_doing_so,
            );
        });
    }

    fn keeps_what_fits_and_refuses_the_rest() {
        let (listener, mut clients) = listener_with_clients(3);
        let mut acceptor = Acceptor::new(listener).unwrap();
        set_room(1);
        let got = accept_ready(&mut acceptor, 3);
        assert_eq!(
            (got.conns.len(), got.refused),
            (1, 2),
            "3 clients queued, room for 1: keep 1, refuse 2. Keeping more means the spare's \
             number was free: open the spare again right after closing each refused connection"
        );
        closed_promptly(&mut clients[1..], "room for one");
        // The kept one works.
        let kept = &got.conns[0];
        clients[0].write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        nix::unistd::read(kept, &mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn with_room_for_one_it_keeps_one_and_refuses_the_rest() {
        within(LIMIT, "the test's own process to finish", || {
            in_own_process(
                "with_room_for_one_it_keeps_one_and_refuses_the_rest",
                keeps_what_fits_and_refuses_the_rest,
            );
        });
    }

    #[test]
    fn below_the_limit_it_accepts_every_queued_client_and_holds_a_spare() {
        within(LIMIT, "accept_ready with 3 clients queued", || {
            let (listener, _clients) = listener_with_clients(3);
            let before = lowest_free();
            let mut acceptor = Acceptor::new(listener).unwrap();
            assert!(
                lowest_free() > before,
                "Acceptor::new should open the spare descriptor (/dev/null) and keep it"
            );
            let got = acceptor.accept_ready().unwrap();
            assert_eq!(
                (got.conns.len(), got.refused),
                (3, 0),
                "3 clients queued and descriptors to spare: accept all 3"
            );
            let again = acceptor.accept_ready().unwrap();
            assert_eq!(
                (again.conns.len(), again.refused),
                (0, 0),
                "an empty queue: accept says EAGAIN, and accept_ready returns"
            );
        });
    }
}
