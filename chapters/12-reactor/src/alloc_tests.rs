//! The hot path allocates nothing: a counting global allocator (this test
//! binary only) counts the allocations made by the current thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crate::session::{Flow, Limits, Session};
use crate::store::Db;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // try_with: a thread being torn down has no thread-locals left.
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// (allocations, largest single allocation) made by `f` on this thread.
fn count<R>(f: impl FnOnce() -> R) -> (usize, usize, R) {
    ALLOCATIONS.with(|n| n.set(0));
    LARGEST.with(|l| l.set(0));
    let r = f();
    (ALLOCATIONS.with(Cell::get), LARGEST.with(Cell::get), r)
}

#[test]
fn the_hot_commands_allocate_nothing_once_warm() {
    let batch: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$3\r\nval\r\n\
        *2\r\n$3\r\nGET\r\n$3\r\nkey\r\n\
        *2\r\n$4\r\nINCR\r\n$1\r\nn\r\n\
        *1\r\n$4\r\nPING\r\n\
        PING\r\n\
        *2\r\n$3\r\nGET\r\n$4\r\nnone\r\n";
    let mut db = Db::new();
    let mut session = Session::new(Limits::default());
    let mut out = Vec::new();
    // Warm up: the keys get created, the buffers grow to their size.
    for _ in 0..3 {
        out.clear();
        session.handle(batch, &mut db, 0, &mut out, usize::MAX);
    }
    let (allocations, _, (n, flow)) = count(|| {
        out.clear();
        session.handle(batch, &mut db, 0, &mut out, usize::MAX)
    });
    assert_eq!((n, flow), (batch.len(), Flow::Open));
    assert_eq!(
        allocations, 0,
        "SET of an existing key, GET, INCR, PING allocate nothing"
    );
}

#[test]
fn huge_lengths_are_refused_without_allocating_them() {
    for input in [
        &b"*99999999999\r\n"[..],
        b"*1048577\r\n",
        b"*1\r\n$2000000000\r\n",
        b"*1\r\n$67108865\r\n",
    ] {
        let mut db = Db::new();
        let mut session = Session::new(Limits::default());
        let mut out = Vec::with_capacity(128);
        let (_, largest, (_, flow)) =
            count(|| session.handle(input, &mut db, 0, &mut out, usize::MAX));
        assert_eq!(flow, Flow::CloseAfterFlush, "{input:?}");
        assert!(
            out.starts_with(b"-ERR Protocol error: invalid "),
            "{input:?}"
        );
        assert!(
            largest < 4096,
            "{input:?}: allocated {largest} bytes at once"
        );
    }
}
