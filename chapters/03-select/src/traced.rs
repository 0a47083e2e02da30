//! [`Poller`] calls that print one transcript line each, from the real
//! result, and counted like lab-kit's traced system calls. They are the
//! lab's own methods, not system calls, so they use the `[tag] ... =>` form:
//! `[select backend] add(high, Token(2), READABLE) => error: ...` and
//! `[poll backend] wait(timeout=0) => [Token(1): readable|hangup]`.
//!
//! The backend's own system call prints its `->` line first (select, poll
//! or epoll_wait); the `wait` line under it shows the [`Event`]s the backend
//! made of the kernel's answer.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use lab_kit::name_of;
use lab_kit::trace::view;

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
    view("add", &tag(poller), || {
        format!(
            "add({}, {token:?}, {}) => {}",
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
    view("modify", &tag(poller), || {
        format!(
            "modify({}, {token:?}, {}) => {}",
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
    view("delete", &tag(poller), || {
        format!("delete({}) => {}", name_of(raw), shown(&r))
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
    view("wait", &tag(poller), || {
        let result = match &r {
            Ok(()) => {
                let list: Vec<String> = events.iter().map(event).collect();
                format!("[{}]", list.join(", "))
            }
            Err(e) => format!("error: {e}"),
        };
        format!(
            "wait(timeout={}) => {result}",
            lab_kit::trace::timeout(timeout)
        )
    });
    r
}

/// `select backend`: the tag of a backend method's line.
fn tag(poller: &impl Poller) -> String {
    format!("{} backend", poller.name())
}

fn shown(r: &io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    }
}
