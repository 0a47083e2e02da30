//! # Chapter 05, exercise 1: a registry with tokens and errors people understand
//!
//! Read first: the book's chapter 05 ("Your token in `data`" and
//! "When `epoll_ctl` says no"), and the ERRORS section of
//! [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html).
//! Run `cargo run -p ch05-epoll-api -- errors` to see each error happen.
//!
//! A [`Registry`] owns one epoll instance. `register` puts a descriptor in
//! the interest list and hands back a fresh [`Token`]; the token, not the
//! descriptor number, goes in `epoll_event.data`, and `wait` turns events
//! back into tokens. Tokens are never reused, so an event can never be
//! mistaken for a different connection that got the same fd number.
//!
//! When the kernel refuses, the caller should learn *why* in words, not as
//! a bare errno: turn EEXIST, ENOENT, EPERM and EBADF into the variants of
//! [`RegistryError`].
//!
//! Check with `cargo lab check ch05_registry`.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// Names one registration. Comes back with every event for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// Why the registry refused, in words a user understands.
#[derive(Debug, PartialEq, Eq)]
pub enum RegistryError {
    /// EEXIST: this descriptor is in the interest list already.
    AlreadyRegistered { fd: RawFd },
    /// ENOENT, or a token this registry never gave out (or took back).
    NotRegistered,
    /// EPERM: regular files and directories cannot be watched by epoll.
    NotPollable { fd: RawFd },
    /// EBADF: the descriptor is not open.
    NotOpen { fd: RawFd },
    /// Anything else the kernel said.
    Other(Errno),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::AlreadyRegistered { fd } => write!(
                f,
                "fd {fd} is already registered (EEXIST): use reregister to change its interest"
            ),
            RegistryError::NotRegistered => {
                write!(f, "not registered (ENOENT): register it first")
            }
            RegistryError::NotPollable { fd } => write!(
                f,
                "fd {fd} cannot be watched by epoll (EPERM): regular files and directories \
                 are always ready, read them directly"
            ),
            RegistryError::NotOpen { fd } => write!(f, "fd {fd} is not open (EBADF)"),
            RegistryError::Other(e) => write!(f, "epoll_ctl failed: {e}"),
        }
    }
}

impl std::error::Error for RegistryError {}

/// One epoll instance, with tokens in `data`.
pub struct Registry {
    epoll: Epoll,
    /// Which descriptor each live token stands for.
    fds: HashMap<Token, RawFd>,
    /// The next token to hand out. Tokens are never reused.
    next: u64,
}

impl Registry {
    /// A registry with a new, empty epoll instance.
    pub fn new() -> nix::Result<Registry> {
        Ok(Registry {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            fds: HashMap::new(),
            next: 1,
        })
    }

    /// Adds `fd` to the interest list for `interest` (EPOLLIN, EPOLLOUT, ...)
    /// and returns its new token.
    pub fn register(
        &mut self,
        fd: BorrowedFd<'_>,
        interest: EpollFlags,
    ) -> Result<Token, RegistryError> {
        let token = Token(self.next);
        self.epoll
            .add(fd, EpollEvent::new(interest, token.0))
            .map_err(|e| explain(e, fd.as_raw_fd()))?;
        // Only a registration the kernel accepted uses up a token.
        self.next += 1;
        self.fds.insert(token, fd.as_raw_fd());
        Ok(token)
    }

    /// Changes what the registration `token` is watched for.
    pub fn reregister(&mut self, token: Token, interest: EpollFlags) -> Result<(), RegistryError> {
        let fd = *self.fds.get(&token).ok_or(RegistryError::NotRegistered)?;
        // SAFETY: `fd` was registered through a BorrowedFd and the caller
        // promised to deregister before closing it; epoll_ctl only reads it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        self.epoll
            .modify(borrowed, &mut EpollEvent::new(interest, token.0))
            .map_err(|e| explain(e, fd))
    }

    /// Removes the registration `token`; its token is never handed out
    /// again. Call it before closing the descriptor.
    pub fn deregister(&mut self, token: Token) -> Result<(), RegistryError> {
        let fd = *self.fds.get(&token).ok_or(RegistryError::NotRegistered)?;
        // SAFETY: as in `reregister`.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        self.epoll.delete(borrowed).map_err(|e| explain(e, fd))?;
        self.fds.remove(&token);
        Ok(())
    }

    /// Waits up to `timeout` and returns the ready registrations with what
    /// is ready on each. (Given: nothing to do here.)
    pub fn wait(&self, timeout: Duration) -> nix::Result<Vec<(Token, EpollFlags)>> {
        let mut events = [EpollEvent::empty(); 16];
        let timeout = EpollTimeout::try_from(timeout).unwrap_or(EpollTimeout::MAX);
        let n = self.epoll.wait(&mut events, timeout)?;
        Ok(events[..n]
            .iter()
            .map(|e| (Token(e.data()), e.events()))
            .collect())
    }
}

/// Turns the kernel's errno for `fd` into a [`RegistryError`].
fn explain(e: Errno, fd: RawFd) -> RegistryError {
    match e {
        Errno::EEXIST => RegistryError::AlreadyRegistered { fd },
        Errno::ENOENT => RegistryError::NotRegistered,
        Errno::EPERM => RegistryError::NotPollable { fd },
        Errno::EBADF => RegistryError::NotOpen { fd },
        other => RegistryError::Other(other),
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use std::io::Write;
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::net::UnixStream;

    const NOW: Duration = Duration::ZERO;

    /// Every call here returns at once; this only stops a stuck test.
    const LIMIT: Duration = Duration::from_secs(2);

    /// A descriptor number above the highest one the kernel can ever hand
    /// out (fs.nr_open cannot go beyond 2^31 - 64), so it is never open.
    const NEVER_OPEN: RawFd = i32::MAX - 1;

    fn tokens(ready: &[(Token, EpollFlags)]) -> Vec<Token> {
        let mut tokens: Vec<Token> = ready.iter().map(|(t, _)| *t).collect();
        tokens.sort();
        tokens
    }

    #[test]
    fn events_come_back_with_the_token_register_returned() {
        within(LIMIT, "register and wait to return", || {
            let mut registry = Registry::new().unwrap();
            let (mut peer_a, a) = UnixStream::pair().unwrap();
            let (mut peer_b, b) = UnixStream::pair().unwrap();
            let (_peer_c, c) = UnixStream::pair().unwrap();
            let token_a = registry.register(a.as_fd(), EpollFlags::EPOLLIN).unwrap();
            let token_b = registry.register(b.as_fd(), EpollFlags::EPOLLIN).unwrap();
            let token_c = registry.register(c.as_fd(), EpollFlags::EPOLLIN).unwrap();
            assert!(
                token_a != token_b && token_b != token_c && token_a != token_c,
                "three registrations must get three different tokens, got {token_a:?}, \
                 {token_b:?}, {token_c:?}"
            );

            peer_b.write_all(b"b").unwrap();
            assert_eq!(
                tokens(&registry.wait(NOW).unwrap()),
                vec![token_b],
                "only b has data, so the one event must carry b's token ({token_b:?}): put \
                 the token in the EpollEvent's data when you register (not the fd number)"
            );
            peer_a.write_all(b"a").unwrap();
            assert_eq!(
                tokens(&registry.wait(NOW).unwrap()),
                tokens(&[
                    (token_a, EpollFlags::EPOLLIN),
                    (token_b, EpollFlags::EPOLLIN)
                ]),
                "a and b have data now (level-triggered): their two tokens"
            );
        });
    }

    #[test]
    fn registering_twice_says_already_registered() {
        within(LIMIT, "register to return", || {
            let mut registry = Registry::new().unwrap();
            let (_peer, a) = UnixStream::pair().unwrap();
            registry.register(a.as_fd(), EpollFlags::EPOLLIN).unwrap();
            let again = registry.register(a.as_fd(), EpollFlags::EPOLLIN);
            let fd = a.as_raw_fd();
            assert_eq!(
                again,
                Err(RegistryError::AlreadyRegistered { fd }),
                "EPOLL_CTL_ADD of a registered fd fails with EEXIST; map it to \
                 AlreadyRegistered"
            );
            let message = again.unwrap_err().to_string();
            assert!(
                message.contains("already registered"),
                "the message should say what is wrong in words, got {message:?}"
            );
        });
    }

    #[test]
    fn reregister_changes_the_interest_and_deregister_stops_events() {
        within(LIMIT, "reregister and deregister to return", || {
            let mut registry = Registry::new().unwrap();
            let (_peer_a, a) = UnixStream::pair().unwrap();
            let (_peer_b, b) = UnixStream::pair().unwrap();
            registry.register(a.as_fd(), EpollFlags::EPOLLIN).unwrap();
            let token = registry.register(b.as_fd(), EpollFlags::EPOLLIN).unwrap();
            assert_eq!(registry.wait(NOW).unwrap(), vec![], "nothing to read yet");
            registry
                .reregister(token, EpollFlags::EPOLLOUT)
                .unwrap_or_else(|e| {
                    panic!(
                        "reregister failed: {e}. It changes an existing registration: \
                         EPOLL_CTL_MOD (`self.epoll.modify`), not ADD"
                    )
                });
            assert_eq!(
                registry.wait(NOW).unwrap(),
                vec![(token, EpollFlags::EPOLLOUT)],
                "after reregister(EPOLLOUT) the idle socket is writable, and the event must \
                 carry the same token: MOD replaces the data too, so give it the token again"
            );
            registry.deregister(token).unwrap();
            assert_eq!(
                registry.wait(NOW).unwrap(),
                vec![],
                "after deregister the kernel must report nothing for it: use EPOLL_CTL_DEL"
            );
        });
    }

    #[test]
    fn unknown_tokens_are_not_registered() {
        within(LIMIT, "reregister and deregister to return", || {
            let mut registry = Registry::new().unwrap();
            let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (
                    registry.reregister(Token(42), EpollFlags::EPOLLIN),
                    registry.deregister(Token(42)),
                )
            }));
            let Ok((reregistered, deregistered)) = answers else {
                panic!(
                    "reregister or deregister of Token(42), a token this registry never \
                     handed out, panicked: look the token up with `get` and answer \
                     NotRegistered when it is missing"
                );
            };
            assert_eq!(
                reregistered,
                Err(RegistryError::NotRegistered),
                "reregister of a token this registry never handed out: say NotRegistered"
            );
            assert_eq!(
                deregistered,
                Err(RegistryError::NotRegistered),
                "deregister of a token this registry never handed out: say NotRegistered"
            );
        });
    }

    #[test]
    fn tokens_are_never_reused() {
        within(LIMIT, "register and deregister to return", || {
            let mut registry = Registry::new().unwrap();
            let (_peer, a) = UnixStream::pair().unwrap();
            let first = registry.register(a.as_fd(), EpollFlags::EPOLLIN).unwrap();
            assert!(registry.register(a.as_fd(), EpollFlags::EPOLLIN).is_err());
            registry.deregister(first).unwrap();
            let second = registry
                .register(a.as_fd(), EpollFlags::EPOLLIN)
                .unwrap_or_else(|e| {
                    panic!(
                        "registering the fd again after deregister failed: {e}. deregister \
                         must take it out of the interest list (EPOLL_CTL_DEL)"
                    )
                });
            assert_ne!(
                second, first,
                "the same fd, registered again after deregister, got the same token: tokens \
                 must never be reused. Count them with a counter that only goes up (a token \
                 made from the fd number, or from how many registrations are live, comes back)"
            );
            assert!(
                registry.reregister(first, EpollFlags::EPOLLIN).is_err(),
                "the old token was deregistered: reregister(old) must fail"
            );

            // Take back the newest and the oldest of several: no new token
            // may equal any that was handed out before.
            let pairs: Vec<(UnixStream, UnixStream)> =
                (0..3).map(|_| UnixStream::pair().unwrap()).collect();
            let mut given = vec![first, second];
            for (_, b) in &pairs {
                given.push(registry.register(b.as_fd(), EpollFlags::EPOLLIN).unwrap());
            }
            registry.deregister(given[4]).unwrap();
            registry.deregister(given[1]).unwrap();
            let (_peer_d, d) = UnixStream::pair().unwrap();
            let newest = registry.register(d.as_fd(), EpollFlags::EPOLLIN).unwrap();
            assert!(
                !given.contains(&newest),
                "tokens handed out so far: {given:?}, two of them taken back, and the next \
                 register returned {newest:?} again. Count tokens with a counter that only \
                 goes up (not the number of live registrations, nor the highest live token)"
            );
        });
    }

    #[test]
    fn a_regular_file_is_not_pollable() {
        within(LIMIT, "register to return", || {
            let mut registry = Registry::new().unwrap();
            let file = std::fs::File::open("/proc/self/status").unwrap();
            let result = registry.register(file.as_fd(), EpollFlags::EPOLLIN);
            assert_eq!(
                result,
                Err(RegistryError::NotPollable {
                    fd: file.as_raw_fd()
                }),
                "epoll refuses files that are always ready with EPERM; map it to NotPollable"
            );
        });
    }

    #[test]
    fn a_descriptor_that_is_not_open_is_not_open() {
        within(LIMIT, "register to return", || {
            let mut registry = Registry::new().unwrap();
            // SAFETY: no descriptor can have this number, and epoll_ctl only
            // looks the number up (and fails with EBADF); nothing reads
            // through it.
            let closed = unsafe { BorrowedFd::borrow_raw(NEVER_OPEN) };
            assert_eq!(
                registry.register(closed, EpollFlags::EPOLLIN),
                Err(RegistryError::NotOpen { fd: NEVER_OPEN }),
                "fd {NEVER_OPEN} is not open, so epoll_ctl fails with EBADF (as it does for \
                 a descriptor that was closed before DEL); map EBADF to NotOpen"
            );
        });
    }

    #[test]
    fn the_registration_belongs_to_the_open_file_not_the_number() {
        within(LIMIT, "reregister and deregister to return", || {
            let mut registry = Registry::new().unwrap();
            let (_peer_a, a) = UnixStream::pair().unwrap();
            let (_peer_b, b) = UnixStream::pair().unwrap();
            let mut a = OwnedFd::from(a);
            let token = registry.register(a.as_fd(), EpollFlags::EPOLLIN).unwrap();
            // dup2 makes a's number name b's socket. a's socket loses its
            // last descriptor, and its registration goes with it.
            nix::unistd::dup2(b.as_fd(), &mut a).unwrap();
            let reregistered = registry.reregister(token, EpollFlags::EPOLLOUT);
            assert!(
                reregistered.is_err(),
                "reregister succeeded, although the number behind the token now names another \
                 socket, which is not in the interest list: reregister must change an \
                 existing registration (EPOLL_CTL_MOD, which fails here), not add one"
            );
            assert_eq!(
                reregistered,
                Err(RegistryError::NotRegistered),
                "the number behind the token now names another socket, which is not in the \
                 interest list, so epoll_ctl(MOD) fails with ENOENT; map ENOENT to \
                 NotRegistered"
            );
            assert_eq!(
                registry.deregister(token),
                Err(RegistryError::NotRegistered),
                "the same for EPOLL_CTL_DEL: ENOENT is NotRegistered"
            );
        });
    }
}
