//! Who may run the resolver, when, and for how long. A catalog can be built
//! to make PubGrub work for its whole time limit (a pigeonhole of exact
//! requirements, nothing a reviewer would flag), and any viewer can ask for
//! a resolution: so each organization solves one at a time with a few
//! waiting, all solves together take at most as many threads as there are
//! cores, each organization has a budget of solver time that refills
//! slowly, and an answer that nothing resolves is remembered until the
//! organization changes, so asking again costs nothing.

use super::solver::{MAX_RESOLVE_TIME, Unresolvable};
use crate::changes::Stamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Solver time one organization may spend at once: a bucket this large...
pub const ORG_SOLVER_BURST: Duration = Duration::from_secs(4);
/// ... refilled at this fraction of real time (a tenth of one core).
pub const ORG_SOLVER_REFILL: f64 = 0.1;
/// Resolutions of one organization in the gate at once (one runs, the
/// others wait their turn); more are refused at once (429 `capacity`).
pub const ORG_SOLVES_QUEUED: usize = 4;
/// Unresolvable answers one organization keeps remembered; past it, its
/// own start over.
const REMEMBERED_PER_ORG: usize = 256;
/// How long an unresolvable answer is remembered at most, however quiet
/// the organization (a bound on what a missed change could cost).
const REMEMBERED_FOR: Duration = Duration::from_secs(600);

/// Why the resolver did not run.
#[derive(Debug, thiserror::Error)]
pub enum SolverBusy {
    /// The organization has [`ORG_SOLVES_QUEUED`] resolutions in the gate.
    #[error(
        "organization {0:?} has {ORG_SOLVES_QUEUED} dependency resolutions running or waiting; try again shortly"
    )]
    Queue(String),
    /// The organization spent its solver time.
    #[error(
        "organization {org:?} has used its dependency resolver time; try again in {} s",
        .retry_in.as_secs().max(1)
    )]
    Budget {
        /// The organization.
        org: String,
        /// When enough time is back for one more try.
        retry_in: Duration,
    },
}

/// The resolver's gate, shared by every request of a server.
#[derive(Debug)]
pub struct SolverGate {
    threads: Arc<Semaphore>,
    orgs: Mutex<HashMap<String, Arc<OrgSolver>>>,
}

#[derive(Debug)]
struct OrgSolver {
    one_at_a_time: Arc<Semaphore>,
    queued: Arc<Semaphore>,
    budget: Mutex<Bucket>,
    remembered: Mutex<HashMap<String, (Stamp, Unresolvable)>>,
}

/// Solver time left, and when it was last refilled.
#[derive(Debug)]
struct Bucket {
    left: Duration,
    refilled: Instant,
}

impl Bucket {
    fn refill(&mut self) -> Duration {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).mul_f64(ORG_SOLVER_REFILL);
        self.left = (self.left + earned).min(ORG_SOLVER_BURST);
        self.refilled = now;
        self.left
    }
}

fn remember_in(solver: &OrgSolver, key: String, stamp: Stamp, answer: Unresolvable) {
    let mut remembered = solver.remembered.lock().unwrap_or_else(|e| e.into_inner());
    if remembered.len() >= REMEMBERED_PER_ORG && !remembered.contains_key(&key) {
        remembered.clear();
    }
    remembered.insert(key, (stamp, answer));
}

/// A turn at the resolver: at most `limit` of solver time, charged to the
/// organization with [`Turn::spent`].
#[derive(Debug)]
pub struct Turn {
    org: Arc<OrgSolver>,
    /// How long this solve may run.
    pub limit: Duration,
    /// Its place in the org's queue, the org's one turn, a thread.
    _permits: (
        OwnedSemaphorePermit,
        OwnedSemaphorePermit,
        OwnedSemaphorePermit,
    ),
}

impl Turn {
    /// Remembers that `key` of the turn's org resolves to nothing, as read
    /// under `stamp` (taken before the catalog was read), until the org
    /// changes.
    pub fn remember(&self, key: String, stamp: Stamp, answer: Unresolvable) {
        remember_in(&self.org, key, stamp, answer);
    }

    /// Charges what the solve took.
    pub fn spent(self, took: Duration) {
        let mut budget = self.org.budget.lock().unwrap_or_else(|e| e.into_inner());
        budget.refill();
        budget.left = budget.left.saturating_sub(took);
    }
}

impl Default for SolverGate {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SolverGate::new(cores)
    }
}

impl SolverGate {
    /// A gate letting `threads` resolutions run at once in all.
    pub fn new(threads: usize) -> SolverGate {
        SolverGate {
            threads: Arc::new(Semaphore::new(threads.max(1))),
            orgs: Mutex::new(HashMap::new()),
        }
    }

    fn org(&self, org: &str) -> Arc<OrgSolver> {
        self.orgs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(org.to_owned())
            .or_insert_with(|| {
                Arc::new(OrgSolver {
                    one_at_a_time: Arc::new(Semaphore::new(1)),
                    queued: Arc::new(Semaphore::new(ORG_SOLVES_QUEUED)),
                    budget: Mutex::new(Bucket {
                        left: ORG_SOLVER_BURST,
                        refilled: Instant::now(),
                    }),
                    remembered: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// The unresolvable answer remembered for `key` of `org`, while nothing
    /// of the organization changed since it was found.
    pub fn remembered(&self, org: &str, key: &str) -> Option<Unresolvable> {
        let solver = self.org(org);
        let remembered = solver.remembered.lock().unwrap_or_else(|e| e.into_inner());
        remembered
            .get(key)
            .filter(|(stamp, _)| stamp.is_fresh(REMEMBERED_FOR))
            .map(|(_, answer)| answer.clone())
    }

    /// A place in `org`'s queue, and then its one turn (waited for): what
    /// a resolution holds from before it reads the catalog, so that an
    /// org past its queue reads nothing. Refused at once when the queue is
    /// full.
    pub async fn enter(&self, org: &str) -> Result<Entry, SolverBusy> {
        let solver = self.org(org);
        let Ok(queued) = solver.queued.clone().try_acquire_owned() else {
            return Err(SolverBusy::Queue(org.to_owned()));
        };
        let turn = solver
            .one_at_a_time
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        Ok(Entry {
            org: org.to_owned(),
            solver,
            threads: self.threads.clone(),
            permits: (queued, turn),
        })
    }

    /// [`SolverGate::enter`], then [`Entry::turn`].
    #[cfg(test)]
    pub async fn turn(&self, org: &str) -> Result<Turn, SolverBusy> {
        self.enter(org).await?.turn().await
    }
}

/// A resolution's place in its org's queue, holding the org's one turn.
#[derive(Debug)]
pub struct Entry {
    org: String,
    solver: Arc<OrgSolver>,
    threads: Arc<Semaphore>,
    permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Entry {
    /// A thread to solve on, within the org's budget.
    pub async fn turn(self) -> Result<Turn, SolverBusy> {
        let left = self
            .solver
            .budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refill();
        // Less than a tenth of a full solve left: come back later.
        let least = MAX_RESOLVE_TIME / 10;
        if left < least {
            let retry_in = (least - left).div_f64(ORG_SOLVER_REFILL);
            return Err(SolverBusy::Budget {
                org: self.org,
                retry_in,
            });
        }
        let thread = self.threads.acquire_owned().await.expect("never closed");
        let (queued, turn) = self.permits;
        Ok(Turn {
            org: self.solver,
            limit: left.min(MAX_RESOLVE_TIME),
            _permits: (queued, turn, thread),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::Changes;

    #[tokio::test]
    async fn an_org_that_spent_its_time_waits_and_others_do_not() {
        let gate = SolverGate::new(2);
        let turn = gate.turn("acme").await.unwrap();
        assert_eq!(turn.limit, MAX_RESOLVE_TIME);
        turn.spent(Duration::from_secs(2));
        let turn = gate.turn("acme").await.unwrap();
        assert!(turn.limit <= MAX_RESOLVE_TIME);
        turn.spent(Duration::from_millis(1_900));
        // 0.1 s left at most (plus what a few ms refilled): refused.
        let refused = gate.turn("acme").await.unwrap_err();
        assert!(matches!(refused, SolverBusy::Budget { .. }), "{refused}");
        assert!(refused.to_string().contains("acme"), "{refused}");
        // Another organization has its own budget.
        let other = gate.turn("globex").await.unwrap();
        assert_eq!(other.limit, MAX_RESOLVE_TIME);
    }

    #[tokio::test]
    async fn an_org_solves_one_at_a_time_with_a_short_queue() {
        let gate = Arc::new(SolverGate::new(4));
        let first = gate.turn("acme").await.unwrap();
        let mut waiting = Vec::new();
        for _ in 0..ORG_SOLVES_QUEUED - 1 {
            let gate = gate.clone();
            waiting.push(tokio::spawn(
                async move { gate.turn("acme").await.map(drop) },
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The first holds a place in the queue too: the queue is full.
        assert!(matches!(gate.turn("acme").await, Err(SolverBusy::Queue(_))));
        // Another organization is not in acme's queue.
        gate.turn("globex").await.unwrap().spent(Duration::ZERO);
        first.spent(Duration::ZERO);
        for waiter in waiting {
            waiter.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn an_unresolvable_answer_is_remembered_until_the_org_changes() {
        let changes = Changes::default();
        let gate = SolverGate::new(1);
        let answer = Unresolvable {
            lines: vec!["no".into()],
            conclusive: true,
        };
        let turn = gate.turn("acme").await.unwrap();
        turn.remember("a".into(), changes.stamp("acme"), answer.clone());
        turn.spent(Duration::ZERO);
        assert_eq!(gate.remembered("acme", "a"), Some(answer));
        assert_eq!(gate.remembered("acme", "b"), None);
        assert_eq!(gate.remembered("globex", "a"), None);
        changes.changed("globex");
        assert!(gate.remembered("acme", "a").is_some());
        changes.changed("acme");
        assert_eq!(gate.remembered("acme", "a"), None);
    }
}
