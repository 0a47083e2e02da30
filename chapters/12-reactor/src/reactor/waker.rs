//! A waker: an eventfd in the reactor's epoll set, so another thread can
//! end its `epoll_wait` (mio's `Waker`, Redis's I/O threads' pipes).
//!
//! [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html): the
//! descriptor holds a 64-bit counter. `write` adds to it and makes it
//! readable; one `read` returns the sum and resets it to 0. So any number
//! of wakes before the reactor looks cost one event and one read.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use lab_kit::names::{name, name_of};
use lab_kit::trace::{emit, result};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::{Interest, Next, Reactor, Ready, Token};

/// Wakes the reactor from any thread. Cheap to clone.
#[derive(Clone)]
pub struct Waker {
    fd: Arc<EventFd>,
}

impl Waker {
    /// Adds 1 to the counter: the reactor's `epoll_wait` returns with an
    /// event for the waker. Printed only if this thread traces.
    pub fn wake(&self) -> nix::Result<()> {
        let r = self.fd.write(1);
        emit("write", || {
            let shown = result(&r, |n| n.to_string());
            format!("write({}, 1) -> {shown}", name_of(self.fd.as_raw_fd()))
        });
        r.map(drop)
    }
}

impl<S> Reactor<S> {
    /// Registers an eventfd named `waker`; each time it fires, the reactor
    /// reads the counter and calls `on_wake` with it (how many wakes).
    pub fn waker(
        &mut self,
        mut on_wake: impl FnMut(&mut Reactor<S>, u64) + 'static,
    ) -> nix::Result<Waker> {
        let flags = EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK;
        let r = EventFd::from_value_and_flags(0, flags);
        if let Ok(fd) = &r {
            name(fd, "waker");
        }
        emit("eventfd", || {
            let shown = result(&r, |fd| name_of(fd.as_raw_fd()));
            format!("eventfd(0, EFD_CLOEXEC|EFD_NONBLOCK) -> {shown}")
        });
        let fd = Arc::new(r?);
        let handler = move |reactor: &mut Reactor<S>, _: Token, _: Ready, theirs: &Arc<EventFd>| {
            // One read takes the whole counter: the eventfd is drained,
            // which is all EPOLLET asks.
            let r = theirs.read();
            emit("read", || {
                let shown = result(&r, |count| format!("8 (counter was {count})"));
                format!("read({}, 8) -> {shown}", name_of(theirs.as_raw_fd()))
            });
            if let Ok(count) = r {
                on_wake(reactor, count);
            }
            Next::Done
        };
        self.register_fn("waker", Arc::clone(&fd), Interest::Read, handler)?;
        Ok(Waker { fd })
    }
}
