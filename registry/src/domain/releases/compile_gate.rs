//! How many published components the server compiles at once. Checking a
//! publish compiles its component, which takes a core for up to seconds; the
//! gate keeps publishing from taking every core, and counts what runs and
//! what waits for `/metrics`. Each organization compiles one component at a
//! time, so its publishes wait behind its own compile and never hold more
//! than one slot: another organization's publish takes a free slot at once,
//! whatever the first has queued. Each organization may have a few
//! publishes waiting; past that its next publish is refused at once, so one
//! tenant's flood of publishes refuses its own, not another's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most N compiles at once; the rest wait their turn, first come first served.
#[derive(Debug)]
pub struct CompileGate {
    slots: Arc<Semaphore>,
    running: AtomicI64,
    /// Publishes waiting, by organization (only those with some).
    waiting_by_org: Mutex<HashMap<String, usize>>,
    /// Each organization's one compile at a time and compile time left
    /// (organizations that compiled lately; see [`CompileGate::turn`]).
    orgs: Mutex<HashMap<String, Arc<OrgCompiles>>>,
    /// The most publishes one organization may have waiting.
    max_waiting_per_org: usize,
}

/// Compile time one organization may spend at once, in seconds of a
/// core: a bucket this large ...
pub const ORG_COMPILE_BURST_SECS: f64 = 60.0;
/// ... refilled at this fraction of real time (a quarter of one core).
pub const ORG_COMPILE_REFILL: f64 = 0.25;

/// Why a publish gets no compile turn.
#[derive(Debug, thiserror::Error)]
pub enum CompileRefused {
    /// The organization already has the most publishes waiting.
    #[error(
        "{org} already has {waiting} publishes waiting for a compile slot; try again when one finishes"
    )]
    QueueFull {
        /// The organization.
        org: String,
        /// How many of its publishes wait.
        waiting: usize,
    },
    /// The organization spent its compile time.
    #[error(
        "{org} has used its compile time ({ORG_COMPILE_BURST_SECS} s, refilled at a quarter of a core); try again in {retry_in_secs} s"
    )]
    BudgetSpent {
        /// The organization.
        org: String,
        /// When its time is positive again.
        retry_in_secs: u64,
    },
}

/// One organization's compiles: one at a time, within its time.
#[derive(Debug)]
struct OrgCompiles {
    one: Arc<Semaphore>,
    /// Seconds left, and when that was computed.
    left: Mutex<(f64, std::time::Instant)>,
}

impl OrgCompiles {
    /// Seconds left now (refilled).
    fn refill(&self) -> f64 {
        let mut left = self.left.lock().expect("never poisoned");
        let now = std::time::Instant::now();
        left.0 = (left.0 + now.duration_since(left.1).as_secs_f64() * ORG_COMPILE_REFILL)
            .min(ORG_COMPILE_BURST_SECS);
        left.1 = now;
        left.0
    }

    fn charge(&self, seconds: f64) {
        self.refill();
        self.left.lock().expect("never poisoned").0 -= seconds;
    }
}

/// One compile's turn; the next waiting compile starts when it is dropped.
/// It owns its slot, so it can move into the blocking task that compiles:
/// a client that hangs up does not free the slot while the compile runs.
pub struct CompileTurn {
    gate: Arc<CompileGate>,
    org: Arc<OrgCompiles>,
    started: std::time::Instant,
    _slot: OwnedSemaphorePermit,
    _org: OwnedSemaphorePermit,
}

impl CompileGate {
    /// A gate letting `slots` compiles (at least one) run at once, with at
    /// most `max_waiting_per_org` (at least one) publishes of one
    /// organization waiting.
    pub fn new(slots: usize, max_waiting_per_org: usize) -> Arc<CompileGate> {
        Arc::new(CompileGate {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            running: AtomicI64::new(0),
            waiting_by_org: Mutex::new(HashMap::new()),
            orgs: Mutex::new(HashMap::new()),
            max_waiting_per_org: max_waiting_per_org.max(1),
        })
    }

    /// Waits for a turn for a publish of `org`, or refuses at once when the
    /// org already has the most publishes waiting, or (once its earlier
    /// compiles ended) when they spent its compile time.
    pub async fn turn(self: &Arc<Self>, org: &str) -> Result<CompileTurn, CompileRefused> {
        {
            let mut by_org = self.waiting_by_org.lock().expect("never poisoned");
            let waiting = by_org.entry(org.to_owned()).or_insert(0);
            if *waiting >= self.max_waiting_per_org {
                return Err(CompileRefused::QueueFull {
                    org: org.to_owned(),
                    waiting: *waiting,
                });
            }
            *waiting += 1;
        }
        // Counted down even if the waiting request is dropped (its client left).
        let waited = Countdown { gate: self, org };
        let compiles = {
            let mut orgs = self.orgs.lock().expect("never poisoned");
            // Organizations with nothing running or waiting, and their
            // whole time back, are forgotten.
            if orgs.len() > 1024 {
                orgs.retain(|_, org| {
                    Arc::strong_count(org) > 1 || org.refill() < ORG_COMPILE_BURST_SECS
                });
            }
            orgs.entry(org.to_owned())
                .or_insert_with(|| {
                    Arc::new(OrgCompiles {
                        one: Arc::new(Semaphore::new(1)),
                        left: Mutex::new((ORG_COMPILE_BURST_SECS, std::time::Instant::now())),
                    })
                })
                .clone()
        };
        let own = compiles
            .one
            .clone()
            .acquire_owned()
            .await
            .expect("the compile gate is never closed");
        let left = compiles.refill();
        if left <= 0.0 {
            return Err(CompileRefused::BudgetSpent {
                org: org.to_owned(),
                retry_in_secs: (-left / ORG_COMPILE_REFILL).ceil() as u64 + 1,
            });
        }
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the compile gate is never closed");
        drop(waited);
        self.running.fetch_add(1, Relaxed);
        Ok(CompileTurn {
            gate: self.clone(),
            org: compiles,
            started: std::time::Instant::now(),
            _slot: slot,
            _org: own,
        })
    }

    /// Compiles running now.
    pub fn running(&self) -> i64 {
        self.running.load(Relaxed)
    }

    /// Compiles waiting for a turn now.
    pub fn waiting(&self) -> i64 {
        let by_org = self.waiting_by_org.lock().expect("never poisoned");
        by_org.values().sum::<usize>() as i64
    }
}

impl Drop for CompileTurn {
    /// The compile's time (wall clock on its one thread) is charged to its
    /// organization.
    fn drop(&mut self) {
        self.org.charge(self.started.elapsed().as_secs_f64());
        self.gate.running.fetch_sub(1, Relaxed);
    }
}

impl CompileTurn {
    /// Charges `seconds` more to the organization, as if its compile had
    /// taken them (for tests of the budget).
    #[cfg(test)]
    fn charge(&self, seconds: f64) {
        self.org.charge(seconds);
    }
}

/// One publish no longer waiting, however its wait ended.
struct Countdown<'a> {
    gate: &'a CompileGate,
    org: &'a str,
}

impl Drop for Countdown<'_> {
    fn drop(&mut self) {
        let mut by_org = self.gate.waiting_by_org.lock().expect("never poisoned");
        if let Some(waiting) = by_org.get_mut(self.org) {
            *waiting -= 1;
            if *waiting == 0 {
                by_org.remove(self.org);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_are_taken_in_order_and_counted() {
        let gate = CompileGate::new(1, 8);
        let first = gate.turn("acme").await.unwrap();
        assert_eq!((gate.running(), gate.waiting()), (1, 0));
        let mut second = Box::pin(gate.turn("acme"));
        // The second waits while the first runs...
        assert!(futures_poll(&mut second).is_none());
        assert_eq!((gate.running(), gate.waiting()), (1, 1));
        drop(first);
        // ...and runs once it is done.
        let second = futures_poll(&mut second)
            .expect("the freed slot is taken")
            .unwrap();
        assert_eq!((gate.running(), gate.waiting()), (1, 0));
        drop(second);
        assert_eq!((gate.running(), gate.waiting()), (0, 0));
        // A waiter that gives up is no longer counted.
        let held = gate.turn("acme").await.unwrap();
        let mut gave_up = Box::pin(gate.turn("acme"));
        assert!(futures_poll(&mut gave_up).is_none());
        drop(gave_up);
        assert_eq!((gate.running(), gate.waiting()), (1, 0));
        drop(held);
    }

    #[tokio::test]
    async fn each_org_has_a_few_publishes_waiting_at_most() {
        let gate = CompileGate::new(1, 2);
        let running = gate.turn("acme").await.unwrap();
        let mut waiting: Vec<_> = (0..2).map(|_| Box::pin(gate.turn("acme"))).collect();
        for turn in &mut waiting {
            assert!(futures_poll(turn).is_none());
        }
        // acme's third waiting publish is refused at once...
        let refused = futures_poll(&mut Box::pin(gate.turn("acme")))
            .expect("answered at once")
            .err()
            .expect("refused");
        assert!(
            matches!(&refused, CompileRefused::QueueFull { org, waiting: 2 } if org == "acme"),
            "{refused}"
        );
        // ...while globex's waits its turn.
        let mut globex = Box::pin(gate.turn("globex"));
        assert!(futures_poll(&mut globex).is_none());
        assert_eq!(gate.waiting(), 3);
        // A waiter leaving makes room for the org again.
        waiting.pop();
        assert!(futures_poll(&mut Box::pin(gate.turn("acme"))).is_none());
        drop(running);
    }

    #[tokio::test]
    async fn an_org_waits_behind_its_own_compile_not_another_orgs() {
        let gate = CompileGate::new(2, 4);
        let bomb = gate.turn("acme").await.unwrap();
        // A slot is free, but acme's next compile waits for acme's first ...
        let mut queued: Vec<_> = (0..3).map(|_| Box::pin(gate.turn("acme"))).collect();
        for turn in &mut queued {
            assert!(futures_poll(turn).is_none());
        }
        // ... and globex takes the free slot at once.
        let globex = futures_poll(&mut Box::pin(gate.turn("globex")))
            .expect("a free slot is taken at once")
            .unwrap();
        assert_eq!((gate.running(), gate.waiting()), (2, 3));
        drop(globex);
        drop(bomb);
        let next = futures_poll(&mut queued[0]).expect("acme's next").unwrap();
        assert!(futures_poll(&mut queued[1]).is_none(), "one at a time");
        drop(next);
    }

    #[tokio::test]
    async fn an_org_that_spent_its_compile_time_waits_and_others_do_not() {
        let gate = CompileGate::new(2, 4);
        let bomb = gate.turn("acme").await.unwrap();
        bomb.charge(ORG_COMPILE_BURST_SECS + 1.0);
        drop(bomb);
        let refused = gate.turn("acme").await.err().expect("refused");
        assert!(
            matches!(&refused, CompileRefused::BudgetSpent { org, retry_in_secs } if org == "acme" && *retry_in_secs >= 1),
            "{refused}"
        );
        assert!(refused.to_string().contains("compile time"), "{refused}");
        // Nothing of acme's is left running or waiting, and globex compiles.
        assert_eq!((gate.running(), gate.waiting()), (0, 0));
        drop(gate.turn("globex").await.unwrap());
    }

    /// Polls once, without waiting.
    fn futures_poll<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(future).poll(&mut cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        }
    }
}
