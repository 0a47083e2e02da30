//! Chapter 09: nested epoll.
//!
//! An epoll instance is a file, so another epoll instance can watch it. This
//! crate holds what the scenarios share: [`Inbox`], a tiny "library" with an
//! event loop of its own (its own epoll instance, a group of connections it
//! reads) that shows the world only one descriptor, the way a resolver, a
//! database driver or systemd's sd-event do; and [`Mode`] from chapter 07
//! for the two edges of a nest.
//!
//! Everything goes through `lab_kit::trace` and `lab_kit::epoll`, so a
//! scenario shows every call the library makes on its own instance too.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub use ch07_level_vs_edge::Mode;
use lab_kit::epoll::{self, Op};
use lab_kit::names::name_token;
use lab_kit::trace;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

/// How [`Inbox::dispatch`] treats its own ready list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Handle one event (`epoll_wait(inbox, max=1, timeout=0)`) and return:
    /// the mistake. Whatever else is ready stays on the inbox's ready list.
    OneEvent,
    /// Wait on its own instance with timeout 0 until it reports nothing: the
    /// inbox's ready list is empty when `dispatch` returns.
    Drain,
}

// ANCHOR: inbox
/// A library with its own event loop: it owns an epoll instance and the
/// connections registered in it, and shows its user only [`Inbox::fd`]. The
/// user puts that descriptor into their own epoll and calls
/// [`Inbox::dispatch`] whenever it is reported readable.
pub struct Inbox {
    epoll: Epoll,
    connections: BTreeMap<u64, UnixStream>,
}

impl Inbox {
    /// A new inbox with its own epoll instance, named `name`.
    pub fn new(name: &str) -> nix::Result<Inbox> {
        let epoll = epoll::create1(EpollCreateFlags::EPOLL_CLOEXEC, name)?;
        Ok(Inbox {
            epoll,
            connections: BTreeMap::new(),
        })
    }

    /// The one descriptor the library hands out: its epoll instance. It is
    /// readable while one of the library's connections is really ready.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }

    /// Takes a connection (made non-blocking) and watches it for input,
    /// level-triggered, with `token` as its `data`.
    pub fn add(&mut self, token: u64, name: &str, conn: UnixStream) -> nix::Result<()> {
        name_token(token, name);
        ch02_nonblocking_io::set_nonblocking(&conn)?;
        epoll::ctl(
            &self.epoll.0,
            Op::Add,
            conn.as_raw_fd(),
            EpollFlags::EPOLLIN,
            token,
        )?;
        self.connections.insert(token, conn);
        Ok(())
    }

    /// The connection registered under `token`, to look at it.
    pub fn connection(&self, token: u64) -> Option<&UnixStream> {
        self.connections.get(&token)
    }

    /// Runs the library's loop without blocking: waits on its own instance
    /// with timeout 0 and reads each reported connection until EAGAIN.
    /// Returns the number of events it handled.
    pub fn dispatch(&mut self, how: Dispatch) -> nix::Result<usize> {
        let mut handled = 0;
        loop {
            let mut events = [EpollEvent::empty(); 8];
            let room = match how {
                Dispatch::OneEvent => 1,
                Dispatch::Drain => events.len(),
            };
            // Timeout 0: dispatch is called because the fd was readable;
            // it must never sleep inside the user's loop.
            let n = epoll::wait(&self.epoll, &mut events[..room], Some(Duration::ZERO))?;
            for event in &events[..n] {
                if let Some(conn) = self.connections.get(&event.data()) {
                    read_until_eagain(conn)?;
                    handled += 1;
                }
            }
            if how == Dispatch::OneEvent || n == 0 {
                return Ok(handled);
            }
        }
    }
}
// ANCHOR_END: inbox

/// Reads `conn` 64 bytes at a time until EAGAIN (or end of file).
fn read_until_eagain(conn: &UnixStream) -> nix::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        match trace::read(conn, &mut buf) {
            Ok(0) | Err(Errno::EAGAIN) => return Ok(()),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
