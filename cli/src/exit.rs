//! Exit codes that mean something, and the one-line failure the CLI prints.

use warden_host::Error;

/// Success.
pub const OK: u8 = 0;
/// The plugin ran and returned its own error (`result::err`).
pub const PLUGIN_ERROR: u8 = 1;
/// The input was refused: unreadable file, not a component, unknown function,
/// bad arguments, missing capabilities, invalid limits.
pub const INVALID_INPUT: u8 = 3;
/// A limit stopped the plugin (fuel, memory, time, stack, log, result...).
pub const LIMIT_EXCEEDED: u8 = 4;
/// The plugin trapped or panicked.
pub const TRAP: u8 = 5;
/// Too many concurrent invocations, or the engine is at capacity.
pub const BUSY: u8 = 6;
/// Bad command-line usage (clap uses the same code).
pub const USAGE: u8 = 2;
/// The server refused the credentials or the role.
pub const DENIED: u8 = 7;
/// A check found tampering (e.g. a broken audit chain).
pub const TAMPERED: u8 = 8;
/// The server or its database is unreachable or unavailable (try again).
pub const UNAVAILABLE: u8 = 69;
/// Warden itself failed.
pub const HOST_FAILURE: u8 = 70;
/// Standard output was closed before everything was written: what a shell
/// shows for a process that SIGPIPE ended (128 + 13), without the signal.
pub const BROKEN_PIPE: u8 = 141;

/// Writes one line to standard output (see `outln!`). A closed pipe ends
/// the process at once with [`BROKEN_PIPE`] and nothing on standard error;
/// any other write failure is reported as Warden's own.
pub fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE.into());
        }
        eprintln!("error: writing to standard output: {error}");
        std::process::exit(HOST_FAILURE.into());
    }
}

/// What went wrong, already worded for the user, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(INVALID_INPUT, message)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::new(code_of(&error), error.to_string())
    }
}

/// The exit code for a host error.
pub fn code_of(error: &Error) -> u8 {
    match error.innermost() {
        Error::LimitExceeded { .. } => LIMIT_EXCEEDED,
        Error::Trap { .. } => TRAP,
        Error::TooManyConcurrent { .. } | Error::Capacity(_) => BUSY,
        Error::Host(_) | Error::Io { .. } => HOST_FAILURE,
        _ => INVALID_INPUT,
    }
}

/// Reads a component file, with the path in the error.
pub fn read_component(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::invalid(format!("reading {}: {e}", path.display())))
}
