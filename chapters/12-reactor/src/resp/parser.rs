//! The incremental request parser.
//!
//! A request arrives as bytes on a stream socket: one `read` may hold half a
//! command, or ten pipelined commands and the first bytes of the eleventh.
//! The parser is a small state machine that remembers how far it got, so
//! that each byte is looked at once however the stream is cut:
//!
//! - `Start`: nothing of the next command parsed yet. Its first byte picks
//!   the protocol, as in Redis's processInputBuffer: `*` is a multibulk
//!   (RESP array of bulk strings, what client libraries send), anything
//!   else is an inline command (a line of words, what a person types into
//!   `nc` and what `redis-benchmark` sends for PING_INLINE).
//! - `Inline { scanned }`: looking for the `\n` that ends the line.
//! - `Args { left, bulk }`: the `*<n>\r\n` header is parsed, `left`
//!   arguments are still to come; `bulk` is `Some(len)` once their
//!   `$<len>\r\n` header is parsed and the parser waits for `len + 2` bytes.
//!
//! Every length the client sends is checked against [`Limits`] before the
//! parser waits for (or allocates) anything according to it. Arguments are
//! not copied: a multibulk argument is a range into the caller's buffer;
//! inline words go into one scratch buffer the parser keeps and reuses.
//!
//! The contract with the caller: after [`Parser::parse`] returns
//! `Ok(None)` (incomplete), the next call must get a buffer that starts with
//! the same bytes (the unconsumed tail), followed by whatever arrived since.

use std::ops::Range;

use crate::session::Limits;

/// Redis's `string2ll` (util.c), the only way Redis reads a number from the
/// wire or from a stored value: an optional `-`, then `0` alone or a digit
/// 1-9 followed by digits, nothing else (no `+`, no spaces, no leading
/// zeros), at most 20 characters, within `i64`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE is 21: "-9223372036854775808" is 20 characters.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        // -(i64::MIN) is one more than i64::MAX.
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// A protocol error: the client sent something that is not RESP. Redis
/// replies `-ERR Protocol error: <text>` and closes the connection after
/// the reply (networking.c, setProtocolError); so does our server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// An inline line longer than `max_inline_len` without its `\n`.
    TooBigInline,
    /// An inline line with an unterminated quote, or a closing quote not
    /// followed by a space.
    UnbalancedQuotes,
    /// A `*<n>` header longer than `max_inline_len` without its `\r`.
    TooBigMbulkCount,
    /// `*<n>` where n is not a number or is beyond `max_multibulk_len`.
    InvalidMultibulkLength,
    /// A `$<n>` header longer than `max_inline_len` without its `\r`.
    TooBigBulkCount,
    /// An argument of a multibulk that does not start with `$`.
    ExpectedDollar(u8),
    /// `$<n>` where n is not a number, negative, or beyond `max_bulk_len`.
    InvalidBulkLength,
}

impl ProtocolError {
    /// Appends the error reply, byte for byte Redis 7's text.
    pub fn write_reply(&self, out: &mut Vec<u8>) {
        let text: &[u8] = match self {
            ProtocolError::TooBigInline => b"too big inline request",
            ProtocolError::UnbalancedQuotes => b"unbalanced quotes in request",
            ProtocolError::TooBigMbulkCount => b"too big mbulk count string",
            ProtocolError::InvalidMultibulkLength => b"invalid multibulk length",
            ProtocolError::TooBigBulkCount => b"too big bulk count string",
            ProtocolError::ExpectedDollar(got) => {
                out.extend_from_slice(b"-ERR Protocol error: expected '$', got '");
                // Redis's error replies never carry CR or LF (they become spaces).
                out.push(if *got == b'\r' || *got == b'\n' {
                    b' '
                } else {
                    *got
                });
                out.extend_from_slice(b"'\r\n");
                return;
            }
            ProtocolError::InvalidBulkLength => b"invalid bulk length",
        };
        out.extend_from_slice(b"-ERR Protocol error: ");
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::new();
        self.write_reply(&mut out);
        // Without the leading '-' and the trailing CRLF.
        f.write_str(&String::from_utf8_lossy(&out[1..out.len() - 2]))
    }
}

impl std::error::Error for ProtocolError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    Inline { scanned: usize },
    Args { left: usize, bulk: Option<usize> },
}

/// One complete command at the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// How many bytes of the buffer the command took (the caller drops them).
    pub len: usize,
    /// The arguments live in the parser's scratch buffer (an inline
    /// command), not in the caller's buffer.
    inline: bool,
}

/// The parser; one per connection. See the module documentation.
pub struct Parser {
    max_multibulk_len: usize,
    max_bulk_len: usize,
    max_inline_len: usize,
    state: State,
    /// Where parsing resumes, as an offset into the caller's buffer.
    pos: usize,
    /// The arguments of the command being parsed: ranges into the caller's
    /// buffer, or into `scratch` for an inline command. Reused: after the
    /// first few commands, parsing allocates nothing.
    args: Vec<Range<usize>>,
    /// Inline words, unescaped.
    scratch: Vec<u8>,
    /// The buffer's length at the last `Ok(None)`: the next buffer must be
    /// at least as long (it starts with the same bytes).
    seen: usize,
}

impl Parser {
    pub fn new(limits: &Limits) -> Parser {
        Parser {
            max_multibulk_len: limits.max_multibulk_len,
            max_bulk_len: limits.max_bulk_len,
            max_inline_len: limits.max_inline_len,
            state: State::Start,
            pos: 0,
            args: Vec::new(),
            scratch: Vec::new(),
            seen: 0,
        }
    }

    /// Parses the command at the front of `buf`, resuming where the last
    /// call stopped. `Ok(Some(frame))`: a complete command, its arguments in
    /// [`Parser::argv`]; the parser is ready for the next command, which
    /// starts at `buf[frame.len..]` (pass that slice next). `Ok(None)`: not
    /// complete yet; call again with the same bytes plus more. `Err`: not
    /// RESP; the connection cannot be resynchronized and must be closed.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        if buf.len() < self.seen {
            // The caller broke the contract (it dropped bytes it was not
            // told to drop). The saved offsets would point past the buffer:
            // start over at the front rather than index out of bounds.
            self.state = State::Start;
            self.pos = 0;
        }
        let result = self.parse_resume(buf);
        self.seen = if matches!(result, Ok(None)) {
            buf.len()
        } else {
            0
        };
        result
    }

    fn parse_resume(&mut self, buf: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        if self.state == State::Start {
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => return self.parse_multibulk(buf),
                Some(_) => self.state = State::Inline { scanned: 0 },
            }
        }
        match self.state {
            State::Inline { .. } => self.parse_inline(buf),
            _ => self.parse_multibulk(buf),
        }
    }

    /// The arguments of the frame `parse` just returned; `buf` is the same
    /// buffer that was passed to `parse`.
    pub fn argv<'a>(&'a self, buf: &'a [u8], frame: Frame) -> Argv<'a> {
        Argv {
            base: if frame.inline { &self.scratch } else { buf },
            ranges: &self.args,
        }
    }

    fn done(&mut self, len: usize, inline: bool) -> Result<Option<Frame>, ProtocolError> {
        self.state = State::Start;
        self.pos = 0;
        Ok(Some(Frame { len, inline }))
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        let State::Inline { scanned } = self.state else {
            unreachable!("parse_inline outside the Inline state")
        };
        let Some(nl) = buf[scanned..].iter().position(|&b| b == b'\n') else {
            // Redis checks this limit only while the newline is missing:
            // it bounds what an endless line can make us buffer.
            if buf.len() > self.max_inline_len {
                return Err(ProtocolError::TooBigInline);
            }
            self.state = State::Inline { scanned: buf.len() };
            return Ok(None);
        };
        let nl = scanned + nl;
        let mut line = &buf[..nl];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        self.split_inline(line)?;
        self.done(nl + 1, true)
    }

    /// Redis's sdssplitargs (sds.c): words separated by blanks; "double
    /// quotes" with \n \r \t \b \a \xHH escapes; 'single quotes' with \'.
    /// A closing quote must be followed by a blank or the end of the line.
    fn split_inline(&mut self, line: &[u8]) -> Result<(), ProtocolError> {
        // sdssplitargs reads a C string: a NUL byte ends the line.
        let line = match line.iter().position(|&b| b == 0) {
            Some(nul) => &line[..nul],
            None => line,
        };
        self.args.clear();
        self.scratch.clear();
        let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        let mut p = 0;
        loop {
            while p < line.len() && is_space(line[p]) {
                p += 1;
            }
            if p == line.len() {
                return Ok(());
            }
            let start = self.scratch.len();
            let (mut in_dq, mut in_sq) = (false, false);
            loop {
                let c = line.get(p).copied();
                if in_dq {
                    match c {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\\') if line.get(p + 1) == Some(&b'x') => {
                            let hi = line.get(p + 2).and_then(|&b| hex(b));
                            let lo = line.get(p + 3).and_then(|&b| hex(b));
                            if let (Some(hi), Some(lo)) = (hi, lo) {
                                self.scratch.push(hi * 16 + lo);
                                p += 3;
                            } else {
                                // "\x" not followed by two hex digits: an 'x'.
                                self.scratch.push(b'x');
                                p += 1;
                            }
                        }
                        Some(b'\\') if p + 1 < line.len() => {
                            p += 1;
                            self.scratch.push(match line[p] {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 0x08,
                                b'a' => 0x07,
                                other => other,
                            });
                        }
                        Some(b'"') => {
                            if line.get(p + 1).is_some_and(|&b| !is_space(b)) {
                                return Err(ProtocolError::UnbalancedQuotes);
                            }
                            p += 1;
                            break;
                        }
                        Some(other) => self.scratch.push(other),
                    }
                } else if in_sq {
                    match c {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\\') if line.get(p + 1) == Some(&b'\'') => {
                            p += 1;
                            self.scratch.push(b'\'');
                        }
                        Some(b'\'') => {
                            if line.get(p + 1).is_some_and(|&b| !is_space(b)) {
                                return Err(ProtocolError::UnbalancedQuotes);
                            }
                            p += 1;
                            break;
                        }
                        Some(other) => self.scratch.push(other),
                    }
                } else {
                    match c {
                        None | Some(b' ' | b'\n' | b'\r' | b'\t') => {
                            if c.is_some() {
                                p += 1;
                            }
                            break;
                        }
                        Some(b'"') => in_dq = true,
                        Some(b'\'') => in_sq = true,
                        Some(other) => self.scratch.push(other),
                    }
                }
                p += 1;
            }
            self.args.push(start..self.scratch.len());
        }
    }

    /// Finds the `\r\n`-terminated line that starts at `from`: the index of
    /// its `\r`, or None when the line (its `\n` included) is not all there.
    /// Like Redis, it looks for `\r` and then only needs one more byte.
    fn line_end(buf: &[u8], from: usize) -> Option<usize> {
        let cr = from + buf[from..].iter().position(|&b| b == b'\r')?;
        (cr + 1 < buf.len()).then_some(cr)
    }

    fn parse_multibulk(&mut self, buf: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        if self.state == State::Start {
            // The header: *<count>\r\n
            let Some(cr) = Self::line_end(buf, 0) else {
                if buf.len() > self.max_inline_len {
                    return Err(ProtocolError::TooBigMbulkCount);
                }
                return Ok(None);
            };
            // Checked before anything is reserved for the arguments.
            let count = match parse_i64(&buf[1..cr]) {
                Some(n) if n <= self.max_multibulk_len as i64 => n,
                _ => return Err(ProtocolError::InvalidMultibulkLength),
            };
            self.args.clear();
            if count <= 0 {
                // *0 and *-1: an empty command, skipped without a reply.
                return self.done(cr + 2, false);
            }
            self.pos = cr + 2;
            self.state = State::Args {
                left: count as usize,
                bulk: None,
            };
        }
        while let State::Args { left, bulk } = self.state {
            let len = match bulk {
                Some(len) => len,
                None => {
                    // An argument's header: $<len>\r\n
                    let Some(cr) = Self::line_end(buf, self.pos) else {
                        if buf.len() - self.pos > self.max_inline_len {
                            return Err(ProtocolError::TooBigBulkCount);
                        }
                        return Ok(None);
                    };
                    if buf[self.pos] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(buf[self.pos]));
                    }
                    // Checked before the parser waits for that many bytes.
                    let len = match parse_i64(&buf[self.pos + 1..cr]) {
                        Some(n) if n >= 0 && n as u64 <= self.max_bulk_len as u64 => n as usize,
                        _ => return Err(ProtocolError::InvalidBulkLength),
                    };
                    self.pos = cr + 2;
                    self.state = State::Args {
                        left,
                        bulk: Some(len),
                    };
                    len
                }
            };
            // The data and its CRLF. Like Redis, the two bytes after the
            // data are skipped, not checked.
            if buf.len() - self.pos < len + 2 {
                return Ok(None);
            }
            self.args.push(self.pos..self.pos + len);
            self.pos += len + 2;
            if left == 1 {
                return self.done(self.pos, false);
            }
            self.state = State::Args {
                left: left - 1,
                bulk: None,
            };
        }
        unreachable!("parse_multibulk ends in the Args state")
    }
}

/// A command's arguments, borrowed: `argv.get(0)` is the command name.
#[derive(Clone, Copy)]
pub struct Argv<'a> {
    base: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Argv<'a> {
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i`; panics if `i >= len()` (callers check the arity first).
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.base[self.ranges[i].clone()]
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let base = self.base;
        self.ranges.iter().map(move |r| &base[r.clone()])
    }

    /// The arguments copied out (tests and debugging only).
    pub fn to_vecs(&self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_multibulk_len: 1024,
            max_bulk_len: 1 << 20,
            max_inline_len: 64 * 1024,
        }
    }

    /// Feeds `input` to a parser in chunks cut at `cuts` (the way a
    /// connection does: the unconsumed tail stays at the front of the
    /// buffer), and collects every command or the first error.
    fn feed(input: &[u8], cuts: &[usize]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
        let mut parser = Parser::new(&limits());
        let mut buf = Vec::new();
        let mut cmds = Vec::new();
        let mut last = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            buf.extend_from_slice(&input[last..cut]);
            last = cut;
            loop {
                match parser.parse(&buf) {
                    Ok(Some(frame)) => {
                        cmds.push(parser.argv(&buf, frame).to_vecs());
                        buf.drain(..frame.len);
                    }
                    Ok(None) => break,
                    Err(e) => return (cmds, Some(e)),
                }
            }
        }
        (cmds, None)
    }

    fn words(ws: &[&str]) -> Vec<Vec<u8>> {
        ws.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn parse_i64_is_redis_string2ll() {
        for (s, v) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("42", Some(42)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("", None),
            ("-", None),
            ("-0", None),
            ("01", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("1a", None),
            ("99999999999999999999", None),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), v, "{s:?}");
        }
    }

    #[test]
    fn one_multibulk_command() {
        let (cmds, err) = feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", &[]);
        assert_eq!(err, None);
        assert_eq!(cmds, vec![words(&["SET", "k", "hello"])]);
    }

    #[test]
    fn frames_split_at_every_byte_position() {
        let input: &[u8] =
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let want = vec![
            words(&["SET", "k", ""]),
            words(&["PING"]),
            words(&["GET", "k"]),
        ];
        for cut in 0..=input.len() {
            assert_eq!(feed(input, &[cut]), (want.clone(), None), "cut at {cut}");
        }
        // Every byte on its own.
        let all: Vec<usize> = (1..input.len()).collect();
        assert_eq!(feed(input, &all), (want, None));
    }

    #[test]
    fn a_pipelined_batch_yields_every_command_and_keeps_the_tail() {
        let mut input = Vec::new();
        for i in 0..100 {
            let key = format!("key{i}");
            input.extend_from_slice(
                format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
            );
        }
        let mut parser = Parser::new(&limits());
        let mut n = 0;
        let mut at = 0;
        // The batch and half of one more command.
        input.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$4\r\nke");
        while let Some(frame) = parser.parse(&input[at..]).unwrap() {
            assert_eq!(
                parser.argv(&input[at..], frame).get(1),
                format!("key{n}").as_bytes()
            );
            at += frame.len;
            n += 1;
        }
        assert_eq!(n, 100);
        assert_eq!(
            &input[at..],
            b"*2\r\n$3\r\nGET\r\n$4\r\nke",
            "the tail stays unconsumed"
        );
    }

    #[test]
    fn empty_bulk_and_binary_data() {
        let (cmds, err) = feed(b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\na\r\nb\r\n", &[]);
        assert_eq!(err, None);
        assert_eq!(
            cmds,
            vec![vec![b"SET".to_vec(), vec![], b"a\r\nb".to_vec()]]
        );
    }

    #[test]
    fn empty_and_null_multibulk_are_empty_commands() {
        let (cmds, err) = feed(b"*0\r\n*-1\r\nPING\r\n", &[]);
        assert_eq!(err, None);
        assert_eq!(cmds, vec![vec![], vec![], words(&["PING"])]);
    }

    #[test]
    fn null_bulk_is_a_protocol_error() {
        // A request's arguments cannot be null: Redis refuses $-1.
        let (_, err) = feed(b"*2\r\n$3\r\nGET\r\n$-1\r\n", &[]);
        assert_eq!(err, Some(ProtocolError::InvalidBulkLength));
    }

    #[test]
    fn inline_commands() {
        let (cmds, err) = feed(
            b"PING\r\nset k \"a b\\x41\\n\"\nget 'it\\'s'\r\n\r\n   \r\n",
            &[],
        );
        assert_eq!(err, None);
        assert_eq!(
            cmds,
            vec![
                words(&["PING"]),
                words(&["set", "k", "a bA\n"]),
                words(&["get", "it's"]),
                vec![],
                vec![],
            ]
        );
        for bad in [&b"get \"abc\r\n"[..], b"get 'abc\n", b"get \"a\"b\n"] {
            assert_eq!(
                feed(bad, &[]).1,
                Some(ProtocolError::UnbalancedQuotes),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn inline_split_anywhere() {
        let input = b"SET key value\r\nGET key\n";
        for cut in 0..=input.len() {
            let (cmds, err) = feed(input, &[cut]);
            assert_eq!(err, None);
            assert_eq!(
                cmds,
                vec![words(&["SET", "key", "value"]), words(&["GET", "key"])]
            );
        }
    }

    #[test]
    fn protocol_errors_have_redis_texts() {
        for (input, text) in [
            (
                &b"*x\r\n"[..],
                "ERR Protocol error: invalid multibulk length",
            ),
            (
                b"*99999999999\r\n",
                "ERR Protocol error: invalid multibulk length",
            ),
            (b"*1025\r\n", "ERR Protocol error: invalid multibulk length"),
            (
                b"*1\r\n$2000000000\r\n",
                "ERR Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$1048577\r\n",
                "ERR Protocol error: invalid bulk length",
            ),
            (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
            (b"*1\r\n$\r\n", "ERR Protocol error: invalid bulk length"),
            (b"*1\r\nx3\r\n", "ERR Protocol error: expected '$', got 'x'"),
            (
                b"*1\r\n\r\n\r\n",
                "ERR Protocol error: expected '$', got ' '",
            ),
            (
                b"GET \"k\n",
                "ERR Protocol error: unbalanced quotes in request",
            ),
        ] {
            let (_, err) = feed(input, &[]);
            let err = err.unwrap_or_else(|| panic!("{input:?} parsed"));
            assert_eq!(err.to_string(), text, "{input:?}");
        }
    }

    #[test]
    fn lengths_are_refused_at_once_not_waited_for() {
        // The header alone is enough to refuse: the parser does not wait
        // for (or reserve) two billion bytes first.
        let mut p = Parser::new(&limits());
        assert_eq!(
            p.parse(b"*1\r\n$2000000000\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        let mut p = Parser::new(&limits());
        assert_eq!(
            p.parse(b"*99999999999\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(p.args.capacity(), 0, "nothing reserved for the arguments");
    }

    #[test]
    fn endless_lines_are_refused_past_the_inline_limit() {
        let mut p = Parser::new(&limits());
        let long = vec![b'a'; 64 * 1024 + 1];
        assert_eq!(p.parse(&long), Err(ProtocolError::TooBigInline));
        let mut star = long.clone();
        star[0] = b'*';
        let mut p = Parser::new(&limits());
        assert_eq!(p.parse(&star), Err(ProtocolError::TooBigMbulkCount));
        let mut p = Parser::new(&limits());
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(std::iter::repeat_n(b'1', 64 * 1024 + 1));
        assert_eq!(p.parse(&bulk), Err(ProtocolError::TooBigBulkCount));
        // Up to the limit it only waits.
        let mut p = Parser::new(&limits());
        assert_eq!(p.parse(&long[..64 * 1024]), Ok(None));
    }

    #[test]
    fn a_shorter_buffer_than_promised_restarts_instead_of_panicking() {
        let mut p = Parser::new(&limits());
        assert_eq!(p.parse(b"*2\r\n$3\r\nGET\r\n$1\r"), Ok(None));
        let frame = p.parse(b"PING\r\n").unwrap().unwrap();
        assert_eq!(p.argv(b"PING\r\n", frame).to_vecs(), vec![b"PING".to_vec()]);
    }

    /// A small xorshift generator: a fixed seed, so a failure replays.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // Bytes that matter to the grammar, and some noise.
        let alphabet = b"*$\r\n0123456789-\"' \\xabPING";
        for _ in 0..20_000 {
            let len = (rng.next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rng.next();
                    if r.is_multiple_of(8) {
                        r as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let cut = (rng.next() as usize) % (input.len() + 1);
            // Whatever happens, the same outcome for every split.
            let whole = feed(&input, &[]);
            assert_eq!(feed(&input, &[cut]), whole, "{input:?} cut at {cut}");
        }
    }
}
