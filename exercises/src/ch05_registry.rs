//! # Chapter 05, exercise 1: a registry with tokens and errors people understand
//!
//! Read first: the book's chapter 05 ("The three calls" and "When epoll_ctl
//! says no"), and the ERRORS section of
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
        // TODO: add `fd` to the interest list with EPOLL_CTL_ADD
        // (`self.epoll.add`), with a fresh token in the event's data; turn a
        // refusal into a RegistryError with `explain`; remember which fd the
        // token stands for; return the token.
        todo!("ch05: register")
    }

    /// Changes what the registration `token` is watched for.
    pub fn reregister(&mut self, token: Token, interest: EpollFlags) -> Result<(), RegistryError> {
        // TODO: find the fd behind `token` (unknown token: NotRegistered),
        // then EPOLL_CTL_MOD it (`self.epoll.modify`) with the new interest
        // and the same token. `BorrowedFd::borrow_raw` turns the stored
        // number back into a BorrowedFd (it is unsafe: say why it is fine).
        todo!("ch05: reregister")
    }

    /// Removes the registration `token`; its token is never handed out
    /// again. Call it before closing the descriptor.
    pub fn deregister(&mut self, token: Token) -> Result<(), RegistryError> {
        // TODO: EPOLL_CTL_DEL the fd behind `token`, then forget the token.
        todo!("ch05: deregister")
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
    // TODO: EEXIST, ENOENT, EPERM and EBADF each have a variant; anything
    // else is Other. (epoll_ctl(2), ERRORS, says when each happens.)
    todo!("ch05: explain")
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    const NOW: Duration = Duration::ZERO;

    #[test]
    fn events_come_back_with_the_token_register_returned() {
        let mut registry = Registry::new().unwrap();
        let (mut peer_a, a) = UnixStream::pair().unwrap();
        let (mut peer_b, b) = UnixStream::pair().unwrap();
        let token_a = registry.register(a.as_fd(), EpollFlags::EPOLLIN).unwrap();
        let token_b = registry.register(b.as_fd(), EpollFlags::EPOLLIN).unwrap();
        assert_ne!(
            token_a, token_b,
            "two registrations must get two different tokens"
        );

        peer_b.write_all(b"b").unwrap();
        let ready = registry.wait(NOW).unwrap();
        let tokens: Vec<Token> = ready.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            tokens,
            vec![token_b],
            "only b has data, so the one event must carry b's token: \
             put the token in EpollEvent's data when you register"
        );
        peer_a.write_all(b"a").unwrap();
        let mut tokens: Vec<Token> = registry
            .wait(NOW)
            .unwrap()
            .iter()
            .map(|(t, _)| *t)
            .collect();
        tokens.sort();
        let mut both = vec![token_a, token_b];
        both.sort();
        assert_eq!(tokens, both, "both have data now (level-triggered)");
    }

    #[test]
    fn registering_twice_says_already_registered() {
        let mut registry = Registry::new().unwrap();
        let (_peer, a) = UnixStream::pair().unwrap();
        registry.register(a.as_fd(), EpollFlags::EPOLLIN).unwrap();
        let again = registry.register(a.as_fd(), EpollFlags::EPOLLIN);
        let fd = a.as_raw_fd();
        assert_eq!(
            again,
            Err(RegistryError::AlreadyRegistered { fd }),
            "EPOLL_CTL_ADD of a registered fd fails with EEXIST; map it to AlreadyRegistered"
        );
        let message = again.unwrap_err().to_string();
        assert!(
            message.contains("already registered"),
            "the message should say what is wrong in words, got {message:?}"
        );
    }

    #[test]
    fn tokens_are_never_reused_even_for_the_same_fd() {
        let mut registry = Registry::new().unwrap();
        let (_peer, a) = UnixStream::pair().unwrap();
        let first = registry.register(a.as_fd(), EpollFlags::EPOLLIN).unwrap();
        assert!(registry.register(a.as_fd(), EpollFlags::EPOLLIN).is_err());
        registry.deregister(first).unwrap();
        let second = registry.register(a.as_fd(), EpollFlags::EPOLLIN).unwrap();
        assert_ne!(
            second, first,
            "tokens must never be reused, even for the same fd"
        );
        assert!(
            registry.reregister(first, EpollFlags::EPOLLIN).is_err(),
            "the old token was deregistered: reregister(old) must fail"
        );
    }

    #[test]
    fn a_regular_file_is_not_pollable() {
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
    }

    #[test]
    fn unknown_tokens_are_not_registered() {
        let mut registry = Registry::new().unwrap();
        assert_eq!(
            registry.reregister(Token(42), EpollFlags::EPOLLIN),
            Err(RegistryError::NotRegistered),
            "a token this registry never handed out: say NotRegistered (don't panic)"
        );
        assert_eq!(
            registry.deregister(Token(42)),
            Err(RegistryError::NotRegistered)
        );
    }

    #[test]
    fn reregister_changes_the_interest_and_deregister_stops_events() {
        let mut registry = Registry::new().unwrap();
        let (_peer, a) = UnixStream::pair().unwrap();
        let token = registry.register(a.as_fd(), EpollFlags::EPOLLIN).unwrap();
        assert_eq!(registry.wait(NOW).unwrap(), vec![], "nothing to read yet");
        registry.reregister(token, EpollFlags::EPOLLOUT).unwrap();
        assert_eq!(
            registry.wait(NOW).unwrap(),
            vec![(token, EpollFlags::EPOLLOUT)],
            "after reregister(EPOLLOUT) an idle socket is writable"
        );
        registry.deregister(token).unwrap();
        assert_eq!(
            registry.wait(NOW).unwrap(),
            vec![],
            "after deregister the kernel must report nothing for it: use EPOLL_CTL_DEL"
        );
    }
}
