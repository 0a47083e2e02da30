//! Run something with a deadline; fail with a message that teaches instead of
//! hanging.
//!
//! A learner's wrong answer often blocks forever (one read too many on a
//! blocking socket, an event that never comes). Tests run such code through
//! [`within`], which fails after the limit with what was expected and where
//! to look, while the stuck thread is left behind (the test process ends
//! soon anyway).

use std::panic;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Runs `f` on its own thread and returns its result, or panics after
/// `limit` with `expected` (say what should have happened and where to look).
/// A panic inside `f` (a failed assertion, a `todo!()`) is passed on as is.
pub fn within<T, F>(limit: Duration, expected: &str, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (done, result) = mpsc::channel();
    let worker = thread::Builder::new()
        .name("watched".into())
        .spawn(move || {
            let value = f();
            let _ = done.send(value);
        })
        .expect("the watchdog could not start a thread");
    match result.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            // The worker ended without sending: it panicked.
            Err(payload) => panic::resume_unwind(payload),
            Ok(()) => unreachable!("the worker sends before it returns"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "watchdog: still running after {limit:?}: spinning or blocked.\n\
             Expected: {expected}"
        ),
    }
}
