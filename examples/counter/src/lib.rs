//! Durable counters: state that outlives the per-invocation instance lives in the
//! plugin's key-value namespace.

wit_bindgen::generate!({ path: "wit", world: "counter" });

use warden_sdk::kv;

struct Counter;

const PREFIX: &str = "counter/";

fn read(name: &str) -> Result<Option<i64>, String> {
    match kv::get_string(&format!("{PREFIX}{name}")).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("counter {name:?} holds {text:?}, not a number")),
    }
}

impl Guest for Counter {
    fn increment(name: String, by: i64) -> Result<i64, String> {
        let value = read(&name)?
            .unwrap_or(0)
            .checked_add(by)
            .ok_or_else(|| format!("counter {name:?} would overflow"))?;
        kv::set(&format!("{PREFIX}{name}"), value.to_string()).map_err(|e| e.to_string())?;
        warden_sdk::debug!("{name} = {value}");
        Ok(value)
    }

    fn get(name: String) -> Result<Option<i64>, String> {
        read(&name)
    }

    fn reset(name: String) -> Result<bool, String> {
        kv::delete(&format!("{PREFIX}{name}")).map_err(|e| e.to_string())
    }

    fn list_counters(prefix: String) -> Result<Vec<(String, i64)>, String> {
        let keys = kv::list_keys(&format!("{PREFIX}{prefix}")).map_err(|e| e.to_string())?;
        keys.iter()
            .map(|key| {
                let name = &key[PREFIX.len()..];
                Ok((name.to_owned(), read(name)?.unwrap_or(0)))
            })
            .collect()
    }
}

export!(Counter);
