//! Builds every guest (the test guests and the examples) for wasm32-wasip2 with a
//! nested `cargo build`, and writes one path constant per guest.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant name, package name) of each guest.
const GUESTS: &[(&str, &str)] = &[
    ("HOSTILE", "warden-guest-hostile"),
    ("CAPABILITIES", "warden-guest-capabilities"),
    ("TYPES", "warden-guest-types"),
    ("FOREIGN", "warden-guest-foreign"),
    ("HELLO", "warden-example-hello"),
    ("TEXT_TOOLS", "warden-example-text-tools"),
    ("COUNTER", "warden-example-counter"),
    ("HTTP_FETCH", "warden-example-http-fetch"),
];

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.join("../..").canonicalize().unwrap();
    for dir in ["tests/guests", "examples", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }

    let target_dir = out_dir.join("guests");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, package) in GUESTS {
        command.args(["-p", package]);
    }
    // The outer build's flags and wrappers (clippy, coverage) are for the host target.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
    ] {
        command.env_remove(var);
    }
    // Small, release-built guests regardless of the workspace's release profile.
    command
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    let status = command
        .status()
        .expect("failed to run cargo for the guests");
    assert!(status.success(), "building the wasm32-wasip2 guests failed");

    let release = target_dir.join("wasm32-wasip2/release");
    let mut constants = String::new();
    for (name, package) in GUESTS {
        let path = release.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(path.exists(), "{} was not built", path.display());
        constants.push_str(&format!(
            "/// The `{package}` component.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    std::fs::write(Path::new(&out_dir).join("guests.rs"), constants).unwrap();
}
