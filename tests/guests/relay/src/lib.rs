//! A dependency with a dependency: exports the `vault` interface by calling
//! the `vault` of its own dependency, logging each call.

wit_bindgen::generate!({ path: ["../vault/wit", "wit"], world: "warden-tests:relay/relay", generate_all });

use exports::warden_tests::linking::vault::{Guest, Tally};
use warden_tests::linking::vault;

struct Relay;

impl Guest for Relay {
    fn put(key: String, value: String) -> Result<(), String> {
        warden_sdk::info!("relay puts {key}");
        vault::put(&key, &value)
    }

    fn get(key: String) -> Result<Option<String>, String> {
        vault::get(&key)
    }

    fn shout(text: String) -> String {
        warden_sdk::info!("relay passes {text}");
        vault::shout(&text)
    }

    fn report() -> Tally {
        let tally = vault::report();
        Tally {
            calls: tally.calls,
            grown: tally.grown,
        }
    }

    fn spin() {
        vault::spin()
    }

    fn grow(mib: u32) -> u64 {
        vault::grow(mib)
    }

    fn crash(message: String) {
        vault::crash(&message)
    }
}

export!(Relay);
