//! The smallest useful Warden plugin: one function, strings in and out.

wit_bindgen::generate!({ path: "wit", world: "hello" });

struct Hello;

impl Guest for Hello {
    fn greet(name: String) -> String {
        warden_sdk::info!("greeting {name}");
        format!("Hello, {name}!")
    }
}

export!(Hello);
