//! TEMPORARY stand-in for the command engine (`session.rs`, `store/`),
//! which another helper writes: it answers PING only, so the server can be
//! built and tested before the engine is merged. Delete this file then.

/// Milliseconds on the server's monotonic clock.
pub type Millis = u64;

/// Limits on what a client may send.
pub struct Limits {
    pub max_multibulk_len: usize,
    pub max_bulk_len: usize,
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_multibulk_len: 1024 * 1024,
            max_bulk_len: 512 * 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// What the connection must do after `handle`.
pub enum Flow {
    Open,
    CloseAfterFlush,
}

/// The stand-in database: empty.
#[derive(Default)]
pub struct Db;

impl Db {
    pub fn new() -> Db {
        Db
    }
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    pub fn active_expire(&mut self, _now: Millis, _sample: usize) -> usize {
        0
    }
}

/// Answers `PING` (inline or as a one-element array), nothing else.
pub struct Session {
    limits: Limits,
}

fn line(input: &[u8]) -> Option<usize> {
    input.windows(2).position(|w| w == b"\r\n")
}

impl Session {
    pub fn new(limits: Limits) -> Session {
        Session { limits }
    }

    pub fn handle(
        &mut self,
        input: &[u8],
        _db: &mut Db,
        _now: Millis,
        out: &mut Vec<u8>,
        out_soft_limit: usize,
    ) -> (usize, Flow) {
        let mut at = 0;
        while at < input.len() && out.len() < out_soft_limit {
            let rest = &input[at..];
            if rest[0] == b'*' {
                let Some(end) = line(rest) else { break };
                let count: usize = std::str::from_utf8(&rest[1..end])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(usize::MAX);
                if count > self.limits.max_multibulk_len {
                    out.extend_from_slice(b"-ERR Protocol error: invalid multibulk length\r\n");
                    return (input.len(), Flow::CloseAfterFlush);
                }
                let mut pos = end + 2;
                let mut first: Option<&[u8]> = None;
                let mut complete = true;
                for _ in 0..count {
                    let Some(e) = line(&rest[pos..]) else {
                        complete = false;
                        break;
                    };
                    let len: usize = std::str::from_utf8(&rest[pos + 1..pos + e])
                        .ok()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    let start = pos + e + 2;
                    if rest.len() < start + len + 2 {
                        complete = false;
                        break;
                    }
                    first.get_or_insert(&rest[start..start + len]);
                    pos = start + len + 2;
                }
                if !complete {
                    break;
                }
                reply(first.unwrap_or(b""), out);
                at += pos;
            } else {
                let Some(end) = line(rest) else { break };
                reply(rest[..end].split(|&b| b == b' ').next().unwrap_or(b""), out);
                at += end + 2;
            }
        }
        (at, Flow::Open)
    }
}

fn reply(command: &[u8], out: &mut Vec<u8>) {
    if command.eq_ignore_ascii_case(b"PING") {
        out.extend_from_slice(b"+PONG\r\n");
    } else if command.eq_ignore_ascii_case(b"CONFIG") {
        // What redis-benchmark needs at startup: an array of two.
        out.extend_from_slice(b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    } else {
        out.extend_from_slice(b"-ERR unknown command (stand-in engine)\r\n");
    }
}
