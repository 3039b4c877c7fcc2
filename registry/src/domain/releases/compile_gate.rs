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
    /// Each organization's one compile at a time (organizations that
    /// compiled lately; see [`CompileGate::turn`]).
    one_per_org: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The most publishes one organization may have waiting.
    max_waiting_per_org: usize,
}

/// An organization already has the most publishes waiting for a compile.
#[derive(Debug, thiserror::Error)]
#[error(
    "{org} already has {waiting} publishes waiting for a compile slot; try again when one finishes"
)]
pub struct QueueFull {
    /// The organization.
    pub org: String,
    /// How many of its publishes wait.
    pub waiting: usize,
}

/// One compile's turn; the next waiting compile starts when it is dropped.
/// It owns its slot, so it can move into the blocking task that compiles:
/// a client that hangs up does not free the slot while the compile runs.
pub struct CompileTurn {
    gate: Arc<CompileGate>,
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
            one_per_org: Mutex::new(HashMap::new()),
            max_waiting_per_org: max_waiting_per_org.max(1),
        })
    }

    /// Waits for a turn for a publish of `org`, or refuses at once when the
    /// org already has the most publishes waiting.
    pub async fn turn(self: &Arc<Self>, org: &str) -> Result<CompileTurn, QueueFull> {
        {
            let mut by_org = self.waiting_by_org.lock().expect("never poisoned");
            let waiting = by_org.entry(org.to_owned()).or_insert(0);
            if *waiting >= self.max_waiting_per_org {
                return Err(QueueFull {
                    org: org.to_owned(),
                    waiting: *waiting,
                });
            }
            *waiting += 1;
        }
        // Counted down even if the waiting request is dropped (its client left).
        let waited = Countdown { gate: self, org };
        let own = {
            let mut orgs = self.one_per_org.lock().expect("never poisoned");
            // Organizations with nothing running or waiting are forgotten.
            if orgs.len() > 1024 {
                orgs.retain(|_, one| Arc::strong_count(one) > 1 || one.available_permits() == 0);
            }
            orgs.entry(org.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        let own = own
            .acquire_owned()
            .await
            .expect("the compile gate is never closed");
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
    fn drop(&mut self) {
        self.gate.running.fetch_sub(1, Relaxed);
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
        assert_eq!((refused.org.as_str(), refused.waiting), ("acme", 2));
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
