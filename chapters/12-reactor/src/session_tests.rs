//! The commands through Session::handle, as a client sees them.

use super::*;

/// Encodes a command the way client libraries do (a multibulk).
fn cmd(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    v
}

struct T {
    db: Db,
    s: Session,
    now: Millis,
}

impl T {
    fn new() -> T {
        T {
            db: Db::new(),
            s: Session::new(Limits::default()),
            now: 1_000,
        }
    }

    /// Sends raw bytes; returns the replies and the flow; all input consumed.
    fn raw(&mut self, input: &[u8]) -> (String, Flow) {
        let mut out = Vec::new();
        let (n, flow) = self
            .s
            .handle(input, &mut self.db, self.now, &mut out, usize::MAX);
        assert_eq!(n, input.len(), "all of {input:?} consumed");
        (String::from_utf8(out).unwrap(), flow)
    }

    fn run(&mut self, args: &[&str]) -> String {
        let (out, flow) = self.raw(&cmd(args));
        assert_eq!(flow, Flow::Open, "{args:?}");
        out
    }
}

#[test]
fn ping_and_echo() {
    let mut t = T::new();
    assert_eq!(t.run(&["PING"]), "+PONG\r\n");
    assert_eq!(t.run(&["ping", "hi there"]), "$8\r\nhi there\r\n");
    assert_eq!(
        t.run(&["PING", "a", "b"]),
        "-ERR wrong number of arguments for 'ping' command\r\n"
    );
    assert_eq!(t.run(&["ECHO", ""]), "$0\r\n\r\n");
    assert_eq!(
        t.run(&["echo"]),
        "-ERR wrong number of arguments for 'echo' command\r\n"
    );
}

#[test]
fn inline_ping_as_redis_benchmark_sends_it() {
    let mut t = T::new();
    assert_eq!(t.raw(b"PING\r\nPING\r\n").0, "+PONG\r\n+PONG\r\n");
    assert_eq!(
        t.raw(b"set k \"two words\"\nget k\n").0,
        "+OK\r\n$9\r\ntwo words\r\n"
    );
    // An empty line is no command: no reply (Redis skips it too).
    assert_eq!(t.raw(b"\r\n\n").0, "");
}

#[test]
fn set_and_get() {
    let mut t = T::new();
    assert_eq!(t.run(&["GET", "k"]), "$-1\r\n");
    assert_eq!(t.run(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(t.run(&["get", "k"]), "$1\r\nv\r\n");
    assert_eq!(t.run(&["SET", "k", ""]), "+OK\r\n");
    assert_eq!(t.run(&["GET", "k"]), "$0\r\n\r\n");
    assert_eq!(
        t.run(&["GET"]),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        t.run(&["GET", "a", "b"]),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        t.run(&["SET", "k"]),
        "-ERR wrong number of arguments for 'set' command\r\n"
    );
}

#[test]
fn set_options() {
    let mut t = T::new();
    assert_eq!(
        t.run(&["SET", "k", "1", "XX"]),
        "$-1\r\n",
        "XX on a missing key"
    );
    assert_eq!(t.run(&["SET", "k", "1", "NX"]), "+OK\r\n");
    assert_eq!(
        t.run(&["SET", "k", "2", "nx"]),
        "$-1\r\n",
        "NX on an existing key"
    );
    assert_eq!(t.run(&["SET", "k", "3", "XX", "GET"]), "$1\r\n1\r\n");
    assert_eq!(
        t.run(&["SET", "k", "4", "NX", "GET"]),
        "$1\r\n3\r\n",
        "GET replies the old value even when NX refuses"
    );
    assert_eq!(t.run(&["GET", "k"]), "$1\r\n3\r\n");
    assert_eq!(t.run(&["SET", "new", "x", "GET"]), "$-1\r\n");
    assert_eq!(t.run(&["GET", "new"]), "$1\r\nx\r\n");
    for bad in [
        &["SET", "k", "v", "NX", "XX"][..],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "EX", "1", "PX", "1"],
        &["SET", "k", "v", "KEEPTTL", "EX", "1"],
        &["SET", "k", "v", "EX", "1", "KEEPTTL"],
        &["SET", "k", "v", "FOO"],
        &["SET", "k", "v", "EXAT", "1"],
    ] {
        assert_eq!(t.run(bad), "-ERR syntax error\r\n", "{bad:?}");
    }
    assert_eq!(
        t.run(&["SET", "k", "v", "EX", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        t.run(&["SET", "k", "v", "EX", "0"]),
        "-ERR invalid expire time in 'set' command\r\n"
    );
    assert_eq!(
        t.run(&["SET", "k", "v", "PX", "-5"]),
        "-ERR invalid expire time in 'set' command\r\n"
    );
    assert_eq!(
        t.run(&["SET", "k", "v", "EX", "9223372036854775"]),
        "-ERR invalid expire time in 'set' command\r\n"
    );
    assert_eq!(
        t.run(&["GET", "k"]),
        "$1\r\n3\r\n",
        "nothing changed by the refused SETs"
    );
}

#[test]
fn set_with_expiry_and_keepttl() {
    let mut t = T::new();
    assert_eq!(t.run(&["SET", "k", "v", "EX", "10"]), "+OK\r\n");
    assert_eq!(t.run(&["PTTL", "k"]), ":10000\r\n");
    assert_eq!(t.run(&["SET", "k", "w", "KEEPTTL"]), "+OK\r\n");
    assert_eq!(t.run(&["PTTL", "k"]), ":10000\r\n");
    assert_eq!(t.run(&["SET", "k", "w"]), "+OK\r\n");
    assert_eq!(t.run(&["TTL", "k"]), ":-1\r\n", "a plain SET drops the TTL");
    assert_eq!(t.run(&["SET", "p", "v", "PX", "1500"]), "+OK\r\n");
    assert_eq!(t.run(&["TTL", "p"]), ":2\r\n", "1.5 s rounds to 2");
    t.now += 1500;
    assert_eq!(t.run(&["PTTL", "p"]), ":0\r\n", "alive at its deadline");
    t.now += 1;
    assert_eq!(
        t.run(&["GET", "p"]),
        "$-1\r\n",
        "gone one millisecond later"
    );
}

#[test]
fn incr_decr_incrby() {
    let mut t = T::new();
    assert_eq!(t.run(&["INCR", "n"]), ":1\r\n");
    assert_eq!(t.run(&["INCR", "n"]), ":2\r\n");
    assert_eq!(t.run(&["DECR", "n"]), ":1\r\n");
    assert_eq!(t.run(&["INCRBY", "n", "-11"]), ":-10\r\n");
    assert_eq!(t.run(&["GET", "n"]), "$3\r\n-10\r\n");
    assert_eq!(t.run(&["DECR", "m"]), ":-1\r\n");
    assert_eq!(
        t.run(&["INCRBY", "n", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        t.run(&["INCRBY", "n", "1.5"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    t.run(&["SET", "s", "abc"]);
    assert_eq!(
        t.run(&["INCR", "s"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    for not_a_number in [" 1", "01", "+1", "1 ", ""] {
        t.run(&["SET", "s", not_a_number]);
        assert_eq!(
            t.run(&["INCR", "s"]),
            "-ERR value is not an integer or out of range\r\n",
            "{not_a_number:?}"
        );
    }
    t.run(&["SET", "big", "9223372036854775807"]);
    assert_eq!(
        t.run(&["INCR", "big"]),
        "-ERR increment or decrement would overflow\r\n"
    );
    t.run(&["SET", "small", "-9223372036854775808"]);
    assert_eq!(
        t.run(&["DECR", "small"]),
        "-ERR increment or decrement would overflow\r\n"
    );
    assert_eq!(
        t.run(&["INCR"]),
        "-ERR wrong number of arguments for 'incr' command\r\n"
    );
    assert_eq!(
        t.run(&["INCRBY", "n"]),
        "-ERR wrong number of arguments for 'incrby' command\r\n"
    );
}

#[test]
fn incr_keeps_the_ttl() {
    let mut t = T::new();
    t.run(&["SET", "n", "5", "PX", "100"]);
    assert_eq!(t.run(&["INCR", "n"]), ":6\r\n");
    assert_eq!(t.run(&["PTTL", "n"]), ":100\r\n");
    t.now += 101;
    assert_eq!(
        t.run(&["INCR", "n"]),
        ":1\r\n",
        "an expired counter starts again"
    );
    assert_eq!(t.run(&["PTTL", "n"]), ":-1\r\n");
}

#[test]
fn mset_mget_del_exists_dbsize_flushall() {
    let mut t = T::new();
    assert_eq!(t.run(&["MSET", "a", "1", "b", "2"]), "+OK\r\n");
    assert_eq!(
        t.run(&["MSET", "a", "1", "b"]),
        "-ERR wrong number of arguments for 'mset' command\r\n"
    );
    assert_eq!(
        t.run(&["MGET", "a", "x", "b"]),
        "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"
    );
    assert_eq!(
        t.run(&["EXISTS", "a", "a", "x"]),
        ":2\r\n",
        "a key named twice counts twice"
    );
    assert_eq!(t.run(&["DBSIZE"]), ":2\r\n");
    assert_eq!(t.run(&["DEL", "a", "x", "a"]), ":1\r\n");
    assert_eq!(t.run(&["DBSIZE"]), ":1\r\n");
    assert_eq!(
        t.run(&["DBSIZE", "x"]),
        "-ERR wrong number of arguments for 'dbsize' command\r\n"
    );
    assert_eq!(t.run(&["FLUSHALL", "now"]), "-ERR syntax error\r\n");
    assert_eq!(t.run(&["FLUSHALL", "ASYNC"]), "+OK\r\n");
    assert_eq!(t.run(&["DBSIZE"]), ":0\r\n");
    assert_eq!(
        t.run(&["DEL"]),
        "-ERR wrong number of arguments for 'del' command\r\n"
    );
    assert_eq!(
        t.run(&["MGET"]),
        "-ERR wrong number of arguments for 'mget' command\r\n"
    );
}

#[test]
fn expire_ttl_persist() {
    let mut t = T::new();
    assert_eq!(t.run(&["EXPIRE", "k", "10"]), ":0\r\n", "no such key");
    assert_eq!(t.run(&["TTL", "k"]), ":-2\r\n");
    t.run(&["SET", "k", "v"]);
    assert_eq!(t.run(&["TTL", "k"]), ":-1\r\n");
    assert_eq!(t.run(&["EXPIRE", "k", "10"]), ":1\r\n");
    assert_eq!(t.run(&["TTL", "k"]), ":10\r\n");
    assert_eq!(t.run(&["PEXPIRE", "k", "2500"]), ":1\r\n");
    assert_eq!(t.run(&["PTTL", "k"]), ":2500\r\n");
    assert_eq!(t.run(&["TTL", "k"]), ":3\r\n", "(2500 + 500) / 1000");
    assert_eq!(t.run(&["PERSIST", "k"]), ":1\r\n");
    assert_eq!(t.run(&["PERSIST", "k"]), ":0\r\n");
    assert_eq!(t.run(&["PERSIST", "nokey"]), ":0\r\n");
    assert_eq!(t.run(&["TTL", "k"]), ":-1\r\n");
    assert_eq!(
        t.run(&["EXPIRE", "k", "-1"]),
        ":1\r\n",
        "a deadline in the past deletes"
    );
    assert_eq!(t.run(&["EXISTS", "k"]), ":0\r\n");
    assert_eq!(
        t.run(&["EXPIRE", "k", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        t.run(&["EXPIRE", "k", "9223372036854775807"]),
        "-ERR invalid expire time in 'expire' command\r\n"
    );
    assert_eq!(
        t.run(&["PEXPIRE", "k", "9223372036854775807"]),
        "-ERR invalid expire time in 'pexpire' command\r\n"
    );
    assert_eq!(
        t.run(&["EXPIRE", "k"]),
        "-ERR wrong number of arguments for 'expire' command\r\n"
    );
    assert_eq!(
        t.run(&["TTL"]),
        "-ERR wrong number of arguments for 'ttl' command\r\n"
    );
}

#[test]
fn expire_conditions() {
    let mut t = T::new();
    t.run(&["SET", "k", "v"]);
    assert_eq!(
        t.run(&["EXPIRE", "k", "10", "XX"]),
        ":0\r\n",
        "XX: no TTL yet"
    );
    assert_eq!(t.run(&["EXPIRE", "k", "10", "NX"]), ":1\r\n");
    assert_eq!(t.run(&["EXPIRE", "k", "20", "NX"]), ":0\r\n");
    assert_eq!(t.run(&["EXPIRE", "k", "5", "GT"]), ":0\r\n");
    assert_eq!(t.run(&["EXPIRE", "k", "20", "gt"]), ":1\r\n");
    assert_eq!(t.run(&["EXPIRE", "k", "30", "LT"]), ":0\r\n");
    assert_eq!(t.run(&["EXPIRE", "k", "15", "LT"]), ":1\r\n");
    assert_eq!(t.run(&["TTL", "k"]), ":15\r\n");
    assert_eq!(
        t.run(&["EXPIRE", "k", "1", "NX", "XX"]),
        "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
    );
    assert_eq!(
        t.run(&["EXPIRE", "k", "1", "GT", "LT"]),
        "-ERR GT and LT options at the same time are not compatible\r\n"
    );
    assert_eq!(
        t.run(&["EXPIRE", "k", "1", "SOON"]),
        "-ERR Unsupported option SOON\r\n"
    );
}

#[test]
fn lazy_expiry_on_every_access() {
    let mut t = T::new();
    for cmd_ in [
        &["GET", "k"][..],
        &["EXISTS", "k"],
        &["TTL", "k"],
        &["MGET", "k"],
        &["DEL", "k"],
    ] {
        t.run(&["SET", "k", "v", "PX", "10"]);
        t.now += 11;
        let want = match cmd_[0] {
            "GET" => "$-1\r\n",
            "EXISTS" | "DEL" => ":0\r\n",
            "TTL" => ":-2\r\n",
            _ => "*1\r\n$-1\r\n",
        };
        assert_eq!(t.run(cmd_), want, "{cmd_:?}");
        assert_eq!(t.db.len(), 0, "{cmd_:?} deleted the expired key");
    }
}

#[test]
fn active_expiry_through_the_session() {
    let mut t = T::new();
    for i in 0..30 {
        t.run(&["SET", &format!("k{i}"), "v", "PX", "50"]);
    }
    t.run(&["SET", "forever", "v"]);
    t.now += 51;
    assert_eq!(
        t.run(&["DBSIZE"]),
        ":31\r\n",
        "expired keys wait for the cycle"
    );
    assert_eq!(t.db.active_expire(t.now, 20), 20);
    assert_eq!(t.db.active_expire(t.now, 20), 10);
    assert_eq!(t.run(&["DBSIZE"]), ":1\r\n");
}

#[test]
fn unknown_commands() {
    let mut t = T::new();
    assert_eq!(
        t.run(&["FOO", "a", "b c"]),
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b c' \r\n"
    );
    assert_eq!(
        t.run(&["nope"]),
        "-ERR unknown command 'nope', with args beginning with: \r\n"
    );
    assert_eq!(
        t.run(&["x", "a\r\nb"]),
        "-ERR unknown command 'x', with args beginning with: 'a  b' \r\n",
        "no CR or LF inside an error"
    );
    // Arguments are listed until they reach 128 bytes.
    let long = "y".repeat(200);
    let want = format!(
        "-ERR unknown command 'x', with args beginning with: '{}' \r\n",
        "y".repeat(128)
    );
    assert_eq!(t.run(&["x", &long, "z"]), want);
    let name = "n".repeat(200);
    assert!(
        t.run(&[&name])
            .starts_with(&format!("-ERR unknown command '{}',", "n".repeat(128)))
    );
}

#[test]
fn quit_closes_after_its_ok() {
    let mut t = T::new();
    let mut input = cmd(&["QUIT"]);
    input.extend_from_slice(&cmd(&["PING"]));
    let mut out = Vec::new();
    let (n, flow) = t.s.handle(&input, &mut t.db, t.now, &mut out, usize::MAX);
    assert_eq!(
        (out.as_slice(), flow),
        (&b"+OK\r\n"[..], Flow::CloseAfterFlush)
    );
    assert_eq!(n, cmd(&["QUIT"]).len(), "nothing after QUIT runs");
}

#[test]
fn protocol_error_replies_then_closes_after_the_earlier_commands() {
    let mut t = T::new();
    let mut input = cmd(&["SET", "k", "v"]);
    input.extend_from_slice(b"*1\r\n$2000000000\r\n");
    let (out, flow) = t.raw(&input);
    assert_eq!(out, "+OK\r\n-ERR Protocol error: invalid bulk length\r\n");
    assert_eq!(flow, Flow::CloseAfterFlush);
    let mut t = T::new();
    let (out, flow) = t.raw(b"*99999999999\r\n");
    assert_eq!(out, "-ERR Protocol error: invalid multibulk length\r\n");
    assert_eq!(flow, Flow::CloseAfterFlush);
    let mut t = T::new();
    assert_eq!(
        t.raw(b"*1\r\nx\r\n").0,
        "-ERR Protocol error: expected '$', got 'x'\r\n"
    );
    let mut t = T::new();
    assert_eq!(
        t.raw(b"GET 'k\r\n").0,
        "-ERR Protocol error: unbalanced quotes in request\r\n"
    );
}

#[test]
fn split_frames_and_the_unconsumed_tail() {
    let input = [
        cmd(&["SET", "key", "value"]),
        cmd(&["GET", "key"]),
        cmd(&["INCR", "n"]),
    ]
    .concat();
    let want = "+OK\r\n$5\r\nvalue\r\n:1\r\n";
    for cut in 0..=input.len() {
        let mut t = T::new();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for part in [&input[..cut], &input[cut..]] {
            buf.extend_from_slice(part);
            let (n, flow) = t.s.handle(&buf, &mut t.db, t.now, &mut out, usize::MAX);
            assert_eq!(flow, Flow::Open);
            buf.drain(..n);
        }
        assert!(buf.is_empty(), "cut at {cut}: {buf:?} left");
        assert_eq!(String::from_utf8(out).unwrap(), want, "cut at {cut}");
    }
}

#[test]
fn a_pipeline_of_1000_replies_in_one_buffer() {
    let mut t = T::new();
    let input: Vec<u8> = (0..1000).flat_map(|_| cmd(&["INCR", "n"])).collect();
    let (out, _) = t.raw(&input);
    let want: String = (1..=1000).map(|i| format!(":{i}\r\n")).collect();
    assert_eq!(out, want);
}

#[test]
fn the_soft_output_limit_stops_the_batch() {
    let mut t = T::new();
    let one = cmd(&["PING"]);
    let input = one.repeat(10);
    let mut out = Vec::new();
    // +PONG\r\n is 7 bytes: past 20 bytes after the third reply.
    let (n, flow) = t.s.handle(&input, &mut t.db, t.now, &mut out, 20);
    assert_eq!((n, flow), (3 * one.len(), Flow::Open));
    assert_eq!(out, b"+PONG\r\n".repeat(3));
}

#[test]
fn config_get_for_redis_benchmark() {
    let mut t = T::new();
    // What redis-benchmark 7.0 sends first, in one write.
    let input = [
        cmd(&["CONFIG", "GET", "save"]),
        cmd(&["CONFIG", "GET", "appendonly"]),
    ]
    .concat();
    assert_eq!(
        t.raw(&input).0,
        "*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
    );
    let both = "*4\r\n$10\r\nappendonly\r\n$2\r\nno\r\n$4\r\nsave\r\n$0\r\n\r\n";
    assert_eq!(t.run(&["config", "get", "*"]), both);
    assert_eq!(
        t.run(&["CONFIG", "GET", "APPEND*", "s?ve", "[rs]ave"]),
        both,
        "each once"
    );
    assert_eq!(t.run(&["CONFIG", "GET", "maxmemory"]), "*0\r\n");
    assert_eq!(
        t.run(&["CONFIG", "GET"]),
        "-ERR wrong number of arguments for 'config|get' command\r\n"
    );
    assert_eq!(
        t.run(&["CONFIG"]),
        "-ERR wrong number of arguments for 'config' command\r\n"
    );
    assert_eq!(
        t.run(&["CONFIG", "SET", "a", "b"]),
        "-ERR unknown subcommand 'SET'. Try CONFIG HELP.\r\n"
    );
}

#[test]
fn client_commands() {
    let mut t = T::new();
    assert_eq!(t.run(&["CLIENT", "ID"]), ":1\r\n");
    let mut other = Session::new(Limits::default());
    let mut out = Vec::new();
    other.handle(&cmd(&["CLIENT", "ID"]), &mut t.db, 0, &mut out, usize::MAX);
    assert_eq!(out, b":2\r\n", "each connection its own id");
    assert_eq!(t.run(&["CLIENT", "GETNAME"]), "$-1\r\n");
    assert_eq!(t.run(&["CLIENT", "SETNAME", "worker-1"]), "+OK\r\n");
    assert_eq!(t.run(&["client", "getname"]), "$8\r\nworker-1\r\n");
    assert_eq!(t.s.name(), Some(&b"worker-1"[..]));
    assert_eq!(
        t.run(&["CLIENT", "SETNAME", "a b"]),
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(t.run(&["CLIENT", "SETNAME", ""]), "+OK\r\n");
    assert_eq!(t.run(&["CLIENT", "GETNAME"]), "$-1\r\n");
    assert_eq!(
        t.run(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]),
        "+OK\r\n"
    );
    assert_eq!(t.run(&["CLIENT", "SETINFO", "lib-ver", "5.0.1"]), "+OK\r\n");
    assert_eq!(
        t.run(&["CLIENT", "SETINFO", "color", "red"]),
        "-ERR Unrecognized option 'color'\r\n"
    );
    assert_eq!(
        t.run(&["CLIENT", "SETINFO", "lib-name", "a b"]),
        "-ERR lib-name cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(
        t.run(&["CLIENT", "KILL", "x"]),
        "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n"
    );
    assert_eq!(
        t.run(&["CLIENT", "SETNAME"]),
        "-ERR wrong number of arguments for 'client|setname' command\r\n"
    );
}

/// A tiny RESP reader, enough to check the structure of COMMAND replies.
#[derive(Debug, PartialEq)]
enum Value {
    Simple(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Option<Vec<Value>>),
}

fn read_value(s: &mut &[u8]) -> Value {
    let line_end = s.windows(2).position(|w| w == b"\r\n").expect("a line");
    let line = std::str::from_utf8(&s[1..line_end]).unwrap().to_string();
    let kind = s[0];
    *s = &s[line_end + 2..];
    match kind {
        b'+' => Value::Simple(line),
        b':' => Value::Int(line.parse().unwrap()),
        b'$' => {
            let n: i64 = line.parse().unwrap();
            if n < 0 {
                return Value::Bulk(None);
            }
            let data = String::from_utf8(s[..n as usize].to_vec()).unwrap();
            assert_eq!(&s[n as usize..n as usize + 2], b"\r\n");
            *s = &s[n as usize + 2..];
            Value::Bulk(Some(data))
        }
        b'*' => {
            let n: i64 = line.parse().unwrap();
            if n < 0 {
                return Value::Array(None);
            }
            Value::Array(Some((0..n).map(|_| read_value(s)).collect()))
        }
        other => panic!("unexpected reply type {:?}", other as char),
    }
}

fn parse_reply(out: &str) -> Value {
    let mut s = out.as_bytes();
    let v = read_value(&mut s);
    assert!(s.is_empty(), "one reply, nothing after it");
    v
}

#[test]
fn command_docs_count_info() {
    let mut t = T::new();
    let Value::Int(count) = parse_reply(&t.run(&["COMMAND", "COUNT"])) else {
        panic!("COMMAND COUNT is an integer")
    };
    let Value::Array(Some(docs)) = parse_reply(&t.run(&["COMMAND", "DOCS"])) else {
        panic!("COMMAND DOCS is an array")
    };
    assert_eq!(docs.len() as i64, count * 2, "name, doc for every command");
    let names: Vec<&Value> = docs.iter().step_by(2).collect();
    for name in ["get", "set", "ping", "config", "client", "command", "quit"] {
        assert!(
            names.contains(&&Value::Bulk(Some(name.into()))),
            "{name} documented"
        );
    }
    // What redis-cli reads: summary, since, group as strings; flags as
    // simple strings (it asserts on these types).
    let Value::Array(Some(set_doc)) = parse_reply(&t.run(&["COMMAND", "DOCS", "set"])) else {
        panic!()
    };
    assert_eq!(set_doc[0], Value::Bulk(Some("set".into())));
    let Value::Array(Some(fields)) = &set_doc[1] else {
        panic!()
    };
    assert_eq!(fields[0], Value::Bulk(Some("summary".into())));
    assert!(t.run(&["COMMAND", "DOCS", "set"]).contains("+optional\r\n"));
    assert_eq!(t.run(&["COMMAND", "DOCS", "nosuch"]), "*0\r\n");
    let Value::Array(Some(all)) = parse_reply(&t.run(&["COMMAND"])) else {
        panic!()
    };
    assert_eq!(all.len() as i64, count);
    let info = parse_reply(&t.run(&["COMMAND", "INFO", "get", "nosuch"]));
    let Value::Array(Some(entries)) = info else {
        panic!()
    };
    assert_eq!(entries[1], Value::Array(None));
    let Value::Array(Some(get)) = &entries[0] else {
        panic!()
    };
    assert_eq!(get[1], Value::Int(2), "GET's arity");
    assert_eq!(
        t.run(&["COMMAND", "FOO"]),
        "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n"
    );
    assert_eq!(
        t.run(&["COMMAND", "COUNT", "x"]),
        "-ERR wrong number of arguments for 'command|count' command\r\n"
    );
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
fn random_input_never_panics_and_always_terminates() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let words = [
        "*",
        "$",
        "\r\n",
        "1",
        "2",
        "3",
        "-1",
        "0",
        "SET",
        "GET",
        "INCR",
        "EXPIRE",
        "TTL",
        "DEL",
        "k",
        "EX",
        "PX",
        "NX",
        "GET",
        " ",
        "\"",
        "'",
        "MSET",
        "CONFIG",
        "CLIENT",
        "COMMAND",
        "DOCS",
        "99999999999",
    ];
    for round in 0..5_000 {
        let mut t = T::new();
        let mut input = Vec::new();
        for _ in 0..(rng.next() % 30) {
            if rng.next().is_multiple_of(10) {
                input.push(rng.next() as u8);
            } else {
                input.extend_from_slice(words[rng.next() as usize % words.len()].as_bytes());
            }
        }
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for chunk in input.chunks(1 + rng.next() as usize % 8) {
            buf.extend_from_slice(chunk);
            let (n, flow) = t.s.handle(&buf, &mut t.db, t.now, &mut out, usize::MAX);
            assert!(n <= buf.len(), "round {round}");
            buf.drain(..n);
            if flow == Flow::CloseAfterFlush {
                break;
            }
            t.now += rng.next() % 3;
        }
        t.db.check_invariants();
    }
}
