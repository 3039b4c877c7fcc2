//! Paths of the guest components built from source for wasm32-wasip2: the test
//! guests under `tests/guests/` and the example plugins under `examples/`.
//!
//! ```ignore
//! let bytes = std::fs::read(warden_test_programs::HELLO)?;
//! ```

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// Reads a guest component.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading guest {path}: {e}"))
}
