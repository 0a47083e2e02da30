//! N watched descriptors, exactly one of them ready: what `waitbench`
//! measures a wait over.
//!
//! Each watched descriptor is one end of a Unix socketpair. A socket whose
//! peer is closed is readable (a read returns 0, end of file), so every
//! peer must stay open, and in a process of its own: this process then holds
//! one descriptor per watched socket, not two, and N can come close to the
//! open-file limit (`RLIMIT_NOFILE`, which counts per process). The
//! [`Keeper`] is that process: a child that receives each peer over a Unix
//! socket (`SCM_RIGHTS`, unix(7)) and keeps it open until this process
//! closes the control socket.
//!
//! One descriptor is ready (by default the last one made, the highest
//! number): one byte sits in its receive queue and is never read, so it
//! stays readable and every wait returns at once with exactly that one
//! (level-triggered).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork, write};

/// The helper process that keeps the watched sockets' peers open.
pub struct Keeper {
    /// Our end of the control socket; closing it ends the keeper.
    control: Option<OwnedFd>,
    pid: Pid,
}

impl Keeper {
    /// Forks the keeper. Call it before opening the descriptors to watch:
    /// a forked child inherits every descriptor open at that moment, and
    /// peers it inherited would count against its limit twice.
    pub fn start() -> nix::Result<Keeper> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        // SAFETY: the child only makes system calls (close, close_range,
        // recvmsg, _exit) and touches no lock or allocator, so it is safe
        // even if another thread of this process (a test harness) held one
        // at the fork.
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop(ours);
                close_all_but(theirs.as_raw_fd());
                keep_until_closed(theirs.as_raw_fd())
            }
            ForkResult::Parent { child } => {
                drop(theirs);
                Ok(Keeper {
                    control: Some(ours),
                    pid: child,
                })
            }
        }
    }

    /// Hands `peer` to the keeper (one `sendmsg` with `SCM_RIGHTS`); the
    /// caller may then close its copy: the socket stays open in the keeper.
    pub fn keep(&self, peer: &OwnedFd) -> nix::Result<()> {
        let control = self.control.as_ref().map_or(-1, |c| c.as_raw_fd());
        let fds = [peer.as_raw_fd()];
        sendmsg::<()>(
            control,
            &[IoSlice::new(b"f")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )?;
        Ok(())
    }
}

impl Drop for Keeper {
    /// Closes the control socket (the keeper's `recvmsg` returns 0 and it
    /// exits, closing every peer) and reaps it.
    fn drop(&mut self) {
        drop(self.control.take());
        let _ = waitpid(self.pid, None);
    }
}

/// In the freshly forked keeper: closes every inherited descriptor but
/// `control` (and 0-2). A fork copies the whole descriptor table, including
/// whatever another thread had open at that moment, for example another
/// keeper's control socket (two tests running at once). A keeper holding
/// another's control end would keep that keeper from ever seeing end of
/// file, and each parent would wait for its keeper forever.
/// close_range(2) (Linux 5.9) closes a range in one system call.
fn close_all_but(control: RawFd) {
    let control = control as nix::libc::c_uint;
    // SAFETY: plain system calls on descriptor numbers; nothing else in
    // this process uses them any more.
    unsafe {
        nix::libc::syscall(nix::libc::SYS_close_range, 3, control - 1, 0);
        nix::libc::syscall(
            nix::libc::SYS_close_range,
            control + 1,
            nix::libc::c_uint::MAX,
            0,
        );
    }
}

/// The keeper's whole life: receive descriptors and keep them, until the
/// other end of `control` is closed.
fn keep_until_closed(control: RawFd) -> ! {
    loop {
        let mut byte = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut byte)];
        // Room for one descriptor's control message (CMSG_SPACE(4) is 24).
        let mut cmsg = [0u8; 64];
        match recvmsg::<()>(control, &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
            // The descriptors arrived in our table; we keep them open by
            // never closing them.
            Ok(r) if r.bytes > 0 => {}
            Err(Errno::EINTR) => {}
            // 0 bytes: the measuring process closed its end. Exiting closes
            // every peer we hold.
            _ => break,
        }
    }
    // SAFETY: _exit(2) ends the process at once, without running this
    // forked copy's atexit handlers or destructors (they belong to the
    // parent).
    unsafe { nix::libc::_exit(0) }
}

/// N watched sockets, one of them ready to read.
pub struct WatchedSet {
    /// The watched ends, in the order they were made (numbers ascending).
    pub watched: Vec<OwnedFd>,
    ready: usize,
    /// Keeps every peer open; dropped after `watched`.
    _keeper: Keeper,
}

impl WatchedSet {
    /// Makes `n` socketpairs (n >= 1), keeps their peers in a [`Keeper`],
    /// and writes one byte into pair `ready` (< n), so exactly one watched
    /// socket is readable. Each peer is handed over and closed before the next pair
    /// is made, so the watched ends get consecutive low numbers (the freed
    /// number is reused, see open(2)), as select needs.
    pub fn new(n: usize, ready: usize) -> nix::Result<WatchedSet> {
        let keeper = Keeper::start()?;
        let mut watched = Vec::with_capacity(n);
        for i in 0..n {
            let (mine, peer) = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )?;
            if i == ready {
                write(&peer, b"x")?;
            }
            keeper.keep(&peer)?;
            drop(peer);
            watched.push(mine);
        }
        Ok(WatchedSet {
            watched,
            ready,
            _keeper: keeper,
        })
    }

    /// The index of the ready descriptor in [`WatchedSet::watched`].
    pub fn ready_index(&self) -> usize {
        self.ready
    }

    /// The highest descriptor number watched (select's `nfds` is one more).
    pub fn highest(&self) -> RawFd {
        self.watched
            .iter()
            .map(|fd| fd.as_raw_fd())
            .max()
            .unwrap_or(-1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    use std::time::Duration;

    /// Two sets (two keepers) alive at once, the first made dropped first:
    /// the order in which keepers used to wait for each other forever when
    /// the second one inherited the first's control socket (two tests
    /// running at once did exactly this).
    #[test]
    fn two_keepers_at_once_both_end() {
        within(
            Duration::from_secs(10),
            "two WatchedSets made one after the other, then dropped in that order",
            || {
                let first = WatchedSet::new(2, 0).unwrap();
                let second = WatchedSet::new(2, 1).unwrap();
                drop(first);
                drop(second);
            },
        );
    }

    #[test]
    fn exactly_one_socket_is_ready_and_the_peers_stay_open() {
        within(
            Duration::from_secs(10),
            "two WatchedSets made and dropped",
            exactly_one_ready,
        );
    }

    fn exactly_one_ready() {
        let set = WatchedSet::new(5, 4).unwrap();
        let mut fds: Vec<PollFd> = set
            .watched
            .iter()
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        // A closed peer would make its socket readable (end of file) and
        // report POLLHUP: only the one with a byte may show anything.
        assert_eq!(poll(&mut fds, PollTimeout::ZERO).unwrap(), 1);
        let shown: Vec<usize> = (0..fds.len())
            .filter(|&i| fds[i].revents().is_some_and(|r| !r.is_empty()))
            .collect();
        assert_eq!(shown, [set.ready_index()]);
        assert_eq!(fds[4].revents(), Some(PollFlags::POLLIN));
        let first = WatchedSet::new(3, 0).unwrap();
        let mut fds: Vec<PollFd> = first
            .watched
            .iter()
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        assert_eq!(poll(&mut fds, PollTimeout::ZERO).unwrap(), 1);
        assert_eq!(fds[0].revents(), Some(PollFlags::POLLIN));
        // Consecutive numbers, for select.
        let numbers: Vec<RawFd> = set.watched.iter().map(|fd| fd.as_raw_fd()).collect();
        assert_eq!(set.highest(), *numbers.iter().max().unwrap());
    }
}
