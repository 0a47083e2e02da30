//! One client connection's protocol state: the seam between the server
//! (sockets, the clock) and the engine (parsing, commands, the key space).
//! Nothing here makes a system call or reads a clock: the server passes
//! the time in, so tests control it to the millisecond.

use crate::resp::Parser;
use crate::store::Db;
use crate::store::commands::{self, Client};

/// Milliseconds on the server's monotonic clock (the server passes e.g.
/// `Instant::elapsed` since it started).
pub type Millis = u64;

/// How much a client may make us hold, checked before anything is waited
/// for or allocated according to a length the client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Arguments in one command (`*<n>`). Redis 6.2 and earlier refused
    /// more than 1024*1024 ("invalid multibulk length"); Redis 7 allows up
    /// to INT_MAX and grows its argv as arguments arrive. We keep the old
    /// limit: no command here needs more.
    pub max_multibulk_len: usize,
    /// Bytes in one argument (`$<n>`). Redis's proto-max-bulk-len is 512 MB;
    /// ours is 64 MiB: one such value already costs 64 MiB of input buffer
    /// plus its stored copy, and a chapter's server need not hold more.
    pub max_bulk_len: usize,
    /// Bytes of an inline line, or of a `*`/`$` header line, without its
    /// line end: Redis's PROTO_INLINE_MAX_SIZE, 64 KiB.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_multibulk_len: 1024 * 1024,
            max_bulk_len: 64 * 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// What the connection must do after [`Session::handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Open,
    /// Close once `out` is flushed (QUIT after its +OK, or a protocol error
    /// after its -ERR reply).
    CloseAfterFlush,
}

/// One client connection's protocol state (an incremental parser: a frame
/// may be split anywhere).
pub struct Session {
    parser: Parser,
    client: Client,
}

impl Session {
    pub fn new(limits: Limits) -> Session {
        Session {
            parser: Parser::new(&limits),
            client: Client::default(),
        }
    }

    /// Executes every complete command at the front of `input` against
    /// `db`, appending each reply to `out` (so a pipelined batch's replies
    /// end up in one buffer = one write). Returns how many bytes of `input`
    /// were consumed (the caller drops exactly those; an incomplete tail
    /// stays, and the next call's `input` must start with it) and the Flow.
    /// Stops early (consumed < all complete commands) once
    /// `out.len() >= out_soft_limit`, so the server can stop reading while
    /// output is pending (chapter 06 backpressure).
    ///
    /// Never allocates according to an untrusted length before checking it
    /// against [`Limits`]. After a protocol error the whole input counts as
    /// consumed: the connection cannot find the next command's start.
    pub fn handle(
        &mut self,
        input: &[u8],
        db: &mut Db,
        now: Millis,
        out: &mut Vec<u8>,
        out_soft_limit: usize,
    ) -> (usize, Flow) {
        if self.client.id == 0 {
            self.client.id = db.next_client_id();
        }
        let mut consumed = 0;
        while out.len() < out_soft_limit {
            let rest = &input[consumed..];
            match self.parser.parse(rest) {
                Ok(Some(frame)) => {
                    let argv = self.parser.argv(rest, frame);
                    consumed += frame.len;
                    if commands::execute(argv, db, &mut self.client, now, out) {
                        return (consumed, Flow::CloseAfterFlush);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    e.write_reply(out);
                    return (input.len(), Flow::CloseAfterFlush);
                }
            }
        }
        (consumed, Flow::Open)
    }

    /// CLIENT ID of this connection (0 before its first `handle`).
    pub fn id(&self) -> u64 {
        self.client.id
    }

    /// CLIENT SETNAME of this connection, if any (for the server's log).
    pub fn name(&self) -> Option<&[u8]> {
        self.client.name.as_deref()
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
