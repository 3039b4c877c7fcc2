//! A dependency that reads secrets: `reveal` returns what the teller itself
//! reads, so a test can see whose secrets a linked instance reaches.

wit_bindgen::generate!({ path: "wit", world: "provider" });

use exports::warden_tests::telling::teller::Guest;

struct Teller;

impl Guest for Teller {
    fn reveal(name: String) -> Option<String> {
        warden_sdk::secrets::get(&name)
    }
}

export!(Teller);
