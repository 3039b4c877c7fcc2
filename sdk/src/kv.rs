//! The plugin's durable key-value namespace (capability `kv`).
//!
//! Nothing else survives between two invocations: every call runs in a fresh
//! instance, so state that must persist lives here.

use crate::bindings::warden::plugin::kv as wit;

pub use wit::Error;

/// The value stored under `key`.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    wit::get(key)
}

/// The value stored under `key`, as UTF-8 text (invalid UTF-8 is replaced).
pub fn get_string(key: &str) -> Result<Option<String>, Error> {
    Ok(get(key)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// Stores `value` under `key`, replacing any previous value.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
    wit::set(key, value.as_ref())
}

/// Removes `key`; returns whether it was present.
pub fn delete(key: &str) -> Result<bool, Error> {
    wit::delete(key)
}

/// Keys that start with `prefix`, in lexicographic order.
pub fn list_keys(prefix: &str) -> Result<Vec<String>, Error> {
    wit::list_keys(prefix)
}
