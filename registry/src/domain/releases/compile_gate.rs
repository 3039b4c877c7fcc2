//! How many published components the server compiles at once. Checking a
//! publish compiles its component, which takes a core for up to seconds; the
//! gate keeps publishing from taking every core, and counts what runs and
//! what waits for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most N compiles at once; the rest wait their turn, first come first served.
#[derive(Debug)]
pub struct CompileGate {
    slots: Arc<Semaphore>,
    running: AtomicI64,
    waiting: AtomicI64,
}

/// One compile's turn; the next waiting compile starts when it is dropped.
/// It owns its slot, so it can move into the blocking task that compiles:
/// a client that hangs up does not free the slot while the compile runs.
pub struct CompileTurn {
    gate: Arc<CompileGate>,
    _slot: OwnedSemaphorePermit,
}

impl CompileGate {
    /// A gate letting `slots` compiles (at least one) run at once.
    pub fn new(slots: usize) -> Arc<CompileGate> {
        Arc::new(CompileGate {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            running: AtomicI64::new(0),
            waiting: AtomicI64::new(0),
        })
    }

    /// Waits for a turn.
    pub async fn turn(self: &Arc<Self>) -> CompileTurn {
        self.waiting.fetch_add(1, Relaxed);
        // Counted down even if the waiting request is dropped (its client left).
        let waited = Countdown(&self.waiting);
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the compile gate is never closed");
        drop(waited);
        self.running.fetch_add(1, Relaxed);
        CompileTurn {
            gate: self.clone(),
            _slot: slot,
        }
    }

    /// Compiles running now.
    pub fn running(&self) -> i64 {
        self.running.load(Relaxed)
    }

    /// Compiles waiting for a turn now.
    pub fn waiting(&self) -> i64 {
        self.waiting.load(Relaxed)
    }
}

impl Drop for CompileTurn {
    fn drop(&mut self) {
        self.gate.running.fetch_sub(1, Relaxed);
    }
}

struct Countdown<'a>(&'a AtomicI64);

impl Drop for Countdown<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_are_taken_in_order_and_counted() {
        let gate = CompileGate::new(1);
        let first = gate.turn().await;
        assert_eq!((gate.running(), gate.waiting()), (1, 0));
        let mut second = Box::pin(gate.turn());
        // The second waits while the first runs...
        assert!(futures_poll(&mut second).is_none());
        assert_eq!((gate.running(), gate.waiting()), (1, 1));
        drop(first);
        // ...and runs once it is done.
        let second = futures_poll(&mut second).expect("the freed slot is taken");
        assert_eq!((gate.running(), gate.waiting()), (1, 0));
        drop(second);
        assert_eq!((gate.running(), gate.waiting()), (0, 0));
        // A waiter that gives up is no longer counted.
        let held = gate.turn().await;
        let mut gave_up = Box::pin(gate.turn());
        assert!(futures_poll(&mut gave_up).is_none());
        drop(gave_up);
        assert_eq!((gate.running(), gate.waiting()), (1, 0));
        drop(held);
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
