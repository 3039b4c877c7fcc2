//! The guest side of Warden: what a plugin author depends on.
//!
//! A Warden plugin is a WebAssembly component built with
//! `cargo build --target wasm32-wasip2 --release`. It exports typed functions
//! described by its own WIT world, and calls the host through this crate:
//!
//! - [`log`] and the [`trace!`], [`debug!`], [`info!`], [`warn!`], [`error!`] macros,
//! - [`config`]: values an admin set for the plugin,
//! - [`kv`]: a durable key-value namespace private to the plugin,
//! - [`secrets`]: credentials an admin set, each granted by name,
//! - [`http`]: outgoing HTTP through the standard `wasi:http` interface.
//!
//! Only the host interfaces a plugin actually calls end up among the component's
//! imports, and each import is a capability the admin has to grant: a plugin that
//! never touches [`kv`] does not ask for it.
//!
//! # A complete plugin
//!
//! `wit/world.wit`:
//!
//! ```wit
//! package acme:greeter@1.0.0;
//!
//! world greeter {
//!     export greet: func(name: string) -> string;
//! }
//! ```
//!
//! `src/lib.rs` (with `crate-type = ["cdylib"]` and dependencies on `warden-sdk`
//! and `wit-bindgen`):
//!
//! ```ignore
//! wit_bindgen::generate!({ path: "wit", world: "greeter" });
//!
//! struct Greeter;
//!
//! impl Guest for Greeter {
//!     fn greet(name: String) -> String {
//!         warden_sdk::info!("greeting {name}");
//!         let greeting = warden_sdk::config::get("greeting").unwrap_or("Hello".into());
//!         format!("{greeting}, {name}!")
//!     }
//! }
//!
//! export!(Greeter);
//! ```
//!
//! Exports may be top-level functions or whole interfaces, and may use any WIT
//! value type (records, variants, enums, options, results, lists, flags...);
//! Warden maps each of them to JSON for the callers (see `docs/json.md`).
#![deny(missing_docs)]

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "warden:plugin/host",
    });
}

pub mod config;
pub mod http;
pub mod kv;
pub mod log;
pub mod secrets;
