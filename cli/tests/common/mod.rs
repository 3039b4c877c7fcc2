//! The `warden` binary as the local commands' tests run it.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `warden ARGS` with a compiled-code cache shared by these tests.
pub fn warden(args: &[&str]) -> Output {
    let cache = std::env::temp_dir().join("warden-cli-test-cache");
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .env("WARDEN_CACHE_DIR", cache)
        .output()
        .expect("running warden")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
