//! What reading a plugin's result costs the host. wasmtime turns a result into
//! `Val`s (dozens of bytes each) before Warden sees it, so a `list<u8>` of a few MiB, or
//! a list whose strings all point at the same bytes of guest memory, could take
//! hundreds of MiB of host memory per call before the result limit is checked.
//! The read budget (`Limits::read_budget`) stops the read itself.
//!
//! One test in this binary: it counts the heap of the whole process.

mod common;

use common::{engine, failure, limits, value};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use warden_host::{Plugin, READ_SLACK_BYTES, RESULT_READ_FACTOR};

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = IN_USE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            IN_USE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `call` and returns its result with the most heap it added at any time.
async fn peak_of<T>(call: impl std::future::Future<Output = T>) -> (T, usize) {
    let before = IN_USE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let out = call.await;
    (out, PEAK.load(Relaxed).saturating_sub(before))
}

/// A component exporting `bytes(n) -> list<u8>` (n zero bytes) and
/// `aliased(count, len) -> list<string>`: `count` strings of `len` bytes that
/// all point at the same bytes of guest memory, so a few hundred KiB of guest
/// memory describe gigabytes of strings.
fn result_bombs() -> Vec<u8> {
    wat::parse_str(
        r#"(component
            (core module $m
                (memory (export "mem") 64)
                ;; The return area is at 0, the list at 64, the shared string at 1 MiB.
                (func (export "bytes") (param $n i32) (result i32)
                    (i32.store (i32.const 0) (i32.const 64))
                    (i32.store (i32.const 4) (local.get $n))
                    (i32.const 0))
                (func (export "aliased") (param $count i32) (param $len i32) (result i32)
                    (local $i i32)
                    (block $done
                        (loop $next
                            (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
                            (i32.store
                                (i32.add (i32.const 64) (i32.shl (local.get $i) (i32.const 3)))
                                (i32.const 1048576))
                            (i32.store
                                (i32.add (i32.const 68) (i32.shl (local.get $i) (i32.const 3)))
                                (local.get $len))
                            (local.set $i (i32.add (local.get $i) (i32.const 1)))
                            (br $next)))
                    (i32.store (i32.const 0) (i32.const 64))
                    (i32.store (i32.const 4) (local.get $count))
                    (i32.const 0))
                (func (export "flagged") (param $n i32) (result i32)
                    (memory.fill (i32.const 64) (i32.const 255) (i32.shl (local.get $n) (i32.const 2)))
                    (i32.store (i32.const 0) (i32.const 64))
                    (i32.store (i32.const 4) (local.get $n))
                    (i32.const 0))
                (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0)))
            (core instance $i (instantiate $m))
            (func $bytes (param "n" u32) (result (list u8))
                (canon lift (core func $i "bytes") (memory (core memory $i "mem"))
                    (realloc (core func $i "realloc"))))
            (func $aliased (param "count" u32) (param "len" u32) (result (list string))
                (canon lift (core func $i "aliased") (memory (core memory $i "mem"))
                    (realloc (core func $i "realloc"))))
            (type $f32 (flags "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p"
                "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" "a0" "b0" "c0" "d0" "e0" "f0"))
            (export $f32e "thirty-two" (type $f32))
            (func $flagged (param "n" u32) (result (list $f32e))
                (canon lift (core func $i "flagged") (memory (core memory $i "mem"))
                    (realloc (core func $i "realloc"))))
            (export "flagged" (func $flagged))
            (export "bytes" (func $bytes))
            (export "aliased" (func $aliased)))"#,
    )
    .unwrap()
}

#[tokio::test]
async fn a_result_is_read_within_its_budget() {
    let compiled = engine().compile(&result_bombs()).unwrap();
    let tight = limits(|l| {
        l.result_bytes = 256 << 10;
        l.host_call_bytes = 64 << 10;
    });
    let budget = tight.read_budget();
    assert_eq!(
        budget as u64,
        (256 << 10) * RESULT_READ_FACTOR + READ_SLACK_BYTES
    );
    let plugin = Plugin::new(engine(), &compiled, common::settings(&[], tight.clone())).unwrap();
    // Warm up: the first call allocates what every later call reuses.
    value(&plugin, "bytes", json!([1])).await;

    // wasmtime counts each element of the list as one `Val`. At the budget the
    // list is read and its JSON (two bytes per zero) fits the result limit...
    let fits = budget / size_of::<wasmtime::component::Val>();
    let result = value(&plugin, "bytes", json!([fits])).await;
    assert_eq!(result.as_array().unwrap().len(), fits);
    // ...one element more is refused while it is read.
    let refused = failure(&plugin, "bytes", json!([fits + 1])).await;
    assert_eq!(
        refused.error.code(),
        "result_too_large",
        "{}",
        refused.error
    );
    assert!(
        refused.error.to_string().contains("to read"),
        "{}",
        refused.error
    );

    // 3 MiB of bytes (before the budget, ~120 MiB of `Val`s and as much again
    // of JSON): refused, and the call never holds more than the budget.
    let (refused, peak) = peak_of(failure(&plugin, "bytes", json!([3 << 20]))).await;
    assert_eq!(
        refused.error.code(),
        "result_too_large",
        "{}",
        refused.error
    );
    assert!(
        peak < budget * 2,
        "reading the refused result took {peak} bytes of heap (budget {budget})"
    );

    // 100,000 strings of 64 KiB sharing their bytes: 6.5 GB if read.
    let (refused, peak) = peak_of(failure(&plugin, "aliased", json!([100_000, 64 << 10]))).await;
    assert_eq!(
        refused.error.code(),
        "result_too_large",
        "{}",
        refused.error
    );
    assert!(
        peak < budget * 2,
        "reading the aliased strings took {peak} bytes of heap (budget {budget})"
    );
    // Flags: wasmtime charges a set flag its name's length (1 byte here),
    // less than its lifted form costs. 20,000 elements of 32 set flags fit
    // the plain budget and would be read whole (3.5 MB of heap) before their
    // JSON is found too large; with the budget divided by FLAGS_READ_DIVISOR
    // the read stops at the start.
    let (refused, peak) = peak_of(failure(&plugin, "flagged", json!([20_000]))).await;
    assert_eq!(
        refused.error.code(),
        "result_too_large",
        "{}",
        refused.error
    );
    let flags_budget = tight.read_budget_divided(warden_host::FLAGS_READ_DIVISOR);
    assert!(
        peak < flags_budget * 2,
        "reading the flags took {peak} bytes of heap (budget {flags_budget})"
    );
    // A few are read.
    let result = value(&plugin, "flagged", json!([2])).await;
    assert_eq!(result[1].as_array().unwrap().len(), 32);

    // A few of them, within the limit, are read.
    let result = value(&plugin, "aliased", json!([3, 1000])).await;
    assert_eq!(result.as_array().unwrap().len(), 3);
    assert_eq!(result[2].as_str().unwrap().len(), 1000);
}
