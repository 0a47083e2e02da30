//! # Chapter 04, exercise 2: read everything from several pipes at once
//!
//! Read first: the book's chapter 04 ("events in, revents out", "Hang-ups
//! nobody asked for" and "Pitfalls"), and
//! [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html) (POLLHUP,
//! and "EINTR"). Run `cargo run -p ch04-poll -- hangup`.
//!
//! [`read_all`] gets the read ends of some pipes (or sockets). Their writers
//! send whatever they send, in any order, then close. Read every source
//! until its end of file, watching them all at once with poll, and return
//! what each one sent, in the order the sources were given.
//!
//! Rules:
//! - poll blocks (no timeout) until something happens: no busy loop;
//! - read a source only when poll said so (its `revents`), once per poll:
//!   the sources are blocking, so reading one that is not ready would hang;
//! - a source is done when a read returns 0: take it out of the array
//!   (and close it) so poll is never asked about it again;
//! - use `lab_kit::trace::poll` and `lab_kit::trace::read` (they behave
//!   like nix's and count the calls, which the tests check);
//! - poll interrupted by a signal (EINTR): poll again; other errors: return.
//!
//! Check with `cargo lab check ch04_poll_loop`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use lab_kit::trace;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

/// Reads every source to its end of file; returns what each one sent.
pub fn read_all(sources: Vec<OwnedFd>) -> io::Result<Vec<Vec<u8>>> {
    // TODO: loop while some sources are open: build the PollFd array for
    // them (POLLIN), poll with PollTimeout::NONE, read each source whose
    // revents say it is ready, and drop the ones whose read returned 0.
    todo!("ch04: poll a set of sources until all of them end")
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Duration;

    use lab_kit::watchdog::within;

    const LIMIT: Duration = Duration::from_secs(5);

    /// Pipes whose writers already wrote `contents[i]` and closed.
    fn finished_pipes(contents: &[&[u8]]) -> Vec<OwnedFd> {
        contents
            .iter()
            .map(|data| {
                let (r, w) = nix::unistd::pipe().expect("pipe");
                if !data.is_empty() {
                    nix::unistd::write(&w, data).expect("write");
                }
                r
            })
            .collect()
    }

    #[test]
    fn reads_each_pipe_to_its_end() {
        let (got, polls) = within(
            LIMIT,
            "read_all to return: both pipes hold a few bytes and their writers are gone. \
             If it spins: a source whose read returned 0 must leave the array (poll reports \
             its end of file again on every call), and POLLHUP alone also means: read now",
            || {
                let got = read_all(finished_pipes(&[b"hello", b"world!"]));
                (got, trace::count_of("poll"))
            },
        );
        let got = got.expect("read_all");
        assert_eq!(got, vec![b"hello".to_vec(), b"world!".to_vec()]);
        assert!(
            polls >= 1,
            "no call of lab_kit::trace::poll was counted: use trace::poll (and trace::read)"
        );
        assert!(
            polls <= 3,
            "{polls} poll calls for two pipes whose data and end of file are already there: \
             two should do (data, then end of file). A source whose read returned 0 must leave \
             the array, or every poll reports it again at once"
        );
    }

    #[test]
    fn a_writer_that_closes_without_writing_ends_its_source() {
        let got = within(
            LIMIT,
            "read_all to return: the pipe's only writer closed without writing. poll then \
             reports POLLHUP, not POLLIN (run `cargo run -p ch04-poll -- hangup`). If you \
             read only on POLLIN, you never read the 0 that ends the source, and since \
             POLLHUP comes back on every poll, the loop spins",
            || read_all(finished_pipes(&[b""])),
        );
        assert_eq!(got.expect("read_all"), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn many_writers_much_data_in_any_order() {
        let (got, expected) = within(
            LIMIT,
            "read_all to return once three writer threads have sent 200 KB each and closed. \
             A pipe holds 64 KiB, so the writers block until you read: read whichever source \
             poll says is ready, and never a source it did not report (that read would block)",
            || {
                let mut sources = Vec::new();
                let mut writers = Vec::new();
                let mut expected = Vec::new();
                for i in 0..3u8 {
                    let (r, w) = nix::unistd::pipe().expect("pipe");
                    let data: Vec<u8> = (0..200_000u32).map(|n| (n as u8) ^ (i * 85)).collect();
                    expected.push(data.clone());
                    sources.push(r);
                    writers.push(thread::spawn(move || {
                        let mut rest = &data[..];
                        while !rest.is_empty() {
                            let n = nix::unistd::write(&w, rest).expect("write");
                            rest = &rest[n..];
                        }
                        // Dropping w closes the pipe's only writer.
                    }));
                }
                let got = read_all(sources);
                for writer in writers {
                    writer.join().expect("writer thread");
                }
                (got, expected)
            },
        );
        let got = got.expect("read_all");
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                g == e,
                "source {i}: got {} bytes, expected {}, or different bytes",
                g.len(),
                e.len()
            );
        }
    }

    #[test]
    fn no_sources_no_work() {
        let got = within(LIMIT, "read_all(vec![]) to return at once", || {
            read_all(Vec::new())
        });
        assert_eq!(got.expect("read_all"), Vec::<Vec<u8>>::new());
    }
}
