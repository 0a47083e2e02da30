//! Descriptors by name.
//!
//! A transcript that says `read(conn-1, 64)` teaches; one that says
//! `read(7, 64)` depends on what else the process had open. Every traced call
//! prints descriptors through [`name_of`]. Where the *number* is the lesson
//! (select's FD_SETSIZE, number reuse), [`number_of`] shows it relative to a
//! baseline taken at the start of the scenario, so it is the same on every
//! machine.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Mutex;

static NAMES: Mutex<BTreeMap<RawFd, String>> = Mutex::new(BTreeMap::new());
static BASELINE: Mutex<Option<RawFd>> = Mutex::new(None);

/// Gives `fd` a name for transcripts. A number the kernel hands out again
/// (after a close) simply gets the new name.
pub fn name(fd: impl AsFd, name: &str) {
    name_raw(fd.as_fd().as_raw_fd(), name);
}

/// Like [`name`], for a bare descriptor number.
pub fn name_raw(fd: RawFd, name: &str) {
    NAMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(fd, name.to_string());
}

/// The name of `fd`, or `fd N` (relative to the baseline, if one is set)
/// for a descriptor nobody named.
pub fn name_of(fd: RawFd) -> String {
    match NAMES.lock().unwrap_or_else(|e| e.into_inner()).get(&fd) {
        Some(name) => name.clone(),
        None => format!("fd {}", number_of(fd)),
    }
}

/// Remembers the lowest descriptor number that is free right now, so later
/// numbers print as `base+N`. Call it once, at the start of a scenario.
///
/// How: `dup(0)`-like probing would need stdin; opening `/dev/null` works
/// everywhere. POSIX guarantees open returns the lowest free number.
pub fn set_baseline() -> std::io::Result<RawFd> {
    let probe = std::fs::File::open("/dev/null")?;
    let base = probe.as_raw_fd();
    *BASELINE.lock().unwrap_or_else(|e| e.into_inner()) = Some(base);
    Ok(base)
}

/// `fd` as text: `base+3` when a baseline is set, else the plain number.
pub fn number_of(fd: RawFd) -> String {
    match *BASELINE.lock().unwrap_or_else(|e| e.into_inner()) {
        Some(base) if fd >= base => format!("base+{}", fd - base),
        Some(base) => format!("base-{}", base - fd),
        None => fd.to_string(),
    }
}

static TOKENS: Mutex<BTreeMap<u64, String>> = Mutex::new(BTreeMap::new());

/// Gives an epoll `data` token a name, so events print as `conn-1: EPOLLIN`
/// rather than `data=0x7`.
pub fn name_token(token: u64, name: &str) {
    TOKENS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token, name.to_string());
}

/// The name of a `data` token, or `0x7` in hex for a token nobody named.
pub fn token_name(token: u64) -> String {
    match TOKENS.lock().unwrap_or_else(|e| e.into_inner()).get(&token) {
        Some(name) => name.clone(),
        None => format!("{token:#x}"),
    }
}
