//! Nothing one instance writes to its memory or its tables is visible to a
//! later instance, of the same plugin or of another, in whichever part of the
//! pool slot it wrote: the part kept resident (zeroed in place between
//! instances) and the part given back with madvise.

mod common;

use common::{settings, value};
use serde_json::json;
use warden_host::{CompiledComponent, Engine, EngineConfig, Limits, Plugin};

const HOSTILE: &str = warden_test_programs::HOSTILE;

/// Blocks `plant` writes outside the heap: its 64 KiB static (1,024 blocks).
const STATIC_BLOCKS: u64 = 1024;
/// Blocks of one MiB of heap.
const BLOCKS_PER_MIB: u64 = 16_384;

/// A component of another module that looks for the same blocks: a core
/// module of one page that grows by `grow-pages` and compares every 64-byte
/// block of its memory with eight copies of `seed ^ K` (K as in the hostile
/// guest's `mark`); `self-test` writes one such block and scavenges. Its
/// table of 20,000 function references (160 KiB: past the 64 KiB kept
/// resident) starts empty; `fill-table` sets every entry and counts them,
/// `count-table` counts the entries that are set.
const SCAVENGER: &str = r#"
(component
  (core module $m
    (memory 1)
    (table $t 20000 funcref)
    (func $target)
    (elem declare func $target)
    (func (export "fill-table") (result i32)
      (table.fill $t (i32.const 0) (ref.func $target) (table.size $t))
      (call $count-table))
    (func $count-table (export "count-table") (result i32)
      (local $at i32) (local $set i32)
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $at) (table.size $t)))
          (if (i32.eqz (ref.is_null (table.get $t (local.get $at))))
            (then (local.set $set (i32.add (local.get $set) (i32.const 1)))))
          (local.set $at (i32.add (local.get $at) (i32.const 1)))
          (br $next)))
      (local.get $set))
    (func $scavenge (export "scavenge") (param $seed i64) (param $grow i32) (result i64)
      (local $word i64) (local $at i32) (local $end i32) (local $found i64)
      (local.set $word (i64.xor (local.get $seed) (i64.const 0x57415244454e2121)))
      (drop (memory.grow (local.get $grow)))
      (local.set $end (i32.mul (memory.size) (i32.const 65536)))
      (local.set $at (i32.const 64))
      (block $done
        (loop $next
          (br_if $done (i32.gt_u (i32.add (local.get $at) (i32.const 64)) (local.get $end)))
          (if (i32.and
                (i32.and
                  (i32.and (i64.eq (i64.load offset=0 (local.get $at)) (local.get $word))
                           (i64.eq (i64.load offset=8 (local.get $at)) (local.get $word)))
                  (i32.and (i64.eq (i64.load offset=16 (local.get $at)) (local.get $word))
                           (i64.eq (i64.load offset=24 (local.get $at)) (local.get $word))))
                (i32.and
                  (i32.and (i64.eq (i64.load offset=32 (local.get $at)) (local.get $word))
                           (i64.eq (i64.load offset=40 (local.get $at)) (local.get $word)))
                  (i32.and (i64.eq (i64.load offset=48 (local.get $at)) (local.get $word))
                           (i64.eq (i64.load offset=56 (local.get $at)) (local.get $word)))))
            (then (local.set $found (i64.add (local.get $found) (i64.const 1)))))
          (local.set $at (i32.add (local.get $at) (i32.const 64)))
          (br $next)))
      (local.get $found))
    (func (export "self-test") (param $seed i64) (result i64)
      (local $word i64) (local $at i32)
      (local.set $word (i64.xor (local.get $seed) (i64.const 0x57415244454e2121)))
      (local.set $at (i32.const 4096))
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $at) (i32.const 4160)))
          (i64.store (local.get $at) (local.get $word))
          (local.set $at (i32.add (local.get $at) (i32.const 8)))
          (br $next)))
      (call $scavenge (local.get $seed) (i32.const 0))))
  (core instance $i (instantiate $m))
  (func (export "fill-table") (result u32) (canon lift (core func $i "fill-table")))
  (func (export "count-table") (result u32) (canon lift (core func $i "count-table")))
  (func (export "self-test") (param "seed" u64) (result u64)
    (canon lift (core func $i "self-test")))
  (func (export "scavenge") (param "seed" u64) (param "grow-pages" u32) (result u64)
    (canon lift (core func $i "scavenge"))))
"#;

fn limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    }
}

fn scavenger(engine: &Engine) -> Plugin {
    let component = engine
        .compile(&wat::parse_str(SCAVENGER).unwrap())
        .expect("the scavenger compiles");
    Plugin::new(engine, &component, settings(&[], limits())).unwrap()
}

/// Plants `mib` MiB (and the static) with `seed`, checking that the planting
/// instance itself sees them: the scavenging below can find what is there.
async fn plant(hostile: &Plugin, seed: u64, mib: u64) {
    let found = value(hostile, "plant", json!([seed, mib])).await;
    let found = found.as_u64().unwrap();
    assert!(
        found >= STATIC_BLOCKS + mib * BLOCKS_PER_MIB,
        "the planting instance sees only {found} blocks of seed {seed} ({mib} MiB planted)"
    );
}

#[tokio::test]
async fn a_later_instance_of_the_same_plugin_sees_nothing_of_an_earlier_one() {
    let hostile = common::plugin(HOSTILE, &[], limits());
    // 0 MiB: only the static and the stack, within the pages reset in place;
    // 1 and 24 MiB of heap: past them, given back to the kernel.
    for (round, mib) in [0, 1, 24, 0, 1, 24, 0, 0].into_iter().enumerate() {
        let seed = 0x1000 + round as u64;
        plant(&hostile, seed, mib).await;
        for _ in 0..2 {
            let left = value(&hostile, "scavenge", json!([seed, 32])).await;
            assert_eq!(
                left,
                json!(0),
                "round {round}: a fresh instance found blocks planted by the previous one ({mib} MiB)"
            );
        }
    }
}

/// One pool slot: every instance, of either component, reuses the memory the
/// previous one wrote.
fn one_slot_engine() -> Engine {
    Engine::new(EngineConfig {
        pooled_instances: Some(1),
        ..EngineConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn another_plugin_reusing_the_slot_sees_nothing_of_the_previous_one() {
    let engine = one_slot_engine();
    let component: CompiledComponent = engine
        .compile(&warden_test_programs::read(HOSTILE))
        .unwrap();
    let hostile = Plugin::new(&engine, &component, settings(&[], limits())).unwrap();
    let scavenger = scavenger(&engine);
    // The scavenger finds a block that is there (one it writes itself).
    assert_eq!(value(&scavenger, "self-test", json!([7])).await, json!(1));
    for (round, mib) in [0, 1, 24, 0].into_iter().enumerate() {
        let seed = 0x2000 + round as u64;
        plant(&hostile, seed, mib).await;
        let left = value(&scavenger, "scavenge", json!([seed, 512])).await;
        assert_eq!(
            left,
            json!(0),
            "round {round}: another component in the same slot found blocks planted before it ({mib} MiB)"
        );
        let left = value(&hostile, "scavenge", json!([seed, 32])).await;
        assert_eq!(
            left,
            json!(0),
            "round {round}: back in the planting component"
        );
    }
    // And the slot keeps serving.
    assert_eq!(value(&hostile, "ping", json!([])).await, json!("pong"));
}

#[tokio::test]
async fn a_later_instance_finds_its_table_empty() {
    for engine in [common::engine().clone(), one_slot_engine()] {
        let tables = scavenger(&engine);
        for round in 0..4 {
            assert_eq!(
                value(&tables, "fill-table", json!([])).await,
                json!(20_000),
                "round {round}: the filling instance sees its own entries"
            );
            assert_eq!(
                value(&tables, "count-table", json!([])).await,
                json!(0),
                "round {round}: a fresh instance found function references set by the previous one"
            );
        }
    }
}
