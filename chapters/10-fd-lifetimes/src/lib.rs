//! Chapter 10: descriptor lifetimes. epoll registers an open file
//! description under a (file, number) key, not a number: `close` removes the
//! registration only with the last reference, a number the kernel hands out
//! again can meet an old registration, and an event cached in a batch can
//! name a connection an earlier event closed.
//!
//! - [`GenToken`]: a token that names a connection by its descriptor number
//!   *and* a generation, so an event for an earlier holder of the number is
//!   recognised and dropped.
//! - [`serve`]: chapter 03's echo loop on epoll with a spare descriptor for
//!   EMFILE, and chapter 06's SIGUSR1 statistics (wake-ups, calls).

use std::io;
use std::net::TcpListener;
use std::os::fd::RawFd;

use ch03_select::EchoServer;
use ch05_epoll_api::EpollPoller;

// ANCHOR: gen_token
/// An epoll `data` token made of a descriptor number (high 32 bits) and a
/// generation (low 32 bits) that grows with every connection, like a slab
/// key with a generation counter. The number finds the slot; the generation
/// says whether the event is for the connection in the slot now, or for an
/// earlier one that had the same number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenToken {
    pub fd: RawFd,
    pub generation: u32,
}

impl GenToken {
    /// The 64-bit `data` value the kernel stores and hands back.
    pub fn data(self) -> u64 {
        (u64::from(self.fd as u32) << 32) | u64::from(self.generation)
    }

    /// The token a `data` value came from.
    pub fn from_data(data: u64) -> GenToken {
        GenToken {
            fd: (data >> 32) as u32 as RawFd,
            generation: data as u32,
        }
    }
}
// ANCHOR_END: gen_token

// ANCHOR: serve
/// Serves `listener` forever: chapter 03's [`EchoServer`] on epoll, with a
/// spare descriptor for EMFILE. Prints `listening on ADDR`, then the loop's
/// log; on SIGUSR1 (install it first with
/// [`ch06_epoll_echo_server::install_stats_signal`]) a `stats:` line with
/// the number of wake-ups, so a test can see that it never spins.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    use ch06_epoll_echo_server::{stats_line, stats_requested};
    let addr = listener.local_addr()?;
    let mut server = EchoServer::new(EpollPoller::new()?, listener)?.with_spare_descriptor()?;
    println!("listening on {addr}");
    let mut wakeups: u64 = 0;
    loop {
        if stats_requested() {
            println!("{}", stats_line(wakeups, server.connection_count()));
        }
        match server.turn(None) {
            Ok(_) => wakeups += 1,
            // SIGUSR1 interrupted the wait: loop to the check.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
// ANCHOR_END: serve

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_keeps_its_number_and_generation() {
        let token = GenToken {
            fd: 7,
            generation: 3,
        };
        assert_eq!(token.data(), (7 << 32) | 3);
        assert_eq!(GenToken::from_data(token.data()), token);
    }
}
