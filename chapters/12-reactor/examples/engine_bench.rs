//! How long the engine takes per command, without any socket: the bytes a
//! client sends go straight into `Session::handle`, one command per call
//! (`-P 1`) and 16 per call (`-P 16`, a pipelined batch).
//!
//!     cargo run --release -p ch12-reactor --example engine_bench
//!
//! A number for the record, not a test: the machine is shared and noisy, so
//! each row is the best of 5 runs. `engine_bench GET` runs one row only
//! (for `perf stat`: each row handles 2 x 5 x 2,000,000 commands).

use std::hint::black_box;
use std::time::Instant;

use ch12_reactor::session::{Flow, Limits, Session};
use ch12_reactor::store::Db;

fn multibulk(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    v
}

/// Nanoseconds per command: `batch` copies of `request` per handle call.
fn measure(request: &[u8], batch: usize, db: &mut Db) -> f64 {
    let input = request.repeat(batch);
    let mut session = Session::new(Limits::default());
    let mut out = Vec::with_capacity(64 * 1024);
    let calls = 2_000_000 / batch;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..calls {
            out.clear();
            let (n, flow) = session.handle(black_box(&input), db, 0, &mut out, usize::MAX);
            assert_eq!((n, flow), (input.len(), Flow::Open));
            black_box(&out);
        }
        let ns = start.elapsed().as_nanos() as f64 / (calls * batch) as f64;
        best = best.min(ns);
    }
    best
}

fn main() {
    let mut db = Db::new();
    // The key redis-benchmark uses (without -r), and a 3-byte value.
    let rows: [(&str, Vec<u8>); 5] = [
        ("PING_INLINE", b"PING\r\n".to_vec()),
        ("PING_MBULK", multibulk(&["PING"])),
        ("SET", multibulk(&["SET", "key:__rand_int__", "VXK"])),
        ("GET", multibulk(&["GET", "key:__rand_int__"])),
        ("INCR", multibulk(&["INCR", "counter:__rand_int__"])),
    ];
    println!(
        "{:<12} {:>12} {:>12}",
        "command", "ns/cmd -P 1", "ns/cmd -P 16"
    );
    let only = std::env::args().nth(1);
    for (name, request) in &rows {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let one = measure(request, 1, &mut db);
        let sixteen = measure(request, 16, &mut db);
        println!("{name:<12} {one:>12.1} {sixteen:>12.1}");
    }
}
