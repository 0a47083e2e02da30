//! # Chapter 12, exercise 1: an incremental RESP parser
//!
//! Read first: the book's chapter 12 ("The parser: bytes in, commands out"
//! and "Limits: refuse before you allocate"), and the RESP specification's
//! "Sending commands to a Redis server" and "Bulk strings"
//! (<https://redis.io/docs/latest/develop/reference/protocol-spec/>).
//! Run `printf '*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n' | nc -q1 127.0.0.1 6380`
//! against the chapter's server.
//!
//! A client sends each command as an array of bulk strings:
//!
//! ```text
//! *3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n
//! ```
//!
//! `*3` says three arguments follow; each is `$<length>\r\n`, then exactly
//! that many bytes (any bytes, `\r\n` included), then `\r\n`.
//!
//! TCP delivers a byte stream, not messages: one `read` may return half a
//! command, or ten pipelined commands and the first bytes of the eleventh.
//! The server hands you whatever each `read` returned ([`RespParser::feed`]),
//! then asks for commands ([`RespParser::next_command`]) until you say
//! "not complete yet". Write `next_command`:
//!
//! - return `Ok(Some(args))` for the complete command at the front of what
//!   was fed, and remove exactly its bytes: what follows is the next command
//!   (or its first part);
//! - return `Ok(None)` while the command at the front is not complete; keep
//!   its bytes, more will be fed;
//! - the lengths come from the client: check them against [`Limits`] as soon
//!   as their line is complete, before you reserve memory or wait for data
//!   according to them. A count beyond `max_args` is
//!   [`ProtocolError::InvalidMultibulkLength`], a bulk length beyond
//!   `max_bulk_len` (or negative: `$-1`, the null bulk string, exists only
//!   in replies) is [`ProtocolError::InvalidBulkLength`], an argument that
//!   does not start with `$` is [`ProtocolError::ExpectedDollar`];
//! - `$0\r\n\r\n` is an empty argument, and a bulk string's end is found by
//!   its length, never by looking for `\r\n`;
//! - `*0\r\n` is an empty command: `Ok(Some(vec![]))`;
//! - a command that does not start with `*` is
//!   [`ProtocolError::ExpectedStar`] (Redis would read it as an inline
//!   command, a line of words; the chapter's server does, this parser not).
//!
//! The helpers [`line_at`] and [`parse_number`] are written for you.
//!
//! Check with `cargo lab check ch12_resp_parser`.

/// How much one command may make the server hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Arguments in one command (`*<n>`).
    pub max_args: usize,
    /// Bytes in one argument (`$<n>`).
    pub max_bulk_len: usize,
}

/// Input that is not RESP. Redis replies `-ERR Protocol error: ...` (the
/// `Display` text below) and closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    InvalidMultibulkLength,
    InvalidBulkLength,
    ExpectedDollar(u8),
    /// This exercise's own error (see above): not a Redis text.
    ExpectedStar(u8),
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::InvalidMultibulkLength => {
                write!(f, "ERR Protocol error: invalid multibulk length")
            }
            ProtocolError::InvalidBulkLength => {
                write!(f, "ERR Protocol error: invalid bulk length")
            }
            ProtocolError::ExpectedDollar(got) => {
                write!(
                    f,
                    "ERR Protocol error: expected '$', got '{}'",
                    *got as char
                )
            }
            ProtocolError::ExpectedStar(got) => {
                write!(
                    f,
                    "ERR Protocol error: expected '*', got '{}'",
                    *got as char
                )
            }
        }
    }
}

/// The line that starts at `buf[from]` and ends with `\r\n`: its text
/// (without the `\r\n`) and the index just after the `\n`. `None` if the
/// line is not complete yet.
pub fn line_at(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let len = buf.get(from..)?.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[from..from + len], from + len + 2))
}

/// A decimal number as Redis reads it: an optional `-`, then digits.
/// `None` if the text is anything else (or does not fit in an `i64`).
pub fn parse_number(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text)
        .ok()?
        .parse()
        .ok()
        .filter(|_| !text.starts_with(b"+"))
}

/// The parser of one connection.
pub struct RespParser {
    limits: Limits,
    /// Everything fed and not yet returned as a command.
    buf: Vec<u8>,
}

impl RespParser {
    pub fn new(limits: Limits) -> RespParser {
        RespParser {
            limits,
            buf: Vec::new(),
        }
    }

    /// Adds the bytes one `read` returned.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// How many bytes were fed and not yet returned as a command.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete command, removed from the buffer; `Ok(None)` if the
    /// command at the front is not complete yet.
    pub fn next_command(&mut self) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
        // TODO: nothing fed: Ok(None). A first byte other than `*`: ExpectedStar.
        // The header line `*<count>` (line_at from index 1; no complete
        // line yet: Ok(None)); check the count against the limits. Then for
        // each argument: its `$<len>` line, checked, then len bytes and \r\n
        // (not all there yet: Ok(None), keeping everything). Once the whole
        // command is there: remove exactly its bytes and return it.
        todo!("ch12: parse one command, or say it is not complete yet")
    }
}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    use super::*;
    use lab_kit::watchdog::within;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::time::Duration;

    /// A correct parser answers within microseconds.
    const LIMIT: Duration = Duration::from_secs(3);
    const STUCK: &str = "next_command to return: a loop that never ends? Each call looks at what \
                         was fed once and answers Some, None or Err";

    const LIMITS: Limits = Limits {
        max_args: 1024,
        max_bulk_len: 1024 * 1024,
    };

    // Every allocation of the thread that runs the test is counted, so the
    // tests can see memory reserved according to a length from the client.
    struct Counting;
    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// The largest single allocation `f` made on this thread, and its result.
    fn largest_allocation<R>(f: impl FnOnce() -> R) -> (usize, R) {
        LARGEST.with(|l| l.set(0));
        let r = f();
        (LARGEST.with(Cell::get), r)
    }

    type Command = Vec<Vec<u8>>;

    fn command(args: &[&[u8]]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    fn show(bytes: &[u8]) -> String {
        bytes.escape_ascii().to_string()
    }

    fn show_cmd(cmd: &Option<Command>) -> String {
        match cmd {
            None => "None".into(),
            Some(args) => {
                let args: Vec<String> = args.iter().map(|a| format!("\"{}\"", show(a))).collect();
                format!("Some([{}])", args.join(", "))
            }
        }
    }

    fn show_all(got: &Result<Vec<Command>, ProtocolError>) -> String {
        match got {
            Ok(cmds) => {
                let cmds: Vec<String> = cmds.iter().map(|c| show_cmd(&Some(c.clone()))).collect();
                format!("Ok([{}])", cmds.join(", "))
            }
            Err(e) => format!("Err({e:?})"),
        }
    }

    /// Fails with the name of the mistake when `got` is `want` with its
    /// last commands missing.
    fn check_no_tail_lost(got: &Result<Vec<Command>, ProtocolError>, want: &[Command], fed: &str) {
        if let Ok(cmds) = got {
            assert!(
                cmds.len() >= want.len() || !want.starts_with(cmds),
                "fed {fed}: got only {} of the {} commands, {}. Losing the tail of a pipelined \
                 batch? The bytes after the command you return are the next command(s): remove \
                 only the bytes you used",
                cmds.len(),
                want.len(),
                show_all(got)
            );
        }
    }

    /// Every command `next_command` gives until it says None.
    fn drain(p: &mut RespParser) -> Result<Vec<Command>, ProtocolError> {
        let mut out = Vec::new();
        while let Some(cmd) = p.next_command()? {
            out.push(cmd);
            assert!(
                out.len() <= 1000,
                "next_command keeps returning commands: more than were fed"
            );
        }
        Ok(out)
    }

    #[test]
    fn one_command_in_one_read() {
        let got = within(LIMIT, STUCK, || {
            let mut p = RespParser::new(LIMITS);
            p.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n");
            (p.next_command(), p.next_command(), p.buffered())
        });
        let want: Command = vec![b"SET".to_vec(), b"k".to_vec(), b"hello".to_vec()];
        assert_eq!(
            got.0,
            Ok(Some(want)),
            "the command SET k hello, fed in one piece"
        );
        assert_eq!(
            got.1,
            Ok(None),
            "nothing more was fed: the second call says None"
        );
        assert_eq!(
            got.2, 0,
            "the command's bytes are removed once it is returned"
        );
    }

    #[test]
    fn a_command_split_anywhere_waits_for_the_rest() {
        let input = [
            command(&[b"SET", b"key", b"value"]),
            command(&[b"GET", b"key"]),
        ]
        .concat();
        let want: Vec<Command> = vec![
            vec![b"SET".to_vec(), b"key".to_vec(), b"value".to_vec()],
            vec![b"GET".to_vec(), b"key".to_vec()],
        ];
        within(LIMIT, STUCK, move || {
            for cut in 1..input.len() {
                let mut p = RespParser::new(LIMITS);
                p.feed(&input[..cut]);
                let first = drain(&mut p);
                let early = first.clone().unwrap_or_default();
                assert!(
                    first.is_ok() && want.starts_with(&early),
                    "one read = one command? The first read ended after {cut} bytes, in the \
                     middle of \"{}\", and next_command answered {}. A read may end anywhere \
                     in a command: while a command is incomplete, return Ok(None) and wait for \
                     more bytes",
                    show(&input),
                    show_all(&first),
                );
                p.feed(&input[cut..]);
                let mut all = early.clone();
                all.extend(drain(&mut p).unwrap_or_else(|e| {
                    panic!(
                        "after the rest of the bytes arrived (the first read ended after {cut} \
                         bytes), next_command returned Err({e:?}): the bytes of an incomplete \
                         command must be kept until the rest is fed"
                    )
                }));
                check_no_tail_lost(
                    &Ok(all.clone()),
                    &want,
                    &format!("SET key value and GET key in two reads, cut after {cut} bytes"),
                );
                assert!(
                    all == want,
                    "fed \"{}\" in two reads, cut after {cut} bytes: got {} instead of \
                     SET key value and GET key. Keep the bytes of an incomplete command and \
                     parse it again once more bytes are fed",
                    show(&input),
                    all.iter()
                        .map(|c| show_cmd(&Some(c.clone())))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
        });
    }

    #[test]
    fn byte_by_byte() {
        let input = command(&[b"ECHO", b"hi"]);
        let got = within(LIMIT, STUCK, move || {
            let mut p = RespParser::new(LIMITS);
            let mut got = Vec::new();
            for (i, b) in input.iter().enumerate() {
                p.feed(&[*b]);
                match p.next_command() {
                    Ok(Some(cmd)) if i + 1 < input.len() => panic!(
                        "one byte at a time, after byte {i} of {} next_command returned {}: a \
                         command before its last byte arrived. One read = one command? While \
                         a command is incomplete, return Ok(None)",
                        input.len(),
                        show_cmd(&Some(cmd))
                    ),
                    Ok(Some(cmd)) => got.push((i, cmd)),
                    Ok(None) => {}
                    Err(e) => panic!(
                        "one byte at a time, after byte {i} next_command returned Err({e:?}): \
                         an incomplete command is not an error, return Ok(None)"
                    ),
                }
            }
            got
        });
        assert_eq!(
            got,
            vec![(21, vec![b"ECHO".to_vec(), b"hi".to_vec()])],
            "ECHO hi fed one byte at a time (22 bytes): the command once, after the last byte \
             (byte 21)"
        );
    }

    #[test]
    fn a_pipelined_batch_keeps_its_tail() {
        let (cmds, left, rest) = within(LIMIT, STUCK, || {
            let mut p = RespParser::new(LIMITS);
            let mut batch = Vec::new();
            for key in [&b"a"[..], b"b", b"c"] {
                batch.extend_from_slice(&command(&[b"INCR", key]));
            }
            // ...and the first half of a fourth command.
            batch.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$1");
            p.feed(&batch);
            let cmds = drain(&mut p);
            let left = p.buffered();
            p.feed(b"\r\nd\r\n");
            (cmds, left, drain(&mut p))
        });
        let cmds = cmds.unwrap_or_else(|e| panic!("a batch of 3 INCR commands gave Err({e:?})"));
        assert!(
            cmds.len() == 3,
            "one read held 3 pipelined commands (INCR a, INCR b, INCR c) and the start of a 4th; \
             next_command gave {} command(s) before None: losing the tail of a pipelined batch? \
             Remove only the bytes of the command you return, the rest is the next command",
            cmds.len()
        );
        assert_eq!(cmds[2], vec![b"INCR".to_vec(), b"c".to_vec()]);
        assert!(
            left == 16,
            "after the 3 complete commands, the first 16 bytes of the 4th must stay buffered, \
             and {left} are: losing the tail of a pipelined batch?"
        );
        assert_eq!(
            rest,
            Ok(vec![vec![b"INCR".to_vec(), b"d".to_vec()]]),
            "the rest of the 4th command arrived: INCR d"
        );
    }

    #[test]
    fn a_huge_bulk_length_is_refused_at_once() {
        let (largest, got) = within(LIMIT, STUCK, || {
            largest_allocation(|| {
                let mut p = RespParser::new(LIMITS);
                p.feed(b"*2\r\n$3\r\nGET\r\n$5000000\r\n");
                p.next_command()
            })
        });
        assert!(
            got == Err(ProtocolError::InvalidBulkLength),
            "a bulk length of 5000000 with max_bulk_len {}: expected Err(InvalidBulkLength) at \
             once and got {got:?}. Trusting a huge length? A client that says $5000000 may \
             never send the bytes (or send $2000000000): check the length as soon as its line \
             is complete",
            LIMITS.max_bulk_len
        );
        assert!(
            largest < 1_000_000,
            "the parser allocated {largest} bytes at once for a bulk length of 5000000 before \
             refusing it: allocating before checking a length from the client lets any client \
             make the server reserve gigabytes. Check it against max_bulk_len first"
        );
    }

    #[test]
    fn a_huge_argument_count_is_refused_at_once() {
        let (largest, got) = within(LIMIT, STUCK, || {
            largest_allocation(|| {
                let mut p = RespParser::new(LIMITS);
                p.feed(b"*5000000\r\n");
                p.next_command()
            })
        });
        assert!(
            largest < 1_000_000,
            "the parser allocated {largest} bytes at once for a count of 5000000 arguments before \
             checking it: allocating before checking a length from the client. Check the count \
             against max_args ({}) first",
            LIMITS.max_args
        );
        assert!(
            got == Err(ProtocolError::InvalidMultibulkLength),
            "*5000000 with max_args {}: expected Err(InvalidMultibulkLength) at once, got {got:?}. \
             Trusting a huge length? Check the count as soon as its line is complete",
            LIMITS.max_args
        );
    }

    #[test]
    fn empty_bulk_strings_are_arguments() {
        let got = within(LIMIT, STUCK, || {
            let mut p = RespParser::new(LIMITS);
            p.feed(&[command(&[b"SET", b"k", b""]), command(&[b"GET", b"k"])].concat());
            drain(&mut p)
        });
        let want: Vec<Command> = vec![
            vec![b"SET".to_vec(), b"k".to_vec(), vec![]],
            vec![b"GET".to_vec(), b"k".to_vec()],
        ];
        check_no_tail_lost(&got, &want, "SET k \"\" and GET k in one read");
        assert!(
            got.as_ref() == Ok(&want),
            "fed SET k \"\" (its last argument is $0\\r\\n\\r\\n) and GET k; got {}. \
             Mishandling an empty bulk string? $0 is followed by zero bytes of data and then \
             its \\r\\n, like any other bulk string",
            show_all(&got)
        );
    }

    #[test]
    fn a_null_bulk_string_is_not_an_argument() {
        let got = within(LIMIT, STUCK, || {
            let mut p = RespParser::new(LIMITS);
            p.feed(b"*2\r\n$3\r\nGET\r\n$-1\r\n");
            p.next_command()
        });
        assert!(
            got == Err(ProtocolError::InvalidBulkLength),
            "fed *2 GET $-1: expected Err(InvalidBulkLength), got {}. Mishandling $-1? It is \
             the null bulk string, which exists only in replies (GET of a missing key); a \
             request's arguments are never null, and Redis answers 'invalid bulk length'",
            match &got {
                Ok(cmd) => format!("Ok({})", show_cmd(cmd)),
                Err(e) => format!("Err({e:?})"),
            }
        );
    }

    #[test]
    fn bulk_strings_are_binary_safe() {
        let got = within(LIMIT, STUCK, || {
            let mut p = RespParser::new(LIMITS);
            p.feed(&command(&[b"SET", b"k", b"a\r\nb"]));
            p.feed(&command(&[b"PING"]));
            drain(&mut p)
        });
        let want: Vec<Command> = vec![
            vec![b"SET".to_vec(), b"k".to_vec(), b"a\r\nb".to_vec()],
            vec![b"PING".to_vec()],
        ];
        check_no_tail_lost(&got, &want, "SET k \"a\\r\\nb\" and PING in one read");
        assert!(
            got.as_ref() == Ok(&want),
            "fed SET k \"a\\r\\nb\" ($4: the value holds a \\r\\n) and PING; got {}. A bulk \
             string ends where its length says, not at the first \\r\\n: use the length",
            show_all(&got)
        );
    }

    #[test]
    fn empty_command_and_protocol_errors() {
        let results = within(LIMIT, STUCK, || {
            let mut out = Vec::new();
            for input in [
                &b"*0\r\n"[..],
                b"*x\r\n",
                b"*1\r\n+OK\r\n",
                b"*1025\r\n",
                b"*1\r\n$1048577\r\n",
                b"PING\r\n",
            ] {
                let mut p = RespParser::new(LIMITS);
                p.feed(input);
                out.push(p.next_command());
            }
            out
        });
        assert_eq!(results[0], Ok(Some(vec![])), "*0 is an empty command");
        assert_eq!(
            results[1],
            Err(ProtocolError::InvalidMultibulkLength),
            "*x: not a number"
        );
        assert_eq!(
            results[2],
            Err(ProtocolError::ExpectedDollar(b'+')),
            "*1 then +OK: not a bulk string"
        );
        assert_eq!(
            results[3],
            Err(ProtocolError::InvalidMultibulkLength),
            "*1025 with max_args 1024"
        );
        assert_eq!(
            results[4],
            Err(ProtocolError::InvalidBulkLength),
            "$1048577 with max_bulk_len 1048576"
        );
        assert_eq!(
            results[5],
            Err(ProtocolError::ExpectedStar(b'P')),
            "PING\\r\\n: not a multibulk"
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(b'x').to_string(),
            "ERR Protocol error: expected '$', got 'x'"
        );
    }
}
