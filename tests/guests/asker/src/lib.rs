//! A plugin that reads secrets of its own and, through the `teller`
//! interface of a dependency, the dependency's: grants never cross the link
//! in either direction.

wit_bindgen::generate!({ path: ["../teller/wit", "wit"], world: "warden-tests:asker/asker", generate_all });

use warden_tests::telling::teller;

struct Asker;

impl Guest for Asker {
    fn reveal_here(name: String) -> Option<String> {
        warden_sdk::secrets::get(&name)
    }

    fn reveal_there(name: String) -> Option<String> {
        teller::reveal(&name)
    }
}

export!(Asker);
