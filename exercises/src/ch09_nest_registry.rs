//! # Chapter 09, exercise 1: say what the user did
//!
//! Read first: the book's chapter 09 ("Cycles and the depth limit"), and
//! [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html),
//! ERRORS (EINVAL: "epfd is the same as fd"; ELOOP: "fd refers to an epoll
//! instance and this EPOLL_CTL_ADD operation would result in a circular
//! loop of epoll instances monitoring one another or a nesting depth of
//! epoll instances greater than 5"). Run
//! `cargo run -p ch09-nested-epoll -- cycle` and `-- depth-limit`.
//!
//! A [`Registry`] owns named epoll instances and nests them on request
//! ([`Registry::nest`]: `outer` watches `inner`). The kernel decides; the
//! registry explains. Its errno alone cannot say what went wrong: ELOOP is
//! both "a loop" and (since Linux 6.17) "too deep", and EINVAL is both "an
//! instance inside itself" and (before 6.17) "too deep". The registry knows
//! the links it made, so it can tell. Write:
//!
//! - [`Registry::nest`]: ask the kernel (`epoll_ctl(outer, ADD, inner,
//!   EPOLLIN)`, `data` = the inner id). If it accepts, remember the link
//!   (only then). If it refuses with ELOOP or EINVAL, say why:
//!   [`NestError::Itself`] if `outer` is `inner`; [`NestError::Cycle`] if
//!   `inner` already reaches `outer` through the links (with that path,
//!   `inner` first, `outer` last); else [`NestError::TooDeep`], with the
//!   length in links of the longest chain through the new link (the links
//!   above `outer`, plus 1, plus the links below `inner`). Any other
//!   refusal is [`NestError::Kernel`] with its errno.
//! - [`Registry::path`], [`Registry::links_below`], [`Registry::links_above`]:
//!   the walks over the remembered links that `nest` needs.
//!
//! Check with `cargo lab check ch09_nest_registry`.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

/// The longest chain of epoll-in-epoll links the kernel accepts
/// (`EP_MAX_NESTS` in fs/eventpoll.c): 5 instances, 4 links.
pub const MAX_LINKS: usize = 4;

/// An instance in the registry.
pub type Id = usize;

/// Why an instance could not watch another, in the user's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NestError {
    /// `outer` and `inner` are the same instance.
    Itself { name: String },
    /// `inner` already watches `outer`, through `path` (`inner` first).
    Cycle {
        outer: String,
        inner: String,
        path: Vec<String>,
    },
    /// The longest chain through the new link would have `links` links.
    TooDeep {
        outer: String,
        inner: String,
        links: usize,
    },
    /// Another refusal (EEXIST, EBADF...), as the kernel said it.
    Kernel {
        outer: String,
        inner: String,
        errno: Errno,
    },
}

impl fmt::Display for NestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NestError::Itself { name } => write!(
                f,
                "{name} cannot watch itself: an epoll instance inside itself is refused"
            ),
            NestError::Cycle { outer, inner, path } => write!(
                f,
                "{outer} cannot watch {inner}: {inner} already watches {outer} ({}), so the \
                 instances would watch one another in a loop",
                path.join(" -> ")
            ),
            NestError::TooDeep {
                outer,
                inner,
                links,
            } => write!(
                f,
                "{outer} cannot watch {inner}: the chain of epoll instances through it would \
                 be {links} links long, and the kernel allows {MAX_LINKS}"
            ),
            NestError::Kernel {
                outer,
                inner,
                errno,
            } => write!(f, "{outer} cannot watch {inner}: {}", errno.desc()),
        }
    }
}

/// Named epoll instances, and the links between them that the kernel
/// accepted.
pub struct Registry {
    instances: Vec<(String, Epoll)>,
    /// `(outer, inner)`: `outer` watches `inner`.
    links: Vec<(Id, Id)>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry {
            instances: Vec::new(),
            links: Vec::new(),
        }
    }

    /// A new epoll instance named `name`.
    pub fn create(&mut self, name: &str) -> nix::Result<Id> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        self.instances.push((name.to_string(), epoll));
        Ok(self.instances.len() - 1)
    }

    /// The name of instance `id`.
    pub fn name(&self, id: Id) -> &str {
        &self.instances[id].0
    }

    /// The descriptor of instance `id`.
    pub fn fd(&self, id: Id) -> BorrowedFd<'_> {
        self.instances[id].1.0.as_fd()
    }

    /// Instance `id` watches `fd` (a socket, a pipe: not an instance of
    /// this registry) for input, with `token` as its `data`.
    pub fn watch(&self, id: Id, fd: BorrowedFd<'_>, token: u64) -> nix::Result<()> {
        self.instances[id]
            .1
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
    }

    /// `outer` watches `inner`, if the kernel agrees; if not, why not.
    pub fn nest(&mut self, outer: Id, inner: Id) -> Result<(), NestError> {
        // TODO: epoll_ctl(outer, ADD, inner, EPOLLIN, data = inner id).
        // TODO: accepted: remember the link (only then).
        // TODO: ELOOP or EINVAL: Itself, Cycle (with the path from inner down
        //       to outer) or TooDeep (links above outer + 1 + links below
        //       inner). Any other errno: NestError::Kernel.
        todo!("ch09: nest")
    }

    /// A chain of links from `from` down to `to` (`from` watches ... watches
    /// `to`), both included, if there is one.
    pub fn path(&self, from: Id, to: Id) -> Option<Vec<Id>> {
        // TODO: follow the remembered links down from `from`.
        todo!("ch09: path")
    }

    /// The most links one can follow down from `id` (0 if it watches no
    /// instance).
    pub fn links_below(&self, id: Id) -> usize {
        // TODO: the longest chain of links down from `id`.
        todo!("ch09: links_below")
    }

    /// The most links one can follow up from `id` (0 if no instance
    /// watches it).
    pub fn links_above(&self, id: Id) -> usize {
        // TODO: the longest chain of links up from `id`.
        todo!("ch09: links_above")
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// A correct registry needs microseconds for any of these tests.
    const LIMIT: Duration = Duration::from_secs(2);

    /// The links the kernel holds, by name, read from each instance's
    /// interest list in /proc/self/fdinfo: the truth to compare with.
    fn kernel_links(reg: &Registry) -> Vec<(String, String)> {
        let ids: Vec<Id> = (0..reg.instances.len()).collect();
        let mut links = Vec::new();
        for &outer in &ids {
            let epoll = &reg.instances[outer].1;
            for entry in lab_kit::epoll::interest_list(epoll).unwrap() {
                if let Some(&inner) = ids.iter().find(|&&i| reg.fd(i).as_raw_fd() == entry.fd) {
                    links.push((reg.name(outer).to_string(), reg.name(inner).to_string()));
                }
            }
        }
        links.sort();
        links
    }

    /// The links the registry remembers, by name.
    fn remembered(reg: &Registry) -> Vec<(String, String)> {
        let mut links: Vec<(String, String)> = reg
            .links
            .iter()
            .map(|&(o, i)| (reg.name(o).to_string(), reg.name(i).to_string()))
            .collect();
        links.sort();
        links
    }

    fn assert_agrees_with_kernel(reg: &Registry, after: &str) {
        assert_eq!(
            remembered(reg),
            kernel_links(reg),
            "after {after}: the registry's links (left) differ from the kernel's (right, read \
             from /proc/self/fdinfo). Remember a link exactly when epoll_ctl returned 0: \
             every accepted ADD made one, a refused ADD made none"
        );
    }

    fn create(reg: &mut Registry, names: &[&str]) -> Vec<Id> {
        names.iter().map(|n| reg.create(n).unwrap()).collect()
    }

    /// `ep-1` watching a socket, and `ep-2` .. `ep-n` each watching the one
    /// before it.
    fn chain(reg: &mut Registry, n: usize, sock: &UnixStream) -> Vec<Id> {
        let names: Vec<String> = (1..=n).map(|i| format!("ep-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let ids = create(reg, &names);
        reg.watch(ids[0], sock.as_fd(), 999).unwrap();
        for pair in ids.windows(2) {
            reg.nest(pair[1], pair[0]).unwrap_or_else(|e| {
                panic!("a chain of {n} instances is within the limit, yet: {e}")
            });
        }
        ids
    }

    #[test]
    fn a_loop_is_called_a_cycle_and_says_where() {
        let (first, second, message) = within(LIMIT, "nest to return", || {
            let mut reg = Registry::new();
            let [e1, e2, e3] = create(&mut reg, &["e1", "e2", "e3"])[..] else {
                unreachable!()
            };
            reg.nest(e2, e1).expect("e1 inside e2 is allowed");
            let first = reg.nest(e1, e2);
            assert_agrees_with_kernel(&reg, "the refused e1 -> e2");
            reg.nest(e3, e2).expect("e2 inside e3 is allowed");
            let second = reg.nest(e1, e3);
            assert_agrees_with_kernel(&reg, "the refused e1 -> e3");
            let message = second.as_ref().err().map(ToString::to_string);
            (first, second, message)
        });
        let cycle = |outer: &str, inner: &str, path: &[&str]| {
            Err(NestError::Cycle {
                outer: outer.into(),
                inner: inner.into(),
                path: path.iter().map(|s| s.to_string()).collect(),
            })
        };
        assert_eq!(
            first,
            cycle("e1", "e2", &["e2", "e1"]),
            "e2 watches e1; e1 watching e2 closes a loop (the kernel said ELOOP). Say Cycle, \
             with the path from inner (e2) down to outer (e1) through the links you remembered"
        );
        assert_eq!(
            second,
            cycle("e1", "e3", &["e3", "e2", "e1"]),
            "e3 watches e2 watches e1; e1 watching e3 closes a longer loop"
        );
        assert!(message.unwrap().contains("e3 -> e2 -> e1"));
    }

    #[test]
    fn a_chain_too_deep_is_not_a_cycle() {
        let result = within(LIMIT, "nest to return", || {
            let (_peer, sock) = UnixStream::pair().unwrap();
            let mut reg = Registry::new();
            let ids = chain(&mut reg, 5, &sock);
            let top = reg.create("ep-6").unwrap();
            let result = reg.nest(top, ids[4]);
            assert_agrees_with_kernel(&reg, "the refused ep-6 -> ep-5");
            result
        });
        assert_eq!(
            result,
            Err(NestError::TooDeep {
                outer: "ep-6".into(),
                inner: "ep-5".into(),
                links: 5
            }),
            "ep-5 -> ep-4 -> ... -> ep-1 is 4 links; ep-6 watching ep-5 would make 5, more \
             than the kernel allows (it said ELOOP here; before Linux 6.17, EINVAL). Nothing \
             loops: say TooDeep, counting links (not instances): above outer + 1 + below inner"
        );
    }

    #[test]
    fn the_links_above_count_too() {
        let result = within(LIMIT, "nest to return", || {
            let (_peer, sock) = UnixStream::pair().unwrap();
            let (_peer2, sock2) = UnixStream::pair().unwrap();
            let mut reg = Registry::new();
            let ids = chain(&mut reg, 5, &sock);
            let below = reg.create("z").unwrap();
            reg.watch(below, sock2.as_fd(), 998).unwrap();
            reg.nest(ids[0], below)
        });
        assert_eq!(
            result,
            Err(NestError::TooDeep {
                outer: "ep-1".into(),
                inner: "z".into(),
                links: 5
            }),
            "ep-1 sits at the bottom of a 4-link chain; ep-1 watching z adds a 5th link \
             below it. Count the links above outer too: 4 + 1 + 0"
        );
    }

    #[test]
    fn an_instance_inside_itself() {
        let result = within(LIMIT, "nest to return", || {
            let mut reg = Registry::new();
            let e1 = reg.create("e1").unwrap();
            reg.nest(e1, e1)
        });
        assert_eq!(
            result,
            Err(NestError::Itself { name: "e1".into() }),
            "an instance watching itself (the kernel said EINVAL)"
        );
    }

    #[test]
    fn a_diamond_is_allowed_and_works() {
        let (results, reported) = within(LIMIT, "the diamond to be built", || {
            let mut reg = Registry::new();
            let [top, left, right, bottom] =
                create(&mut reg, &["top", "left", "right", "bottom"])[..]
            else {
                unreachable!()
            };
            let results = [
                reg.nest(left, bottom),
                reg.nest(right, bottom),
                reg.nest(top, left),
                reg.nest(top, right),
            ];
            assert_agrees_with_kernel(&reg, "the diamond");
            let (peer, sock) = UnixStream::pair().unwrap();
            reg.watch(bottom, sock.as_fd(), 999).unwrap();
            (&peer).write_all(b"w").unwrap();
            let mut events = [EpollEvent::empty(); 4];
            let n = reg.instances[top]
                .1
                .wait(&mut events, nix::sys::epoll::EpollTimeout::ZERO)
                .unwrap();
            (results, n)
        });
        assert!(
            results.iter().all(Result::is_ok),
            "top watches left and right, both watch bottom: two paths to bottom, no loop, \
             and the kernel allows it. The registry refused: {results:?}. Let the kernel \
             decide (a node seen twice is not a loop)"
        );
        assert_eq!(
            reported, 2,
            "one write under bottom reaches top through left and right"
        );
    }

    #[test]
    fn other_refusals_are_passed_on() {
        let result = within(LIMIT, "nest to return", || {
            let mut reg = Registry::new();
            let [e1, e2] = create(&mut reg, &["e1", "e2"])[..] else {
                unreachable!()
            };
            reg.nest(e2, e1).unwrap();
            reg.nest(e2, e1)
        });
        assert_eq!(
            result,
            Err(NestError::Kernel {
                outer: "e2".into(),
                inner: "e1".into(),
                errno: Errno::EEXIST
            }),
            "e2 already watches e1: the kernel said EEXIST, which is neither a loop nor a \
             depth. Pass other errnos on as NestError::Kernel"
        );
    }
}
