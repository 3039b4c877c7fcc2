//! Imports an interface that no Warden host provides: it must be refused at load.

wit_bindgen::generate!({ path: "wit", world: "foreign" });

struct Foreign;

impl Guest for Foreign {
    fn run() -> String {
        warden_tests::foreign::backdoor::open()
    }
}

export!(Foreign);
