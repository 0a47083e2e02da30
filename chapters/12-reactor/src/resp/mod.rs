//! RESP2, the Redis serialization protocol: the incremental request parser
//! ([`Parser`]) and the reply encoders (the functions below).
//!
//! Replies are appended to the connection's output `Vec<u8>`, so that the
//! replies to a pipelined batch leave in one `write`. Nothing here formats a
//! `String`: integers are written digit by digit into a stack buffer.

mod parser;

pub use parser::{Argv, Frame, Parser, ProtocolError, parse_i64};

/// `+OK\r\n`, the reply of SET, MSET, FLUSHALL, QUIT, CLIENT SETNAME.
pub const OK: &[u8] = b"+OK\r\n";
/// `+PONG\r\n`, the reply of PING without an argument.
pub const PONG: &[u8] = b"+PONG\r\n";
/// The null bulk string: a GET of a key that does not exist.
pub const NULL: &[u8] = b"$-1\r\n";
/// The empty array.
pub const EMPTY_ARRAY: &[u8] = b"*0\r\n";

/// A simple string: `+text\r\n` (the text must not contain CR or LF).
pub fn simple(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'+');
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// An error: `-text\r\n`. Like Redis's addReplyErrorLength, CR and LF in
/// the text (they may come from the client's own arguments) become spaces,
/// or the reply would break the protocol.
pub fn error(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'-');
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// An integer: `:42\r\n`.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    write_i64(out, n);
    out.extend_from_slice(b"\r\n");
}

/// A bulk string: `$3\r\nfoo\r\n` (binary safe: the length says where it ends).
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    write_i64(out, data.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The header of an array of `len` elements: `*2\r\n`; the elements follow.
pub fn array_len(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    write_i64(out, len as i64);
    out.extend_from_slice(b"\r\n");
}

/// Writes `n` in decimal without a heap allocation (what Redis's ll2string
/// does): digits go into a 20-byte stack buffer from the right.
pub fn write_i64(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    // unsigned_abs: i64::MIN has no positive i64 twin.
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn integers_are_written_like_redis() {
        for (n, text) in [
            (0i64, ":0\r\n"),
            (7, ":7\r\n"),
            (-1, ":-1\r\n"),
            (10, ":10\r\n"),
            (i64::MAX, ":9223372036854775807\r\n"),
            (i64::MIN, ":-9223372036854775808\r\n"),
        ] {
            assert_eq!(enc(|o| integer(o, n)), text.as_bytes(), "{n}");
        }
    }

    #[test]
    fn bulk_simple_error_array() {
        assert_eq!(enc(|o| bulk(o, b"foo")), b"$3\r\nfoo\r\n");
        assert_eq!(enc(|o| bulk(o, b"")), b"$0\r\n\r\n");
        assert_eq!(enc(|o| simple(o, b"OK")), OK);
        assert_eq!(enc(|o| error(o, b"ERR a\r\nb")), b"-ERR a  b\r\n");
        assert_eq!(enc(|o| array_len(o, 12)), b"*12\r\n");
    }
}
