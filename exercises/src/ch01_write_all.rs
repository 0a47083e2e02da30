//! # Chapter 01, exercise 1: write every byte
//!
//! Read first: the book's chapter 01 ("The kernel's view" and "Pitfalls").
//!
//! Then the RETURN VALUE section of
//! [write(2)](https://man7.org/linux/man-pages/man2/write.2.html) ("the
//! number of bytes written may be less than count"), and "Interruption of
//! system calls and library functions by signal handlers" in
//! [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html).
//!
//! One `write` on a blocking socket sleeps while the socket's send buffer is
//! full. If a signal handler runs during that sleep, the call ends early:
//! with the count of bytes it had already queued (a *short write*), or, if
//! it had queued none and the handler was installed without `SA_RESTART`,
//! with the error EINTR (with `SA_RESTART` the kernel restarts the call
//! instead). Neither means the connection is broken; the tests install
//! their handler without `SA_RESTART`, so you will see both.
//!
//! Write [`write_all`]: write every byte of `data` to `fd`, going on after a
//! short write with the bytes that are left, and making the same call again
//! after EINTR. Any other error is returned to the caller.
//!
//! Check with `cargo lab check ch01_write_all`.

use std::os::fd::AsFd;

use nix::errno::Errno;

/// Writes all of `data` to `fd`, however many calls to
/// [write(2)](https://man7.org/linux/man-pages/man2/write.2.html) it takes.
pub fn write_all(fd: impl AsFd, data: &[u8]) -> nix::Result<()> {
    // TODO: loop while some of `data` is left: call
    // `nix::unistd::write(&fd, rest)`; on Ok(n) keep only the bytes after the
    // first n; on Err(Errno::EINTR) go round again; return any other error.
    todo!("ch01: write every byte, looping on short writes and EINTR")
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::proc::asleep_in;
    use lab_kit::trace::bytes;
    use lab_kit::watchdog::within;
    use nix::sys::pthread::{Pthread, pthread_kill, pthread_self};
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    use nix::unistd::Pid;
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    use std::thread;
    use std::time::{Duration, Instant};

    /// A correct write_all finishes each test in well under 0.1 s.
    const LIMIT: Duration = Duration::from_secs(2);

    /// A signal whose handler does nothing: its only effect is to interrupt
    /// a system call the thread is sleeping in. Installed without
    /// SA_RESTART, so an interrupted write that queued nothing returns EINTR.
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

    /// Runs `write_all(writer, data)` on its own thread while nobody reads,
    /// so the socket buffer fills and the write sleeps. Each time the writer
    /// is asleep, it is interrupted by a signal, `interruptions` times:
    /// the first interruption lands after part of the buffer was queued
    /// (write(2) then returns a short count), later ones before any byte
    /// could be queued (write(2) then fails with EINTR). Then everything is
    /// read until end of file (the writer closes its socket when write_all
    /// returns). Returns write_all's result and the bytes that arrived.
    fn write_all_interrupted(data: Vec<u8>, interruptions: usize) -> (nix::Result<()>, Vec<u8>) {
        install_handler();
        let (mut reader, writer) = UnixStream::pair().unwrap();
        let (ids_send, ids) = std::sync::mpsc::channel::<(Pthread, Pid)>();
        let writing = thread::spawn(move || {
            ids_send
                .send((pthread_self(), nix::unistd::gettid()))
                .unwrap();
            let result = write_all(&writer, &data);
            drop(writer);
            result
        });
        let (pthread, tid) = ids.recv().unwrap();
        for _ in 0..interruptions {
            // Wait (without sleeping ourselves) until the writer sleeps in
            // the kernel, or has finished (or 1 s has passed: it spins).
            let start = Instant::now();
            while !writing.is_finished()
                && asleep_in(tid).is_none()
                && start.elapsed() < Duration::from_secs(1)
            {
                thread::yield_now();
            }
            if writing.is_finished() {
                break;
            }
            let _ = pthread_kill(pthread, INTERRUPT);
            // pthread_kill has woken the writer by the time it returns, so
            // the next sleep seen is a new one.
        }
        let mut received = Vec::new();
        // Reads until the writer's end is closed, that is until write_all
        // returns (a write_all that never returns is the watchdog's job).
        reader.read_to_end(&mut received).unwrap();
        let result = writing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (result, received)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Where two byte strings first differ, for a message.
    fn first_difference(got: &[u8], sent: &[u8]) -> usize {
        got.iter()
            .zip(sent)
            .position(|(g, s)| g != s)
            .unwrap_or(got.len().min(sent.len()))
    }

    #[test]
    fn writes_a_small_buffer() {
        let (result, received) = within(
            LIMIT,
            "write_all of 5 bytes to an empty socket to return at once \
             (if it loops: stop once every byte is written)",
            move || {
                let (mut reader, writer) = UnixStream::pair().unwrap();
                let result = write_all(&writer, b"hello");
                drop(writer);
                let mut received = Vec::new();
                reader.read_to_end(&mut received).unwrap();
                (result, received)
            },
        );
        assert_eq!(result, Ok(()), "write_all(b\"hello\") should succeed");
        assert!(
            received == b"hello",
            "the reader got {} instead of \"hello\"",
            bytes(&received)
        );
    }

    #[test]
    fn keeps_writing_after_a_short_write() {
        let (result, received) = within(
            LIMIT,
            "write_all of 1 MiB, interrupted once, to finish once the reader drains the \
             socket. If it never finishes, it keeps writing: after a short write of n \
             bytes, go on with the rest, data[n..], and stop when nothing is left",
            move || write_all_interrupted(pattern(1024 * 1024), 1),
        );
        let sent = pattern(1024 * 1024);
        assert_eq!(
            result,
            Ok(()),
            "write_all should succeed even when a signal interrupts it"
        );
        assert!(
            received.len() == sent.len(),
            "the reader got {} of {} bytes. A signal interrupted write(2) after it \
             had queued part of the buffer, so write returned that smaller count, \
             and write_all stopped (or started over). write(2), RETURN VALUE: the \
             count is what was written; loop on data[written..] until nothing is left.",
            received.len(),
            sent.len()
        );
        assert!(
            received == sent,
            "the reader got {} bytes, as many as were sent, but not the same ones (first \
             difference at byte {}): after a short write of n bytes, the first n are \
             sent; go on with data[n..], the bytes after them",
            received.len(),
            first_difference(&received, &sent)
        );
    }

    #[test]
    fn retries_eintr() {
        let (result, received) = within(
            LIMIT,
            "write_all of 1 MiB, interrupted three times, to finish once the reader drains \
             the socket",
            move || write_all_interrupted(pattern(1024 * 1024), 3),
        );
        let sent = pattern(1024 * 1024);
        assert_eq!(
            result,
            Ok(()),
            "a signal interrupted a write(2) that had not queued any byte yet, so it \
             failed with EINTR (signal(7), 'Interruption of system calls'). Nothing \
             was written: that is no reason to give up. Retry the same write on EINTR."
        );
        assert!(
            received == sent,
            "write_all returned Ok but the reader got {} of {} bytes (first difference at \
             byte {}). EINTR means that write queued nothing: make the same call again, \
             don't return Ok before every byte is written",
            received.len(),
            sent.len(),
            first_difference(&received, &sent)
        );
    }

    #[test]
    fn returns_other_errors() {
        let result = within(
            LIMIT,
            "write_all to a socket whose peer is gone to return an error at once, \
             not to retry forever (only EINTR is worth retrying)",
            move || {
                let (reader, writer) = UnixStream::pair().unwrap();
                drop(reader);
                write_all(&writer, b"nobody is listening")
            },
        );
        assert_eq!(
            result,
            Err(Errno::EPIPE),
            "writing to a socket whose peer closed fails with EPIPE; write_all should return it"
        );
    }
}
