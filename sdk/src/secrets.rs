//! Secrets that an admin set for this plugin (capability `secret:NAME`, one
//! grant per name): API keys, passwords. The host never shows their values
//! to anyone; do not log them yourself.

/// The value of secret `name`, if it is granted to this release and set.
/// A name that is not granted reads as `None` (and the invocation's log
/// says so, without any value).
pub fn get(name: &str) -> Option<String> {
    crate::bindings::warden::plugin::secrets::get(name)
}
