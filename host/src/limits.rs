//! The limits of one invocation: one type, its defaults, and the parsing of sizes
//! and durations that users type (`64MiB`, `2s`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Per-invocation limits. Every field has a default; admins override them per
/// plugin. Each limit, when hit, ends the invocation with
/// [`Error::LimitExceeded`](crate::Error::LimitExceeded) naming its [`LimitKind`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Fuel: roughly, WebAssembly instructions executed.
    pub fuel: u64,
    /// Linear memory, summed over the component's memories, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock time of one invocation, host calls included.
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
    /// Elements of all tables together.
    pub table_elements: u64,
    /// Core instances one invocation may create.
    pub instances: u32,
    /// Tables one invocation may create.
    pub tables: u32,
    /// Linear memories one invocation may create.
    pub memories: u32,
    /// Bytes of log messages plus stdout and stderr.
    pub log_bytes: u64,
    /// Size of the result, counted as the bytes of its JSON encoding.
    pub result_bytes: u64,
    /// Size of one argument of a host call (a log message, a kv value, ...).
    pub host_call_bytes: u64,
    /// Invocations of one plugin running at the same time.
    pub concurrency: u32,
    /// Keys in the plugin's key-value namespace.
    pub kv_keys: u64,
    /// Size of one value in the key-value namespace.
    pub kv_value_bytes: u64,
    /// Bytes the key-value namespace holds, keys and values together.
    pub kv_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 2_000_000_000,
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(5),
            table_elements: 100_000,
            // componentize-py's --stub-wasi build of a small plugin needs 38.
            instances: 64,
            tables: 32,
            memories: 8,
            log_bytes: 1 << 20,
            result_bytes: 4 << 20,
            host_call_bytes: 1 << 20,
            concurrency: 16,
            kv_keys: 10_000,
            kv_value_bytes: 256 << 10,
            kv_bytes: 64 << 20,
        }
    }
}

/// How many bytes of host memory reading a result may take per byte of
/// [`Limits::result_bytes`]. wasmtime reads a plugin's result into `Val`s (one
/// per element, dozens of bytes each) before Warden writes it out as JSON, and a
/// list of small numbers is 2 to 4 bytes of JSON per element; lists whose
/// elements share the same bytes of guest memory cost even more per byte of
/// guest memory. wasmtime stops reading past [`Limits::read_budget`].
pub const RESULT_READ_FACTOR: u64 = 16;

/// The most host memory one read may take, whatever the limits (wasmtime's
/// own default): at the maximum result limit, 16 x 64 MiB would be 1 GiB.
pub const MAX_READ_BUDGET: u64 = 128 << 20;

/// Added to [`Limits::read_budget`], so that small limits still read the
/// bookkeeping of a result (field names, the outer list).
pub const READ_SLACK_BYTES: u64 = 64 << 10;

impl Limits {
    /// The host memory wasmtime may allocate to read one value out of the
    /// plugin: its result ([`RESULT_READ_FACTOR`] times [`Limits::result_bytes`])
    /// or the arguments of one host call ([`Limits::host_call_bytes`]), whichever
    /// is larger, plus [`READ_SLACK_BYTES`]. A result that does not fit is
    /// `result_too_large` before it is fully read; a host call,
    /// `host_call_too_large`.
    pub fn read_budget(&self) -> usize {
        self.read_budget_divided(1)
    }

    /// [`Limits::read_budget`] with its result part divided by `divisor`
    /// (results whose lifted form costs more than wasmtime charges), never
    /// below what one host-call argument needs, and at most
    /// [`MAX_READ_BUDGET`] whatever the limits.
    pub fn read_budget_divided(&self, divisor: u64) -> usize {
        let result = self.result_bytes.saturating_mul(RESULT_READ_FACTOR) / divisor.max(1);
        let budget = result
            .max(self.host_call_bytes)
            .saturating_add(READ_SLACK_BYTES)
            .min(MAX_READ_BUDGET);
        usize::try_from(budget).unwrap_or(usize::MAX)
    }

    /// The names [`Limits::set`] accepts.
    pub const NAMES: [&'static str; 14] = [
        "fuel",
        "memory",
        "timeout",
        "table_elements",
        "instances",
        "tables",
        "memories",
        "log_bytes",
        "result_bytes",
        "host_call_bytes",
        "concurrency",
        "kv_keys",
        "kv_value_bytes",
        "kv_bytes",
    ];

    /// The server's default maxima of what an admin may approve: generous
    /// for real plugins, refusing what would let one release monopolize a
    /// server (an operator can change each).
    pub fn default_maxima() -> Limits {
        Limits {
            fuel: 50_000_000_000,
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(30),
            table_elements: 1_000_000,
            instances: 256,
            tables: 128,
            memories: 32,
            log_bytes: 16 << 20,
            result_bytes: 64 << 20,
            host_call_bytes: 16 << 20,
            concurrency: 256,
            kv_keys: 1_000_000,
            kv_value_bytes: 4 << 20,
            kv_bytes: 1 << 30,
        }
    }

    /// Each limit by its name, as people read it (`64 MiB`, `5s`).
    pub fn entries(&self) -> [(&'static str, String); 14] {
        let count = |n: u64| n.to_string();
        [
            ("fuel", count(self.fuel)),
            ("memory", format_bytes(self.memory_bytes)),
            ("timeout", format_duration(self.timeout)),
            ("table_elements", count(self.table_elements)),
            ("instances", count(self.instances.into())),
            ("tables", count(self.tables.into())),
            ("memories", count(self.memories.into())),
            ("log_bytes", format_bytes(self.log_bytes)),
            ("result_bytes", format_bytes(self.result_bytes)),
            ("host_call_bytes", format_bytes(self.host_call_bytes)),
            ("concurrency", count(self.concurrency.into())),
            ("kv_keys", count(self.kv_keys)),
            ("kv_value_bytes", format_bytes(self.kv_value_bytes)),
            ("kv_bytes", format_bytes(self.kv_bytes)),
        ]
    }

    /// The limits of `self` above `maxima`, each worded as
    /// `memory 1 GiB (at most 512 MiB)`.
    pub fn above(&self, maxima: &Limits) -> Vec<String> {
        let over = [
            self.fuel > maxima.fuel,
            self.memory_bytes > maxima.memory_bytes,
            self.timeout > maxima.timeout,
            self.table_elements > maxima.table_elements,
            self.instances > maxima.instances,
            self.tables > maxima.tables,
            self.memories > maxima.memories,
            self.log_bytes > maxima.log_bytes,
            self.result_bytes > maxima.result_bytes,
            self.host_call_bytes > maxima.host_call_bytes,
            self.concurrency > maxima.concurrency,
            self.kv_keys > maxima.kv_keys,
            self.kv_value_bytes > maxima.kv_value_bytes,
            self.kv_bytes > maxima.kv_bytes,
        ];
        self.entries()
            .into_iter()
            .zip(maxima.entries())
            .zip(over)
            .filter(|(_, over)| *over)
            .map(|(((name, value), (_, maximum)), _)| format!("{name} {value} (at most {maximum})"))
            .collect()
    }

    /// Sets one limit from a command-line `NAME=VALUE` (`memory=16MiB`).
    pub fn set_pair(&mut self, pair: &str) -> Result<(), String> {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("limit {pair:?}: expected NAME=VALUE"))?;
        self.set(name.trim(), value.trim())
    }

    /// Sets one limit from text as users write it: `fuel=1000000`,
    /// `memory=32MiB`, `timeout=2s`, `log_bytes=64KiB`, `concurrency=4`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let count = || {
            value
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("limit {name}: {value:?} is not a whole number"))
        };
        let small = || {
            count().and_then(|n| {
                u32::try_from(n).map_err(|_| format!("limit {name}: {value} is too large"))
            })
        };
        let bytes = || parse_bytes(value).map_err(|e| format!("limit {name}: {e}"));
        match name {
            "fuel" => self.fuel = count()?,
            "memory" | "memory_bytes" => self.memory_bytes = bytes()?,
            "timeout" => {
                self.timeout = parse_duration(value).map_err(|e| format!("limit {name}: {e}"))?
            }
            "table_elements" => self.table_elements = count()?,
            "instances" => self.instances = small()?,
            "tables" => self.tables = small()?,
            "memories" => self.memories = small()?,
            "log_bytes" => self.log_bytes = bytes()?,
            "result_bytes" => self.result_bytes = bytes()?,
            "host_call_bytes" => self.host_call_bytes = bytes()?,
            "concurrency" => self.concurrency = small()?,
            "kv_keys" => self.kv_keys = count()?,
            "kv_value_bytes" => self.kv_value_bytes = bytes()?,
            "kv_bytes" => self.kv_bytes = bytes()?,
            _ => {
                return Err(format!(
                    "unknown limit {name:?} (expected one of {})",
                    Limits::NAMES.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Which limit stopped an invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// [`Limits::fuel`].
    Fuel,
    /// [`Limits::memory_bytes`].
    Memory,
    /// [`Limits::timeout`].
    Deadline,
    /// The engine's wasm stack size.
    Stack,
    /// [`Limits::table_elements`] or [`Limits::tables`].
    Tables,
    /// [`Limits::instances`] or [`Limits::memories`].
    Instances,
    /// [`Limits::log_bytes`].
    Log,
    /// [`Limits::result_bytes`].
    Result,
    /// [`Limits::host_call_bytes`].
    HostCall,
}

impl LimitKind {
    /// The stable error code of this limit, e.g. `out_of_fuel`.
    pub fn code(self) -> &'static str {
        match self {
            LimitKind::Fuel => "out_of_fuel",
            LimitKind::Memory => "memory_limit",
            LimitKind::Deadline => "deadline_exceeded",
            LimitKind::Stack => "stack_overflow",
            LimitKind::Tables => "table_limit",
            LimitKind::Instances => "instance_limit",
            LimitKind::Log => "log_limit",
            LimitKind::Result => "result_too_large",
            LimitKind::HostCall => "host_call_too_large",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Fuel => "fuel",
            LimitKind::Memory => "memory",
            LimitKind::Deadline => "time",
            LimitKind::Stack => "stack",
            LimitKind::Tables => "table",
            LimitKind::Instances => "instance",
            LimitKind::Log => "log",
            LimitKind::Result => "result size",
            LimitKind::HostCall => "host call argument",
        })
    }
}

/// Splits `64 MiB` into `(64, "MiB")`; `what` words the error.
fn number_and_unit<'a>(text: &'a str, what: &str) -> Result<(u64, &'a str), String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number = number
        .parse()
        .map_err(|_| format!("{text:?} is not {what}"))?;
    Ok((number, unit.trim()))
}

/// Parses a byte size: `65536`, `64KiB`, `64MiB`, `1GiB`, `10MB` (decimal units
/// are accepted too).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let (number, unit) = number_and_unit(text, "a size (try 64MiB)")?;
    let text = text.trim();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1_000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (try KiB, MiB, GiB)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a duration: `250ms`, `2s`, `1m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = number_and_unit(text, "a duration (try 2s or 500ms)")?;
    let text = text.trim();
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => Ok(Duration::from_secs(number)),
        "m" | "min" => Ok(Duration::from_secs(number.saturating_mul(60))),
        other => Err(format!(
            "unknown duration unit {other:?} in {text:?} (try ms, s, m)"
        )),
    }
}

/// `1.5s`, `250ms`.
pub fn format_duration(duration: Duration) -> String {
    if duration.as_millis() < 1_000 {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}s", duration.as_secs_f64())
    }
}

/// `64 MiB`, `512 KiB`, `1536 bytes`, `100.5 MiB`: exact where it matters.
pub fn format_bytes(bytes: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    match bytes {
        b if b >= GIB && b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= MIB => format!("{:.1} MiB", b as f64 / MIB as f64),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b if b >= 10 * KIB => format!("{:.1} KiB", b as f64 / KIB as f64),
        b => format!("{b} bytes"),
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_set_by_name_with_units() {
        let mut limits = Limits::default();
        limits.set("memory", "32MiB").unwrap();
        limits.set("timeout", "250ms").unwrap();
        limits.set("fuel", "1_000_000").unwrap();
        limits.set("concurrency", "4").unwrap();
        assert_eq!(limits.memory_bytes, 32 << 20);
        assert_eq!(limits.timeout, Duration::from_millis(250));
        assert_eq!(limits.fuel, 1_000_000);
        assert_eq!(limits.concurrency, 4);
        assert!(
            limits
                .set("concurrency", "5000000000")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            limits
                .set("fuel", "lots")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(
            limits
                .set("speed", "1")
                .unwrap_err()
                .contains("unknown limit \"speed\"")
        );
    }

    #[test]
    fn limits_above_the_maxima_are_named_on_both_sides() {
        let maxima = Limits::default_maxima();
        assert!(Limits::default().above(&maxima).is_empty());
        assert!(
            maxima.above(&maxima).is_empty(),
            "the maximum itself is allowed"
        );
        let mut greedy = maxima.clone();
        greedy.memory_bytes += 1;
        greedy.timeout = Duration::from_secs(60);
        greedy.fuel = u64::MAX;
        assert_eq!(
            greedy.above(&maxima),
            [
                format!("fuel {} (at most 50000000000)", u64::MAX),
                "memory 512.0 MiB (at most 512 MiB)".to_owned(),
                "timeout 60s (at most 30s)".to_owned(),
            ]
        );
    }

    #[test]
    fn limits_are_set_from_name_value_pairs() {
        let mut limits = Limits::default();
        limits.set_pair("instances=64").unwrap();
        limits.set_pair(" memory = 16MiB ").unwrap();
        assert_eq!(limits.instances, 64);
        assert_eq!(limits.memory_bytes, 16 << 20);
        assert!(
            limits
                .set_pair("instances")
                .unwrap_err()
                .contains("expected NAME=VALUE")
        );
        assert!(limits.set_pair("tables=-1").unwrap_err().contains("tables"));
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("64 mib"), Ok(64 << 20));
        assert_eq!(parse_bytes("10MB"), Ok(10_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert!(parse_bytes("lots").unwrap_err().contains("not a size"));
        assert!(
            parse_bytes("3 parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_bytes("99999999999999999999GiB").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(
            parse_duration("2h")
                .unwrap_err()
                .contains("unknown duration unit")
        );
    }

    #[test]
    fn limits_deserialize_strictly_with_defaults_for_missing_fields() {
        let limits: Limits = serde_json::from_str(r#"{"fuel": 5, "timeout": 1500}"#).unwrap();
        assert_eq!(limits.fuel, 5);
        assert_eq!(limits.timeout, Duration::from_millis(1500));
        assert_eq!(limits.memory_bytes, Limits::default().memory_bytes);
        let error = serde_json::from_str::<Limits>(r#"{"fuell": 5}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `fuell`"),
            "{error}"
        );
    }

    #[test]
    fn sizes_format_readably() {
        assert_eq!(format_bytes(64 << 20), "64 MiB");
        assert_eq!(format_bytes(1 << 30), "1 GiB");
        assert_eq!(format_bytes(1536), "1536 bytes");
        assert_eq!(format_bytes(1025), "1025 bytes");
        assert_eq!(format_bytes((100 << 20) + (1 << 19)), "100.5 MiB");
        assert_eq!(format_bytes(12), "12 bytes");
    }
}
