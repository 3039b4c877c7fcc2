//! `log`: levelled messages into the invocation's transcript
//! (`warden:plugin/log`), always granted.

use super::{Instance, Unit};
use crate::state::HostState;
use crate::state::bindings::warden::plugin::log;
use crate::transcript::LogLevel;
use wasmtime::component::{HasSelf, Linker};

/// The `log` capability.
pub(crate) struct Log;

impl Unit for Log {
    const NAME: &'static str = "log";
    const DESCRIPTION: &'static str = "levelled log messages (always granted)";
    const INTERFACES: &'static [(&'static str, &'static [&'static str])] =
        &[("warden:plugin", &["log"])];

    type Grant = ();
    type Backend = ();
    type Context = ();

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        log::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)
    }

    fn context(_: &(), _: &(), _: &mut Instance<'_>) {}
}

impl log::Host for HostState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.check_argument("a log message", message.len())?;
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        let logged = self.transcript.log(level, message);
        logged.map_err(|error| self.trap(error))
    }
}
