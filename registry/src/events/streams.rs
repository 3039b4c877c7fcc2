//! How many event streams may be open: a stream holds a connection for as
//! long as its client keeps it, so one token, one organization and the
//! whole server each have a bound, and a stream ends after
//! [`STREAM_LIFETIME`] (its client resumes with `Last-Event-ID`, losing
//! nothing). Without them one tenant could hold every connection the
//! server accepts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Streams one token may have open at once.
pub const STREAMS_PER_TOKEN: usize = 4;
/// Streams one organization may have open at once.
pub const STREAMS_PER_ORG: usize = 32;
/// Streams the server keeps open at once (well under its connection limit).
pub const STREAMS_IN_ALL: usize = 256;
/// The longest one stream lasts.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The open streams, counted.
#[derive(Debug)]
pub struct StreamGate {
    per_token: usize,
    per_org: usize,
    in_all: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    all: usize,
    by_org: HashMap<String, usize>,
    by_token: HashMap<String, usize>,
}

/// Why a stream was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamsFull {
    /// The token has its share open.
    #[error("this token has {0} event streams open, the most it may; close one first")]
    Token(usize),
    /// The organization has its share open.
    #[error("the organization has {0} event streams open, the most it may")]
    Org(usize),
    /// The server has as many as it keeps.
    #[error("the server has {0} event streams open, the most it keeps; try again later")]
    Server(usize),
}

/// An open stream's place, given back when it is dropped.
#[derive(Debug)]
pub struct StreamPermit {
    gate: Arc<StreamGate>,
    org: String,
    token: String,
}

impl Default for StreamGate {
    fn default() -> StreamGate {
        StreamGate::new(STREAMS_PER_TOKEN, STREAMS_PER_ORG, STREAMS_IN_ALL)
    }
}

impl StreamGate {
    /// A gate with these bounds.
    pub fn new(per_token: usize, per_org: usize, in_all: usize) -> StreamGate {
        StreamGate {
            per_token,
            per_org,
            in_all,
            open: Mutex::default(),
        }
    }

    /// A place for a stream of `org` read with the token `token_id`.
    pub fn admit(
        self: &Arc<StreamGate>,
        org: &str,
        token_id: &str,
    ) -> Result<StreamPermit, StreamsFull> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.by_token.get(token_id).copied().unwrap_or(0) >= self.per_token {
            return Err(StreamsFull::Token(self.per_token));
        }
        if open.by_org.get(org).copied().unwrap_or(0) >= self.per_org {
            return Err(StreamsFull::Org(self.per_org));
        }
        if open.all >= self.in_all {
            return Err(StreamsFull::Server(self.in_all));
        }
        open.all += 1;
        *open.by_org.entry(org.to_owned()).or_default() += 1;
        *open.by_token.entry(token_id.to_owned()).or_default() += 1;
        Ok(StreamPermit {
            gate: self.clone(),
            org: org.to_owned(),
            token: token_id.to_owned(),
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.all = open.all.saturating_sub(1);
        let Open {
            by_org, by_token, ..
        } = &mut *open;
        for (map, key) in [(by_org, &self.org), (by_token, &self.token)] {
            if let Some(count) = map.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_holds_and_frees_its_place() {
        let gate = Arc::new(StreamGate::new(2, 3, 4));
        let a1 = gate.admit("acme", "t1").unwrap();
        let _a2 = gate.admit("acme", "t1").unwrap();
        assert_eq!(gate.admit("acme", "t1").unwrap_err(), StreamsFull::Token(2));
        let _a3 = gate.admit("acme", "t2").unwrap();
        assert_eq!(gate.admit("acme", "t3").unwrap_err(), StreamsFull::Org(3));
        let _g1 = gate.admit("globex", "t4").unwrap();
        assert_eq!(
            gate.admit("initech", "t5").unwrap_err(),
            StreamsFull::Server(4)
        );
        drop(a1);
        let again = gate.admit("acme", "t1").unwrap();
        assert_eq!(gate.admit("acme", "t1").unwrap_err(), StreamsFull::Token(2));
        assert_eq!(gate.open.lock().unwrap().all, 4);
        drop((again, _a2, _a3, _g1));
        let open = gate.open.lock().unwrap();
        assert_eq!(open.all, 0);
        assert!(
            open.by_token.is_empty() && open.by_org.is_empty(),
            "no entry left at zero"
        );
    }
}
