//! Reads secrets through `warden:plugin/secrets`. `has` reads a secret and
//! returns only whether it is set, so a test can see that nothing of the
//! value reaches the answer.

wit_bindgen::generate!({ path: "wit", world: "keeper" });

struct Keeper;

impl Guest for Keeper {
    fn reveal(name: String) -> Option<String> {
        warden_sdk::secrets::get(&name)
    }

    fn has(name: String) -> bool {
        let value = warden_sdk::secrets::get(&name);
        warden_sdk::info!(
            "looked up secret {name}: {}",
            if value.is_some() { "set" } else { "none" }
        );
        value.is_some()
    }

    fn greet(who: String) -> String {
        let greeting = warden_sdk::secrets::get("GREETING").unwrap_or_else(|| "hello".into());
        format!("{greeting}, {who}")
    }
}

export!(Keeper);
