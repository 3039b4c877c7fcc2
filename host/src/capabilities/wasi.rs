//! The standard WASI interfaces toolchains import whether or not a plugin
//! uses them. They need no grant and reach nothing real: no directory is
//! preopened, every socket address is refused, stdout and stderr go into
//! the transcript (the store's WASI context is built so in
//! `Plugin::store`). wasmtime-wasi links its p2 interfaces as one, so
//! [`Basic`] links them for all four.

use super::{Instance, Unit};
use crate::state::HostState;
use wasmtime::component::Linker;

/// `wasi:filesystem`.
pub(crate) struct Filesystem;
/// `wasi:sockets`.
pub(crate) struct Sockets;
/// `wasi:cli` standard streams and terminals.
pub(crate) struct Stdio;
/// Clocks, randomness, I/O streams and exit.
pub(crate) struct Basic;

impl Unit for Filesystem {
    const NAME: &'static str = "filesystem";
    const DESCRIPTION: &'static str = "filesystem interfaces (no directory is ever opened)";
    const INTERFACES: &'static [(&'static str, &'static [&'static str])] =
        &[("wasi:filesystem", &["types", "preopens"])];
    type Grant = ();
    type Backend = ();
    type Context = ();

    fn add_to_linker(_: &mut Linker<HostState>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn context(_: &(), _: &(), _: &mut Instance<'_>) {}
}

impl Unit for Sockets {
    const NAME: &'static str = "sockets";
    const DESCRIPTION: &'static str = "socket interfaces (every address is refused)";
    const INTERFACES: &'static [(&'static str, &'static [&'static str])] = &[(
        "wasi:sockets",
        &[
            "network",
            "instance-network",
            "tcp",
            "tcp-create-socket",
            "udp",
            "udp-create-socket",
            "ip-name-lookup",
        ],
    )];
    type Grant = ();
    type Backend = ();
    type Context = ();

    fn add_to_linker(_: &mut Linker<HostState>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn context(_: &(), _: &(), _: &mut Instance<'_>) {}
}

impl Unit for Stdio {
    const NAME: &'static str = "stdio";
    const DESCRIPTION: &'static str = "stdout/stderr (captured into the log)";
    const INTERFACES: &'static [(&'static str, &'static [&'static str])] = &[(
        "wasi:cli",
        &[
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    )];
    type Grant = ();
    type Backend = ();
    type Context = ();

    fn add_to_linker(_: &mut Linker<HostState>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn context(_: &(), _: &(), _: &mut Instance<'_>) {}
}

impl Unit for Basic {
    const NAME: &'static str = "basic";
    const DESCRIPTION: &'static str = "clocks, randomness and I/O streams";
    const INTERFACES: &'static [(&'static str, &'static [&'static str])] = &[
        ("wasi:cli", &["exit"]),
        ("wasi:clocks", &["monotonic-clock", "wall-clock"]),
        ("wasi:random", &["random", "insecure", "insecure-seed"]),
        ("wasi:io", &["error", "poll", "streams"]),
    ];
    type Grant = ();
    type Backend = ();
    type Context = ();

    /// All of WASI p2 (environment, filesystem, sockets and stdio too).
    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)
    }

    fn context(_: &(), _: &(), _: &mut Instance<'_>) {}
}
