//! A plugin with no capability of its own that uses the `vault` interface of
//! a dependency.

wit_bindgen::generate!({ path: ["../vault/wit", "wit"], world: "warden-tests:dependent/dependent", generate_all });

use warden_tests::linking::vault;

static mut HELD: Vec<Vec<u8>> = Vec::new();

struct Dependent;

impl Guest for Dependent {
    fn remember(key: String, value: String) -> Result<(), String> {
        vault::put(&key, &value)
    }

    fn recall(key: String) -> Result<Option<String>, String> {
        vault::get(&key)
    }

    fn shout_times(text: String, times: u32) -> (String, u32) {
        let mut last = String::new();
        for _ in 0..times {
            last = vault::shout(&text);
        }
        (last, vault::report().calls)
    }

    fn spin_there() {
        vault::spin()
    }

    fn grow_there(mib: u32) -> u64 {
        vault::grow(mib)
    }

    fn grow_both(here: u32, there: u32) -> u64 {
        let block = vec![1u8; here as usize * (1 << 20)];
        // SAFETY: a component instance is single-threaded.
        #[allow(static_mut_refs)]
        unsafe {
            HELD.push(block)
        };
        vault::grow(there)
    }

    fn crash_there(message: String) {
        vault::crash(&message)
    }
}

export!(Dependent);
