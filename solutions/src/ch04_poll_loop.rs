//! # Chapter 04, exercise 2: read everything from several pipes at once
//!
//! Read first: the book's chapter 04 ("events in, revents out",
//! "Hang-ups nobody asked for" and "Pitfalls").
//!
//! Then [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
//! (POLLHUP, POLLERR, and EINTR under ERRORS). Run
//! `cargo run -p ch04-poll -- hangup`.
//!
//! [`read_all`] gets the read ends of some pipes (or sockets). Their writers
//! send whatever they send, in any order, then close. Read every source
//! until its end of file, watching them all at once with poll, and return
//! what each one sent, at its own index: in the order the sources were
//! given, whatever order they end in.
//!
//! Rules:
//! - poll blocks (no timeout) until something happens: no busy loop;
//! - read a source only when poll said so (any bit in its `revents`), once
//!   per poll: the sources are blocking, so reading one that is not ready
//!   would hang;
//! - a source is done when a read returns 0: take it out of the array and
//!   close it at once, so poll is never asked about it again and no
//!   descriptor is held for nothing;
//! - use `lab_kit::trace::poll` and `lab_kit::trace::read` (they behave
//!   like nix's and count the calls, which the tests check);
//! - a call interrupted by a signal (EINTR): make it again (poll again);
//!   any other error, of poll or of a read: return it.
//!
//! Check with `cargo lab check ch04_poll_loop`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use lab_kit::trace;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

/// Reads every source to its end of file; returns what each one sent.
pub fn read_all(sources: Vec<OwnedFd>) -> io::Result<Vec<Vec<u8>>> {
    let mut received = vec![Vec::new(); sources.len()];
    // (index in `sources`, descriptor) of the sources still open.
    let mut open: Vec<(usize, OwnedFd)> = sources.into_iter().enumerate().collect();
    let mut buf = [0u8; 4096];
    while !open.is_empty() {
        // Which sources can be read without blocking? Anything in revents
        // counts: POLLIN (data or end of file), but also POLLHUP, which a
        // pipe whose writers are gone reports *instead of* POLLIN once it
        // is empty, and POLLERR: the read tells what happened.
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = open
                .iter()
                .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                .collect();
            match trace::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            fds.iter()
                .map(|p| p.revents().is_none_or(|revents| !revents.is_empty()))
                .collect()
        };
        let mut finished = Vec::new();
        for (k, (index, fd)) in open.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            match trace::read(fd, &mut buf) {
                Ok(0) => finished.push(k),
                Ok(n) => received[*index].extend_from_slice(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Out of the array, then closed (dropping the OwnedFd): the next
        // poll never names a finished or closed descriptor.
        for k in finished.into_iter().rev() {
            open.remove(k);
        }
    }
    Ok(received)
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use lab_kit::proc::asleep_in;
    use lab_kit::trace::bytes;
    use lab_kit::watchdog::within;
    use nix::sys::pthread::{Pthread, pthread_kill, pthread_self};
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    use nix::unistd::Pid;

    /// A correct read_all finishes each test in well under 0.1 s.
    const LIMIT: Duration = Duration::from_secs(2);

    /// How long a test waits for read_all to fall asleep in poll (a correct
    /// one does within microseconds) before it gives up.
    const ASLEEP_WITHIN: Duration = Duration::from_secs(1);

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

    /// Each source's bytes as a quoted string: `["hello", "world!"]`.
    fn shown(sources: &[Vec<u8>]) -> String {
        let each: Vec<String> = sources.iter().map(|s| bytes(s)).collect();
        format!("[{}]", each.join(", "))
    }

    /// Fails unless read_all returned exactly `expected`, source by source.
    fn check(got: io::Result<Vec<Vec<u8>>>, expected: &[&[u8]], situation: &str) {
        let got = got.unwrap_or_else(|e| panic!("{situation}: read_all failed: {e}"));
        let expected: Vec<Vec<u8>> = expected.iter().map(|e| e.to_vec()).collect();
        assert!(
            got == expected,
            "{situation}: expected {}, got {}. Each source's bytes go to its own index \
             (the order the sources were given), whatever order they finish in",
            shown(&expected),
            shown(&got)
        );
    }

    /// A signal whose handler does nothing: its only effect is to interrupt
    /// the system call the thread sleeps in. poll is never restarted after
    /// a handler runs (signal(7)): it fails with EINTR.
    const INTERRUPT: Signal = Signal::SIGUSR2;

    extern "C" fn do_nothing(_: nix::libc::c_int) {}

    fn install_handler() {
        let action = SigAction::new(
            SigHandler::Handler(do_nothing),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler does nothing, which is async-signal-safe.
        unsafe { sigaction(INTERRUPT, &action) }.unwrap();
    }

    /// Why read_all must never sleep in read.
    const IN_READ: &str = "read_all sleeps in read(2) on a source that has nothing to \
        read yet. Read a source only when poll reported it (a non-zero revents), and only \
        once per poll: the sources are blocking, so such a read sleeps until that source's \
        writer writes or closes, and meanwhile nobody serves the others";

    /// read_all running on its own thread.
    struct Reader {
        thread: thread::JoinHandle<io::Result<Vec<Vec<u8>>>>,
        pthread: Pthread,
        tid: Pid,
    }

    fn start_reading(sources: Vec<OwnedFd>) -> Reader {
        let (ids_send, ids) = mpsc::channel::<(Pthread, Pid)>();
        let thread = thread::spawn(move || {
            ids_send
                .send((pthread_self(), nix::unistd::gettid()))
                .unwrap();
            read_all(sources)
        });
        let (pthread, tid) = ids.recv().unwrap();
        Reader {
            thread,
            pthread,
            tid,
        }
    }

    impl Reader {
        /// Waits (without sleeping) until read_all sleeps in poll, and
        /// fails at once if it sleeps in read instead. False if it returned,
        /// or never slept within ASLEEP_WITHIN (it is spinning).
        fn wait_until_asleep_in_poll(&self) -> bool {
            let start = Instant::now();
            while start.elapsed() < ASLEEP_WITHIN {
                if self.thread.is_finished() {
                    return false;
                }
                match asleep_in(self.tid).map(|a| a.number) {
                    Some(call) if call == nix::libc::SYS_read => panic!("{IN_READ}"),
                    Some(_) => return true,
                    None => thread::yield_now(),
                }
            }
            false
        }

        /// Waits (without sleeping) until read_all returns, and fails at
        /// once if it sleeps in read meanwhile.
        fn finish_never_in_read(self) -> io::Result<Vec<Vec<u8>>> {
            while !self.thread.is_finished() {
                if asleep_in(self.tid).map(|a| a.number) == Some(nix::libc::SYS_read) {
                    panic!("{IN_READ}");
                }
                thread::yield_now();
            }
            self.finish()
        }

        fn finish(self) -> io::Result<Vec<Vec<u8>>> {
            self.thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }
    }

    /// What it means when read_all never sleeps while nothing is ready.
    const NEVER_ASLEEP: &str = "read_all never slept in poll while no source was ready, \
        so it is spinning: poll must wait with PollTimeout::NONE (a zero timeout returns \
        at once, every time), and a source whose read returned 0 must leave the array \
        (poll reports its end of file, POLLHUP, or POLLNVAL once it is closed, at once on \
        every call)";

    #[test]
    fn reads_each_pipe_to_its_end() {
        let (got, polls, reads) = within(
            LIMIT,
            "read_all to return: both pipes hold a few bytes and their writers are gone. \
             If it spins: a source whose read returned 0 must leave the array (poll reports \
             its end of file again on every call), and POLLHUP alone also means: read now",
            || {
                let got = read_all(finished_pipes(&[b"hello", b"world!"]));
                (got, trace::count_of("poll"), trace::count_of("read"))
            },
        );
        check(
            got,
            &[b"hello", b"world!"],
            "two pipes that hold \"hello\" and \"world!\"",
        );
        assert!(
            polls >= 1 && reads >= 1,
            "{polls} calls of lab_kit::trace::poll and {reads} of lab_kit::trace::read were \
             counted: make the calls through trace::poll and trace::read"
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
        check(got, &[b""], "a pipe whose writer closed without writing");
    }

    #[test]
    fn poll_sleeps_until_a_source_is_ready() {
        let (asleep, got) = within(
            LIMIT,
            "read_all to return once the writer has written \"late\" and closed",
            || {
                let (r, w) = nix::unistd::pipe().expect("pipe");
                let reader = start_reading(vec![r]);
                // The writer writes only once read_all sleeps, waiting for it.
                let asleep = reader.wait_until_asleep_in_poll();
                if asleep {
                    nix::unistd::write(&w, b"late").expect("write");
                }
                drop(w);
                (asleep, reader.finish())
            },
        );
        assert!(
            asleep,
            "{NEVER_ASLEEP}. Here the only source was empty, its writer still there; \
             read_all returned {got:?}"
        );
        check(
            got,
            &[b"late"],
            "a pipe written once read_all slept in poll",
        );
    }

    #[test]
    fn a_finished_source_leaves_the_array() {
        let (asleep, got) = within(
            LIMIT,
            "read_all to return: sources 0 and 2 end at once, source 1 once read_all \
             sleeps in poll. Still running: a source whose read returned 0 is still in \
             the array, and its POLLHUP (or POLLNVAL, once closed) makes every poll return \
             at once",
            || {
                let (late, w) = nix::unistd::pipe().expect("pipe");
                let mut sources = finished_pipes(&[b"", b"early"]);
                sources.insert(1, late);
                let reader = start_reading(sources);
                let asleep = reader.wait_until_asleep_in_poll();
                if asleep {
                    nix::unistd::write(&w, b"late").expect("write");
                }
                drop(w);
                (asleep, reader.finish())
            },
        );
        assert!(
            asleep,
            "{NEVER_ASLEEP}. Here sources 0 and 2 had ended and source 1 was empty, its \
             writer still there; read_all returned {}",
            match &got {
                Ok(sources) => shown(sources),
                Err(e) => e.to_string(),
            }
        );
        check(
            got,
            &[b"", b"late", b"early"],
            "sources 0 and 2 had ended before source 1 got \"late\"",
        );
    }

    #[test]
    fn an_ended_source_is_closed_at_once() {
        let (asleep, closed, got) = within(
            LIMIT,
            "read_all to return once both sources have ended",
            || {
                // Source 0: a socket whose peer shuts down its side at once.
                let (peer, conn) = std::os::unix::net::UnixStream::pair().expect("socketpair");
                peer.shutdown(std::net::Shutdown::Write).expect("shutdown");
                peer.set_nonblocking(true).expect("O_NONBLOCK");
                // Source 1: a pipe whose writer stays until the check is done.
                let (late, w) = nix::unistd::pipe().expect("pipe");
                let reader = start_reading(vec![conn.into(), late]);
                let asleep = reader.wait_until_asleep_in_poll();
                // read_all sleeps in poll, so it has handled source 0's end of
                // file. If it closed that socket, the peer reads end of file
                // too; if not, its read finds nothing yet (EAGAIN).
                let closed = nix::unistd::read(&peer, &mut [0u8; 8]) == Ok(0);
                drop(w);
                (asleep, closed, reader.finish())
            },
        );
        assert!(asleep, "{NEVER_ASLEEP}");
        assert!(
            closed,
            "source 0 had ended (its read returned 0) and read_all went on waiting for \
             source 1, but source 0 was still open: its peer could not read end of file. \
             Close a source as soon as it ends (take its OwnedFd out of the array and let \
             it drop), not when read_all returns: a server that waits for that leaks a \
             descriptor per finished connection"
        );
        check(got, &[b"", b""], "two sources that end without sending");
    }

    #[test]
    fn a_source_poll_did_not_report_is_not_read() {
        let (got, b_data) = within(
            LIMIT,
            "read_all to return. Sources 0 and 2 hold one byte each and stay open (nothing \
             more to read, no end of file) until source 1's writer has sent all its 200 KB. \
             Still running means you read a source poll did not report, or read one again \
             after one poll: the pipes are blocking, so that read sleeps until its writer \
             writes or closes, which here waits for you. Read each source that poll \
             reported, once, then poll again",
            || {
                let (a, wa) = nix::unistd::pipe().expect("pipe");
                let (b, wb) = nix::unistd::pipe().expect("pipe");
                let (c, wc) = nix::unistd::pipe().expect("pipe");
                nix::unistd::write(&wa, b"a").expect("write");
                nix::unistd::write(&wc, b"c").expect("write");
                let b_data: Vec<u8> = (0..200_000u32).map(|n| n as u8).collect();
                let to_send = b_data.clone();
                let writer_b = thread::spawn(move || {
                    // More than a pipe holds (64 KiB): the writer needs the
                    // reader to make room, again and again.
                    let mut rest = &to_send[..];
                    while !rest.is_empty() {
                        let n = nix::unistd::write(&wb, rest).expect("write");
                        rest = &rest[n..];
                    }
                });
                let closer = thread::spawn(move || {
                    writer_b.join().expect("writer thread");
                    drop((wa, wc));
                });
                let got = start_reading(vec![a, b, c]).finish_never_in_read();
                closer.join().expect("closer thread");
                (got, b_data)
            },
        );
        check(
            got,
            &[b"a", &b_data, b"c"],
            "sources 0 and 2 sent \"a\" and \"c\", source 1 200 KB",
        );
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
        let expected: Vec<&[u8]> = expected.iter().map(Vec::as_slice).collect();
        check(got, &expected, "three writers, 200 KB each");
    }

    #[test]
    fn a_signal_does_not_end_the_loop() {
        install_handler();
        let (asleep, got) = within(
            LIMIT,
            "read_all to return once the writer has written \"late\" and closed",
            || {
                let (r, w) = nix::unistd::pipe().expect("pipe");
                let reader = start_reading(vec![r]);
                let mut asleep = reader.wait_until_asleep_in_poll();
                if asleep {
                    // Interrupt the poll; read_all should poll again.
                    let _ = pthread_kill(reader.pthread, INTERRUPT);
                    asleep = reader.wait_until_asleep_in_poll();
                    if asleep {
                        nix::unistd::write(&w, b"late").expect("write");
                    }
                }
                drop(w);
                (asleep, reader.finish())
            },
        );
        match got {
            Err(e) if e.raw_os_error() == Some(nix::libc::EINTR) => panic!(
                "read_all returned the error EINTR: a signal handler ran while poll slept. \
                 Nothing is wrong with the sources: poll again"
            ),
            got => {
                assert!(
                    asleep,
                    "after a signal interrupted poll, read_all did not sleep in poll again, \
                     and returned {}. EINTR means: poll again, as if nothing happened",
                    match &got {
                        Ok(sources) => shown(sources),
                        Err(e) => e.to_string(),
                    }
                );
                check(
                    got,
                    &[b"late"],
                    "a pipe written after a signal interrupted poll",
                );
            }
        }
    }

    #[test]
    fn a_read_error_is_returned() {
        let got = within(
            LIMIT,
            "read_all to return Err(EBADF). The source is a pipe's write end whose reader is \
             gone: poll reports POLLERR for it (not POLLIN), and the read fails with EBADF. \
             Still running: you skip a source whose revents holds no POLLIN, so poll reports \
             POLLERR again at once, forever. Any non-zero revents means: read, and see",
            || {
                let (r, w) = nix::unistd::pipe().expect("pipe");
                drop(r);
                read_all(vec![w])
            },
        );
        match got {
            Err(e) => assert_eq!(
                e.raw_os_error(),
                Some(nix::libc::EBADF),
                "reading a pipe's write end fails with EBADF; read_all returned {e}"
            ),
            Ok(sources) => panic!(
                "read_all returned Ok({}) although the read failed with EBADF: an error is \
                 not an end of file; return it",
                shown(&sources)
            ),
        }
    }

    #[test]
    fn no_sources_no_work() {
        let got = within(LIMIT, "read_all(vec![]) to return at once", || {
            read_all(Vec::new())
        });
        check(got, &[], "no sources");
    }
}
