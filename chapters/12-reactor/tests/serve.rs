//! The real `serve` process, driven by a real, maintained Redis client
//! library (the `redis` crate, synchronous API) and by raw sockets for what
//! a good client never sends: every command, pipelines of 1,000, 200
//! clients at once, expiry, frames split byte by byte, malformed frames,
//! oversized lengths, resets in the middle of a command, backpressure, the
//! writes per pipelined batch, and no descriptor leaks.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use lab_kit::server::ServerProcess;
use lab_kit::watchdog::within;
use nix::sys::signal::Signal;
use redis::{Commands, Connection, Value};

/// How long a whole test may take before the watchdog fails it.
const TEST_LIMIT: Duration = Duration::from_secs(90);

fn watched(test: &str, body: impl FnOnce() + Send + 'static) {
    within(TEST_LIMIT, &format!("`{test}` to finish"), body);
}

fn binary() -> &'static Path {
    Path::new(assert_cmd::cargo::cargo_bin!("ch12-reactor"))
}

fn start(extra: &[&str]) -> ServerProcess {
    ServerProcess::start(binary(), extra)
}

fn connect(addr: SocketAddr) -> Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("a redis:// URL");
    let con = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the redis crate could not connect to {addr}: {e}"));
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    con
}

/// Sends `command` (one RESP array) and returns the reply as the redis
/// crate parsed it.
fn value(con: &mut Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    match cmd.query::<Value>(con) {
        Ok(v) => v,
        Err(e) => match e.kind() {
            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension => {
                Value::SimpleString(format!("ERROR {}", e))
            }
            _ => panic!("{args:?}: not a reply: {e}"),
        },
    }
}

/// A raw client for bytes the library would never send.
fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until `want` bytes came (or end of file, or the timeout).
fn read_n(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while got.len() < want {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "waiting for {want} bytes, got {:?} and then {e}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    got
}

/// Reads until end of file: what a server sends before closing.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) => panic!(
            "expected the server to close the connection; got {:?} and then {e}",
            String::from_utf8_lossy(&got)
        ),
    }
}

fn counter(stats: &str, what: &str) -> u64 {
    stats
        .split(", ")
        .find_map(|part| part.strip_suffix(what))
        .and_then(|n| n.trim().rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `N {what}` in {stats:?}"))
}

#[test]
fn every_command_answers_with_redis_reply_types_and_texts() {
    watched("every command", || {
        let server = start(&[]);
        let mut c = connect(server.addr);
        let ok = Value::Okay;
        let int = Value::Int;
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let cases: Vec<(Vec<&str>, Value)> = vec![
            (vec!["PING"], Value::SimpleString("PONG".into())),
            (vec!["PING", "hi"], bulk("hi")),
            (vec!["ECHO", "hello"], bulk("hello")),
            (vec!["SET", "k", "v"], ok.clone()),
            (vec!["GET", "k"], bulk("v")),
            (vec!["GET", "missing"], Value::Nil),
            (vec!["SET", "k", "w", "NX"], Value::Nil),
            (vec!["SET", "k", "w", "XX", "GET"], bulk("v")),
            (vec!["SET", "new", "x", "XX"], Value::Nil),
            (vec!["SET", "e", "1", "EX", "100"], ok.clone()),
            (vec!["TTL", "e"], int(100)),
            (vec!["SET", "p", "1", "PX", "100000"], ok.clone()),
            (vec!["PERSIST", "p"], int(1)),
            (vec!["PTTL", "p"], int(-1)),
            (vec!["TTL", "missing"], int(-2)),
            (vec!["EXPIRE", "p", "50"], int(1)),
            (vec!["PEXPIRE", "missing", "50"], int(0)),
            (vec!["EXISTS", "k", "e", "missing", "k"], int(3)),
            (vec!["DEL", "e", "missing"], int(1)),
            (vec!["INCR", "n"], int(1)),
            (vec!["INCRBY", "n", "41"], int(42)),
            (vec!["DECR", "n"], int(41)),
            (vec!["MSET", "a", "1", "b", "2"], ok.clone()),
            (
                vec!["MGET", "a", "missing", "b"],
                Value::Array(vec![bulk("1"), Value::Nil, bulk("2")]),
            ),
            (vec!["DBSIZE"], int(5)),
            (
                vec!["INCR", "k"],
                Value::SimpleString("ERROR ERR value is not an integer or out of range".into()),
            ),
            (vec!["FLUSHALL"], ok.clone()),
            (vec!["DBSIZE"], int(0)),
        ];
        for (args, want) in cases {
            let got = value(&mut c, &args);
            let got = match got {
                // The library's error text: "ERR: value is not ..." or
                // "ERR value is not ..." depending on its version.
                Value::SimpleString(s) if s.starts_with("ERROR ") => {
                    Value::SimpleString(s.replacen(": ", " ", 1).replace(" - ", " "))
                }
                other => other,
            };
            if let Value::SimpleString(w) = &want
                && w.starts_with("ERROR ")
            {
                let Value::SimpleString(g) = &got else {
                    panic!("{args:?}: expected the error {w:?}, got {got:?}")
                };
                let text = w.trim_start_matches("ERROR ERR ");
                assert!(
                    g.contains(text),
                    "{args:?}: expected an error with {text:?}, got {g:?}"
                );
                continue;
            }
            assert_eq!(got, want, "{args:?}: Redis replies {want:?}");
        }
        // QUIT: +OK, then the server closes.
        let mut s = raw(server.addr);
        s.write_all(b"*1\r\n$4\r\nQUIT\r\n").unwrap();
        assert_eq!(
            read_to_close(&mut s),
            b"+OK\r\n",
            "QUIT answers +OK and closes"
        );
    });
}

#[test]
fn a_pipeline_of_1000_commands_gets_1000_replies_in_order() {
    watched("a pipeline of 1000", || {
        let server = start(&[]);
        let mut c = connect(server.addr);
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.cmd("INCR").arg("counter");
            if i % 100 == 0 {
                pipe.cmd("SET").arg(format!("key{i}")).arg(i);
            }
        }
        let replies: Vec<Value> = pipe.query(&mut c).expect("pipeline");
        assert_eq!(replies.len(), 1010);
        let incrs: Vec<i64> = replies
            .iter()
            .filter_map(|v| match v {
                Value::Int(n) => Some(*n),
                _ => None,
            })
            .collect();
        assert_eq!(
            incrs,
            (1..=1000).collect::<Vec<i64>>(),
            "in order, none lost"
        );
    });
}

#[test]
fn two_hundred_clients_at_once_each_get_their_own_answers() {
    watched("200 clients", || {
        let server = start(&["--quiet"]);
        let addr = server.addr;
        let workers: Vec<_> = (0..200)
            .map(|i| {
                thread::spawn(move || {
                    let mut c = connect(addr);
                    for j in 0..20 {
                        let key = format!("client{i}");
                        let _: () = c.set(&key, format!("{i}-{j}")).unwrap();
                        let got: String = c.get(&key).unwrap();
                        assert_eq!(got, format!("{i}-{j}"), "client {i} read another's value");
                        let _: i64 = c.incr("shared", 1).unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a client thread failed");
        }
        let mut c = connect(addr);
        let total: i64 = c.get("shared").unwrap();
        assert_eq!(total, 200 * 20, "every INCR counted once");
    });
}

/// Polls `check` every 5 ms until it is true or `bound` passed.
fn within_bound(bound: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn keys_expire_lazily_on_access_and_actively_without_access() {
    watched("expiry", || {
        let server = start(&[]);
        let mut c = connect(server.addr);
        let _: () = redis::cmd("SET")
            .arg("lazy")
            .arg("v")
            .arg("PX")
            .arg(150)
            .query(&mut c)
            .unwrap();
        let pttl: i64 = c.pttl("lazy").unwrap();
        assert!(
            (1..=150).contains(&pttl),
            "PTTL right after SET PX 150: {pttl}"
        );
        let gone = within_bound(Duration::from_secs(3), || {
            c.get::<_, Option<String>>("lazy").unwrap().is_none()
        });
        assert!(gone, "a key with PX 150 was still there after 3 s");

        // Active expiry: 200 keys nobody touches again; DBSIZE counts keys
        // without looking each one up, so only the timer can remove them.
        let mut pipe = redis::pipe();
        for i in 0..200 {
            pipe.cmd("SET")
                .arg(format!("k{i}"))
                .arg(1)
                .arg("PX")
                .arg(50);
        }
        pipe.cmd("SET").arg("stays").arg(1);
        let _: () = pipe.query(&mut c).unwrap();
        let emptied = within_bound(Duration::from_secs(5), || {
            redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap() == 1
        });
        let left: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert!(
            emptied,
            "active expiry (the 100 ms timer calling Db::active_expire) left {left} keys after 5 s"
        );
    });
}

#[test]
fn a_command_written_one_byte_at_a_time_is_answered_once_complete() {
    watched("byte by byte", || {
        let server = start(&[]);
        let mut s = raw(server.addr);
        let frame =
            b"*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$4\r\nbyte\r\n*2\r\n$3\r\nGET\r\n$5\r\nsplit\r\n";
        for &b in frame.iter() {
            s.write_all(&[b]).unwrap();
        }
        assert_eq!(read_n(&mut s, 15), b"+OK\r\n$4\r\nbyte\r\n");
        // Inline commands, the way a person types them into nc.
        s.write_all(b"PI").unwrap();
        s.write_all(b"NG\r\n").unwrap();
        assert_eq!(read_n(&mut s, 7), b"+PONG\r\n");
    });
}

#[test]
fn malformed_frames_get_a_protocol_error_then_the_connection_closes() {
    watched("malformed frames", || {
        let mut server = start(&[]);
        let cases: [(&[u8], &str); 5] = [
            (
                b"*1\r\n$abc\r\n",
                "-ERR Protocol error: invalid bulk length",
            ),
            (b"*x\r\n", "-ERR Protocol error: invalid multibulk length"),
            (
                b"*1\r\n+PING\r\n",
                "-ERR Protocol error: expected '$', got '+'",
            ),
            (
                b"*99999999\r\n",
                "-ERR Protocol error: invalid multibulk length",
            ),
            (
                b"*1\r\n$99999999999999\r\n",
                "-ERR Protocol error: invalid bulk length",
            ),
        ];
        let mut c = connect(server.addr);
        for (bytes, error) in cases {
            let mut s = raw(server.addr);
            s.write_all(bytes).unwrap();
            let got = read_to_close(&mut s);
            let got = String::from_utf8_lossy(&got);
            assert_eq!(
                got,
                format!("{error}\r\n"),
                "sent {:?}",
                String::from_utf8_lossy(bytes)
            );
            // Others are still served.
            let pong: String = redis::cmd("PING").query(&mut c).unwrap();
            assert_eq!(pong, "PONG");
        }
        let rss = vm_rss_kib(server.pid());
        assert!(
            rss < 100 * 1024,
            "after oversized lengths the server uses {rss} KiB: it allocated by an untrusted length"
        );
        let _ = server.log();
    });
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn resets_in_the_middle_of_a_command_close_only_that_client_and_nothing_leaks() {
    watched("resets and leaks", || {
        let mut server = start(&[]);
        let at_start = server.descriptors_above_stdio();
        let kinds = |list: &[String], kind: &str| list.iter().filter(|d| d.contains(kind)).count();
        assert_eq!(
            (
                kinds(&at_start, "socket:"),
                kinds(&at_start, "[eventpoll]"),
                kinds(&at_start, "[signalfd]")
            ),
            (1, 1, 1),
            "a fresh server holds its listener, its epoll instance and its signalfd: {at_start:?}"
        );
        let mut c = connect(server.addr);
        for i in 0..20 {
            // Half a SET, then a reset (SO_LINGER 0 makes close send RST).
            lab_kit::clients::reset(server.addr, b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n01234")
                .expect("reset client");
            let n: i64 = c.incr("alive", 1).unwrap();
            assert_eq!(n, i + 1, "the other client is served after reset {i}");
        }
        drop(c);
        // 20 reset clients + the library's client (its id counts too).
        server.wait_for_closed(21);
        let log = server.log().to_vec();
        assert!(
            log.iter().any(|l| l.contains("ECONNRESET")),
            "a reset shows in the log as ECONNRESET: {log:?}"
        );
        assert_eq!(
            server.descriptors_above_stdio(),
            at_start,
            "after every client left, the server should hold only what it held at the start"
        );
    });
}

#[test]
fn a_pipelined_batch_is_answered_with_one_write() {
    watched("one write per batch", || {
        let mut server = start(&[]);
        let mut s = raw(server.addr);
        s.write_all(b"PING\r\n").unwrap();
        assert_eq!(read_n(&mut s, 7), b"+PONG\r\n");
        let before = server.signal_for_line(Signal::SIGUSR1, "stats:");
        // 100 commands in one write: they arrive together (one segment on
        // loopback) and are read by one read.
        let batch = b"*1\r\n$4\r\nPING\r\n".repeat(100);
        s.write_all(&batch).unwrap();
        assert_eq!(read_n(&mut s, 700), b"+PONG\r\n".repeat(100));
        let after = server.signal_for_line(Signal::SIGUSR1, "stats:");
        let writes = counter(&after, "writes") - counter(&before, "writes");
        let reads = counter(&after, "reads") - counter(&before, "reads");
        assert_eq!(
            (reads, writes),
            (1, 1),
            "100 pipelined PINGs sent in one write: one read, one write of 100 replies \
             (before: {before}; after: {after})"
        );
    });
}

#[test]
fn a_client_that_never_reads_is_paused_then_closed_past_the_hard_limit() {
    watched("backpressure", || {
        let mut server = start(&["--output-hard-limit", "4194304"]);
        let mut c = connect(server.addr);
        let big = "x".repeat(100 * 1024);
        let _: () = c.set("big", &big).unwrap();
        // Soft limit: a client that sends GETs and never reads. The server
        // stops reading it once 256 KiB wait, so its memory stays bounded
        // even though the client keeps sending.
        let mut s = raw(server.addr);
        s.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let get = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(100);
        let mut sent = 0usize;
        loop {
            match s.write(&get) {
                Ok(n) => sent += n,
                // Our send buffer stays full: the server stopped reading us.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => panic!("the server dropped a client that was only slow to read: {e}"),
            }
            assert!(
                sent < 64 << 20,
                "sent {sent} bytes of GETs of a 100 KiB value without reading a reply, and the \
                 server kept reading: it should stop reading while 256 KiB of output wait"
            );
        }
        let rss = vm_rss_kib(server.pid());
        assert!(
            rss < 64 * 1024,
            "the paused client made the server grow to {rss} KiB"
        );
        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG", "other clients are served meanwhile");
        // Hard limit: one reply of 30 MB to a client that does not read
        // leaves more than 4 MiB pending once the socket buffers are full.
        let mut s2 = raw(server.addr);
        let mut mget = String::from("*301\r\n$4\r\nMGET\r\n");
        for _ in 0..300 {
            mget.push_str("$3\r\nbig\r\n");
        }
        s2.write_all(mget.as_bytes()).unwrap();
        server.wait_for_line(
            Duration::from_secs(20),
            "a close past the hard limit",
            |l| l.contains("hard limit"),
        );
        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
    });
}

#[test]
fn sigint_and_sigterm_stop_the_server_cleanly() {
    watched("shutdown", || {
        let mut server = start(&[]);
        let mut c = connect(server.addr);
        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
        let _ = server.log();
        let status = server.interrupt();
        assert!(
            status.success(),
            "SIGINT should end the server with status 0: {status}"
        );
    });
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    let fields: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    (fields[0] + fields[1]) / 100.0
}

#[test]
fn out_of_descriptors_the_server_waits_without_spinning_and_accepts_later() {
    watched("EMFILE", || {
        let mut server = start(&[]);
        // 16 descriptors: stdio, the listener, epoll, signalfd and a few
        // clients. (prlimit(1) sets another process's limit.)
        let status = std::process::Command::new("prlimit")
            .args(["--pid", &server.pid().to_string(), "--nofile=16:16"])
            .status()
            .expect("prlimit (util-linux)");
        assert!(status.success(), "prlimit failed");
        let clients: Vec<TcpStream> = (0..30).map(|_| raw(server.addr)).collect();
        // Some are accepted, the rest wait in the listen queue.
        server.wait_for_line(Duration::from_secs(10), "an EMFILE line", |l| {
            l.contains("EMFILE") || l.contains("Too many open files")
        });
        let emfile = |log: &[String]| log.iter().filter(|l| l.contains("accept:")).count();
        let (before, lines_before) = (cpu_seconds(server.pid()), emfile(server.log()));
        thread::sleep(Duration::from_secs(1));
        let spent = cpu_seconds(server.pid()) - before;
        let tries = emfile(server.log()) - lines_before;
        assert!(
            tries <= 20,
            "out of descriptors, the server tried accept {tries} times in 1 s (it logs each \
             failure): it should wait (a 100 ms timer), not retry at once"
        );
        assert!(
            spent < 0.3,
            "out of descriptors with 30 clients queued, the server used {spent:.2} s of CPU in \
             1 s: it is spinning on accept"
        );
        drop(clients);
        // Once descriptors free up, the queued clients are accepted (and,
        // already closed, closed again): a new client is served.
        let mut late = None;
        let served = within_bound(Duration::from_secs(10), || {
            let mut s = raw(server.addr);
            if s.write_all(b"PING\r\n").is_err() {
                return false;
            }
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0u8; 7];
            let ok = s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n";
            late = Some(s);
            ok
        });
        assert!(
            served,
            "after the clients left, a new client was never served"
        );
    });
}
