//! A dependency: exports the `vault` interface to the plugins that depend on
//! it, keeps values in its own kv namespace, and has hostile functions for
//! the tests of a call tree's limits.

wit_bindgen::generate!({ path: "wit", world: "provider" });

use exports::warden_tests::linking::vault::{Guest, Tally};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use warden_sdk::kv;

static CALLS: AtomicU32 = AtomicU32::new(0);
static GROWN: AtomicU64 = AtomicU64::new(0);
static mut HELD: Vec<Vec<u8>> = Vec::new();

fn served() {
    CALLS.fetch_add(1, Ordering::Relaxed);
}

struct Vault;

impl Guest for Vault {
    fn put(key: String, value: String) -> Result<(), String> {
        served();
        kv::set(&key, value).map_err(|e| e.to_string())
    }

    fn get(key: String) -> Result<Option<String>, String> {
        served();
        kv::get_string(&key).map_err(|e| e.to_string())
    }

    fn shout(text: String) -> String {
        served();
        warden_sdk::info!("vault shouts {text}");
        text.to_uppercase()
    }

    fn report() -> Tally {
        Tally {
            calls: CALLS.load(Ordering::Relaxed),
            grown: GROWN.load(Ordering::Relaxed),
        }
    }

    #[allow(clippy::empty_loop)]
    fn spin() {
        served();
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn grow(mib: u32) -> u64 {
        served();
        let bytes = mib as usize * (1 << 20);
        let block = vec![1u8; bytes];
        GROWN.fetch_add(bytes as u64, Ordering::Relaxed);
        // SAFETY: a component instance is single-threaded.
        #[allow(static_mut_refs)]
        unsafe {
            HELD.push(block)
        };
        GROWN.load(Ordering::Relaxed)
    }

    fn crash(message: String) {
        served();
        panic!("{message}");
    }
}

export!(Vault);
