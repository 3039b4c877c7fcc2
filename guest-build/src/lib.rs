//! Building WebAssembly guests (`wasm32-wasip2`) from the source tree with a
//! nested `cargo build`: used by `warden demo` for the examples and by the
//! test programs' build script for every guest.
//!
//! A Rust toolchain that rustup installed before it read `rust-toolchain.toml`
//! has no `wasm32-wasip2` target, and rustup does not add the targets listed
//! there to an installed toolchain. [`ensure_target`] finds that out before
//! anything is compiled and adds the target with rustup (saying so), or stops
//! with the one command to run, instead of a wall of `can't find crate for
//! core` errors.
//!
//! ```no_run
//! use std::path::Path;
//! let workspace = Path::new(".");
//! warden_guest_build::ensure_target(workspace)?;
//! let status = warden_guest_build::cargo_build(workspace, &["warden-example-hello"]).status();
//! # Ok::<(), warden_guest_build::Error>(())
//! ```
#![deny(missing_docs)]

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every guest is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why guests cannot be built: one line that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// What [`ensure_target`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetStatus {
    /// The toolchain already had the target.
    Present,
    /// The target was missing and rustup added it.
    Added,
}

/// The variables of an outer cargo build that must not leak into the nested
/// one: its flags and wrappers (clippy, coverage) are for the host target, and
/// its target directory and jobserver are its own.
const OUTER_BUILD_VARIABLES: [&str; 8] = [
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
];

/// Makes sure the toolchain that builds `workspace` (the one its
/// `rust-toolchain.toml` selects) has the `wasm32-wasip2` standard library.
/// When it does not and rustup is there, runs `rustup target add
/// wasm32-wasip2`, telling the user on stderr first; otherwise returns an
/// error naming the command to run.
pub fn ensure_target(workspace: &Path) -> Result<TargetStatus, Error> {
    let sysroot = sysroot(workspace)?;
    if has_target(&sysroot) {
        return Ok(TargetStatus::Present);
    }
    let manual = format!(
        "the Rust toolchain at {} has no {TARGET} target: run `rustup target add {TARGET}` \
         in {} and try again",
        sysroot.display(),
        workspace.display()
    );
    eprintln!(
        "warden: the Rust toolchain has no {TARGET} target; adding it with \
         `rustup target add {TARGET}` (a one-time download)"
    );
    let added = Command::new("rustup")
        .current_dir(workspace)
        .args(["target", "add", TARGET])
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status();
    match added {
        Ok(status) if status.success() && has_target(&sysroot) => Ok(TargetStatus::Added),
        Ok(status) if status.success() => Err(Error(format!(
            "{manual} (rustup reported success, but the toolchain still has no {TARGET} library)"
        ))),
        Ok(status) => Err(Error(format!("{manual} (rustup failed: {status})"))),
        Err(e) => Err(Error(format!("{manual} (rustup could not be run: {e})"))),
    }
}

/// The sysroot of the toolchain cargo uses in `workspace`.
fn sysroot(workspace: &Path) -> Result<PathBuf, Error> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let output = Command::new(&rustc)
        .current_dir(workspace)
        .args(["--print", "sysroot"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error(format!(
                "running {} --print sysroot: {e} (is a Rust toolchain installed?)",
                rustc.to_string_lossy()
            ))
        })?;
    if !output.status.success() {
        return Err(Error(format!(
            "{} --print sysroot failed: {}",
            rustc.to_string_lossy(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    ))
}

/// Whether the sysroot holds the target's `core` library.
fn has_target(sysroot: &Path) -> bool {
    let lib = sysroot.join("lib/rustlib").join(TARGET).join("lib");
    std::fs::read_dir(lib).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libcore-") && name.ends_with(".rlib")
        })
    })
}

/// A `cargo build --release --target wasm32-wasip2 -p ...` of `packages` in
/// `workspace`, with the outer build's flags, wrappers and target directory
/// removed from its environment. Call [`ensure_target`] first.
pub fn cargo_build(workspace: &Path, packages: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--target", TARGET]);
    for package in packages {
        command.args(["-p", package]);
    }
    for variable in OUTER_BUILD_VARIABLES {
        command.env_remove(variable);
    }
    command
}

/// Where `cargo_build` leaves the component of `package` under `target_dir`.
pub fn component_path(target_dir: &Path, package: &str) -> PathBuf {
    target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sysroot_without_the_target_library_lacks_the_target() {
        let dir = std::env::temp_dir().join(format!("warden-guest-build-{}", std::process::id()));
        let lib = dir.join("lib/rustlib").join(TARGET).join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        assert!(!has_target(&dir), "an empty lib directory is not a target");
        std::fs::write(lib.join("libcore-0123abcd.rlib"), b"").unwrap();
        assert!(has_target(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_nested_build_drops_the_outer_builds_flags() {
        let command = cargo_build(Path::new("."), &["a", "b"]);
        let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args,
            [
                "build",
                "--release",
                "--target",
                TARGET,
                "-p",
                "a",
                "-p",
                "b"
            ]
        );
        let removed: Vec<_> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        for variable in OUTER_BUILD_VARIABLES {
            assert!(removed.iter().any(|r| r == variable), "{variable} removed");
        }
    }

    #[test]
    fn components_are_named_after_their_package() {
        assert_eq!(
            component_path(Path::new("t"), "warden-example-hello"),
            Path::new("t/wasm32-wasip2/release/warden_example_hello.wasm")
        );
    }
}
