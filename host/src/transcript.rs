//! The transcript of one invocation: log messages and stdout/stderr, sharing one
//! byte budget ([`Limits::log_bytes`](crate::Limits::log_bytes)).

use crate::error::Error;
use crate::limits::{LimitKind, format_bytes};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Severity of a log message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Step-by-step detail.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected but handled.
    Warn,
    /// Something failed.
    Error,
}

/// Where a transcript entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// `warden:plugin/log`, at a level.
    Log(LogLevel),
    /// The plugin's stdout.
    Stdout,
    /// The plugin's stderr (where Rust panics print).
    Stderr,
    /// A note from the host, e.g. a refused HTTP request.
    Host,
}

/// One entry of the transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Where it came from.
    pub source: LogSource,
    /// The text (stdout/stderr chunks are joined until a newline).
    pub message: String,
    /// The dependency that wrote it (`org/name@version`); `None` for the
    /// invoked plugin itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

/// What each entry costs of the log budget beyond its text: an empty
/// message is not free.
pub const LOG_ENTRY_OVERHEAD: u64 = 64;
/// Most entries one invocation's transcript holds.
pub const MAX_LOG_ENTRIES: usize = 10_000;

#[derive(Debug)]
struct Inner {
    entries: Vec<LogEntry>,
    bytes: u64,
    limit: u64,
}

/// A shared, size-capped transcript. Every plugin of one invocation's call
/// tree writes to the same one (one budget), each entry labelled with the
/// dependency that wrote it.
#[derive(Clone, Debug)]
pub(crate) struct Transcript {
    shared: Arc<Mutex<Inner>>,
    plugin: Option<Arc<str>>,
}

impl Transcript {
    pub(crate) fn new(limit: u64) -> Transcript {
        Transcript {
            shared: Arc::new(Mutex::new(Inner {
                entries: Vec::new(),
                bytes: 0,
                limit,
            })),
            plugin: None,
        }
    }

    /// The same transcript, whose new entries name the dependency `plugin`.
    pub(crate) fn labelled(&self, plugin: &str) -> Transcript {
        Transcript {
            shared: self.shared.clone(),
            plugin: Some(plugin.into()),
        }
    }

    fn label(&self) -> Option<String> {
        self.plugin.as_deref().map(str::to_owned)
    }

    fn is_mine(&self, entry: &LogEntry) -> bool {
        entry.plugin.as_deref() == self.plugin.as_deref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Charges `bytes` of text, plus the entry overhead when it starts a new
    /// entry, which must fit under [`MAX_LOG_ENTRIES`].
    fn charge(inner: &mut Inner, bytes: usize, new_entry: bool) -> Result<(), Error> {
        if new_entry && inner.entries.len() >= MAX_LOG_ENTRIES {
            return Err(Error::limit(
                LimitKind::Log,
                format!("the plugin wrote more than {MAX_LOG_ENTRIES} log entries"),
            ));
        }
        let overhead = if new_entry { LOG_ENTRY_OVERHEAD } else { 0 };
        let total = inner
            .bytes
            .saturating_add(bytes as u64)
            .saturating_add(overhead);
        if total > inner.limit {
            return Err(Error::limit(
                LimitKind::Log,
                format!(
                    "the plugin wrote more than {} of log and stdout/stderr",
                    format_bytes(inner.limit)
                ),
            ));
        }
        inner.bytes = total;
        Ok(())
    }

    /// Appends a log message, or fails if the budget is spent.
    pub(crate) fn log(&self, level: LogLevel, message: String) -> Result<(), Error> {
        let mut inner = self.lock();
        Self::charge(&mut inner, message.len(), true)?;
        inner.entries.push(LogEntry {
            source: LogSource::Log(level),
            message,
            plugin: self.label(),
        });
        Ok(())
    }

    /// Appends stdout/stderr bytes, or fails if the budget is spent.
    pub(crate) fn write(&self, source: LogSource, bytes: &[u8]) -> Result<(), Error> {
        let mut inner = self.lock();
        let continues = matches!(
            inner.entries.last(),
            Some(last) if last.source == source && self.is_mine(last) && !last.message.ends_with('\n')
        );
        Self::charge(&mut inner, bytes.len(), !continues)?;
        let text = String::from_utf8_lossy(bytes);
        match inner.entries.last_mut() {
            Some(last) if continues => last.message.push_str(&text),
            _ => inner.entries.push(LogEntry {
                source,
                message: text.into_owned(),
                plugin: self.label(),
            }),
        }
        Ok(())
    }

    /// A note from the host; not charged to the plugin's budget, but at most a
    /// handful are kept.
    pub(crate) fn note(&self, message: String) {
        let mut inner = self.lock();
        let notes = inner
            .entries
            .iter()
            .filter(|e| e.source == LogSource::Host)
            .count();
        if notes < 32 {
            inner.entries.push(LogEntry {
                source: LogSource::Host,
                message,
                plugin: self.label(),
            });
        }
    }

    pub(crate) fn take(&self) -> Vec<LogEntry> {
        std::mem::take(&mut self.lock().entries)
    }

    /// The last panic message the plugin printed on stderr, if any.
    pub(crate) fn panic_message(&self) -> Option<String> {
        let inner = self.lock();
        let stderr: String = inner
            .entries
            .iter()
            .filter(|e| e.source == LogSource::Stderr && self.is_mine(e))
            .map(|e| e.message.as_str())
            .collect();
        let start = stderr.rfind("panicked at")?;
        let message = &stderr[start..];
        // Rust prints `panicked at FILE:LINE:COL:\nMESSAGE\nnote: ...`: keep one line.
        let message = message.split("\nnote: ").next().unwrap_or(message);
        let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
        Some(one_line.chars().take(512).collect())
    }
}

/// A plugin's stdout or stderr, captured into the transcript.
#[derive(Clone)]
pub(crate) struct CapturedStream {
    pub(crate) transcript: Transcript,
    pub(crate) source: LogSource,
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.transcript
            .write(self.source, &bytes)
            .map_err(|error| StreamError::Trap(wasmtime::Error::new(error)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CapturedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.transcript
                .write(self.source, buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_between_log_and_stdout() {
        // Two entries: their text and the overhead of each.
        let transcript = Transcript::new(10 + 2 * LOG_ENTRY_OVERHEAD);
        transcript.log(LogLevel::Info, "12345".into()).unwrap();
        transcript.write(LogSource::Stdout, b"12345").unwrap();
        let error = transcript.write(LogSource::Stdout, b"!").unwrap_err();
        assert_eq!(error.code(), "log_limit");
        assert_eq!(transcript.take().len(), 2);
    }

    #[test]
    fn stdout_chunks_join_until_a_newline() {
        let transcript = Transcript::new(1000);
        transcript.write(LogSource::Stdout, b"hel").unwrap();
        transcript.write(LogSource::Stdout, b"lo\n").unwrap();
        transcript.write(LogSource::Stdout, b"next").unwrap();
        let entries = transcript.take();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].message, "hello\n");
        assert_eq!(entries[1].message, "next");
    }
}
