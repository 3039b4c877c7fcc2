//! Configuration values that an admin set for this plugin (capability `config`).

/// The value of `key`, if the admin set one.
pub fn get(key: &str) -> Option<String> {
    crate::bindings::warden::plugin::config::get(key)
}

/// Every key and value, sorted by key.
pub fn all() -> Vec<(String, String)> {
    crate::bindings::warden::plugin::config::get_all()
}
