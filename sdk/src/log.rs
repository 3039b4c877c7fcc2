//! Levelled logging into the invocation transcript.
//!
//! Messages and anything written to stdout or stderr share one byte budget per
//! invocation; writing past it stops the invocation with a `log-limit` error.

pub use crate::bindings::warden::plugin::log::Level;

/// Writes one message at `level`.
pub fn write(level: Level, message: &str) {
    crate::bindings::warden::plugin::log::write(level, message);
}

/// Logs a formatted message at `trace` level.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Trace, &::std::format!($($arg)*)) };
}

/// Logs a formatted message at `debug` level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, &::std::format!($($arg)*)) };
}

/// Logs a formatted message at `info` level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs a formatted message at `warn` level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs a formatted message at `error` level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, &::std::format!($($arg)*)) };
}
