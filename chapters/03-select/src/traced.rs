//! [`Poller`] calls that print one transcript line each, from the real
//! result, like lab-kit's traced system calls (and counted the same way):
//! `select.add(high, Token(2), READABLE) -> error: fd 1024 is not below ...`
//! and `  poll.wait(timeout=0) -> [Token(1): readable|hangup]`.
//!
//! The backend's own system call prints its line first (select or poll);
//! the indented `wait` line under it shows the [`Event`]s the backend made
//! of the kernel's answer.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use lab_kit::name_of;
use lab_kit::trace::emit;

use crate::poller::{Event, Interest, Poller, Token};

/// `READABLE`, `WRITABLE`, `READABLE|WRITABLE` or `NONE`.
pub fn interest(interest: Interest) -> &'static str {
    match (interest.readable, interest.writable) {
        (true, true) => "READABLE|WRITABLE",
        (true, false) => "READABLE",
        (false, true) => "WRITABLE",
        (false, false) => "NONE",
    }
}

/// `Token(1): readable|hangup`.
pub fn event(e: &Event) -> String {
    let what: Vec<&str> = [
        (e.readable, "readable"),
        (e.writable, "writable"),
        (e.hangup, "hangup"),
        (e.error, "error"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, word)| *word)
    .collect();
    format!("{:?}: {}", e.token, what.join("|"))
}

/// [`Poller::add`], traced.
pub fn add(
    poller: &mut impl Poller,
    fd: impl AsFd,
    token: Token,
    wanted: Interest,
) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    let r = poller.add(raw, token, wanted);
    emit("add", || {
        format!(
            "{}.add({}, {token:?}, {}) -> {}",
            poller.name(),
            name_of(raw),
            interest(wanted),
            shown(&r)
        )
    });
    r
}

/// [`Poller::modify`], traced.
pub fn modify(
    poller: &mut impl Poller,
    fd: impl AsFd,
    token: Token,
    wanted: Interest,
) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    let r = poller.modify(raw, token, wanted);
    emit("modify", || {
        format!(
            "{}.modify({}, {token:?}, {}) -> {}",
            poller.name(),
            name_of(raw),
            interest(wanted),
            shown(&r)
        )
    });
    r
}

/// [`Poller::delete`], traced.
pub fn delete(poller: &mut impl Poller, fd: impl AsFd) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    let r = poller.delete(raw);
    emit("delete", || {
        format!(
            "{}.delete({}) -> {}",
            poller.name(),
            name_of(raw),
            shown(&r)
        )
    });
    r
}

/// [`Poller::wait`], traced: the events after the arrow.
pub fn wait(
    poller: &mut impl Poller,
    events: &mut Vec<Event>,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let r = poller.wait(events, timeout);
    emit("wait", || {
        let result = match &r {
            Ok(()) => {
                let list: Vec<String> = events.iter().map(event).collect();
                format!("[{}]", list.join(", "))
            }
            Err(e) => format!("error: {e}"),
        };
        format!(
            "  {}.wait(timeout={}) -> {result}",
            poller.name(),
            lab_kit::trace::timeout(timeout)
        )
    });
    r
}

fn shown(r: &io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    }
}
