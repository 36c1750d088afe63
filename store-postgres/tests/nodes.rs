//! Several nodes on one database, in one process: each manager has a store of its own
//! (its own connections, node name and leases), as separate machines would. A cancel on
//! one node stops the job running on another; unique keys hold under concurrent enqueues
//! from three nodes; the server restarted under load loses no acknowledged job and the
//! nodes resume by themselves.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use errand_conformance::postgres::{Cluster, fresh_schema, url};
use errand_store_postgres::PgStore;
use errand_threads::prelude::*;
use serde::{Deserialize, Serialize};

/// The longest any wait here may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

fn store(url: &str, schema: &str, node: &str) -> PgStore {
    PgStore::options(url)
        .schema(schema)
        .node(node)
        .lease(Duration::from_secs(3))
        .poll(Duration::from_millis(200))
        // No test here is about how fast the server answers: a commit queued behind a
        // loaded machine's other tests (it took over 5 s once) is not a failure.
        .timeout(Duration::from_secs(30))
        .open()
        .expect("the store opens")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sleeps a minute, noting when its run is dropped (stopped).
#[derive(Serialize, Deserialize)]
struct Sleeper;

static SLEEPER_STARTED: AtomicBool = AtomicBool::new(false);
static SLEEPER_STOPPED: AtomicBool = AtomicBool::new(false);

struct NoteStop;

impl Drop for NoteStop {
    fn drop(&mut self) {
        SLEEPER_STOPPED.store(true, Ordering::SeqCst);
    }
}

impl DurableJob for Sleeper {
    const KIND: &'static str = "nodes-sleeper";
    type Output = ();

    async fn run(&self, ctx: Context) -> Result<(), BoxError> {
        let _note = NoteStop;
        SLEEPER_STARTED.store(true, Ordering::SeqCst);
        ctx.sleep(Duration::from_secs(60)).await;
        Ok(())
    }
}

#[test]
fn a_cancel_on_one_node_stops_the_job_running_on_another() {
    let url = url();
    let schema = fresh_schema("cancel");
    let a = builder()
        .store(store(&url, &schema, "node-a"))
        .register::<Sleeper>()
        .build()
        .unwrap();
    // Node B runs nothing of this kind: it only cancels.
    let b = builder()
        .store(store(&url, &schema, "node-b"))
        .build()
        .unwrap();
    let id = b.enqueue(Sleeper, JobOptions::new()).wait().unwrap();
    wait_until("node A starts the job", || {
        SLEEPER_STARTED.load(Ordering::SeqCst)
    });
    let running = a.job(id).unwrap().unwrap();
    assert_eq!(running.node.as_deref(), Some("node-a"));
    assert_eq!(b.cancel_job(id).wait().unwrap(), Some(JobState::Running));
    assert_eq!(b.job(id).unwrap().unwrap().job_state, JobState::Cancelled);
    // Node A learns it at its next heartbeat (every second with a 3 s lease) and stops
    // the attempt: its future is dropped long before its minute is up.
    wait_until("node A stops the cancelled job", || {
        SLEEPER_STOPPED.load(Ordering::SeqCst)
    });
    wait_until("node A counts it lost", || {
        a.durable_stats().unwrap().lost == 1
    });
    // Its attempt's end, written after the cancel, changed nothing.
    wait_until("node A writes the attempt's end", || {
        a.durable_stats().unwrap().stale == 1
    });
    assert_eq!(a.job(id).unwrap().unwrap().job_state, JobState::Cancelled);
}

/// A job nobody runs here: enqueued only.
#[derive(Serialize, Deserialize)]
struct Parked(u32);

impl DurableJob for Parked {
    const KIND: &'static str = "nodes-parked";
    type Output = ();

    async fn run(&self, _ctx: Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn unique_keys_hold_under_concurrent_enqueues_from_three_nodes() {
    const KEYS: u32 = 300;
    let url = url();
    let schema = fresh_schema("unique");
    let nodes: Vec<Manager> = (0..3)
        .map(|n| {
            builder()
                .store(store(&url, &schema, &format!("node-{n}")))
                .build()
                .unwrap()
        })
        .collect();
    let answers = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (n, node) in nodes.iter().enumerate() {
            let answers = &answers;
            scope.spawn(move || {
                // Each node walks the keys in its own order, in small batches, so the
                // three race on every key.
                let mut keys: Vec<u32> = (0..KEYS).collect();
                keys.rotate_left(n * KEYS as usize / 3);
                if n == 1 {
                    keys.reverse();
                }
                for chunk in keys.chunks(10) {
                    let jobs = chunk
                        .iter()
                        .map(|key| (Parked(*key), JobOptions::new().unique(format!("key-{key}"))))
                        .collect();
                    let replies = node.enqueue_batch(jobs).wait();
                    let mut answers = answers.lock().unwrap();
                    for (key, reply) in chunk.iter().zip(replies) {
                        answers.push((*key, reply));
                    }
                }
            });
        }
    });
    let answers = answers.into_inner().unwrap();
    assert_eq!(answers.len(), 3 * KEYS as usize);
    let mut winners: HashMap<u32, JobId> = HashMap::new();
    for (key, reply) in &answers {
        if let Ok(id) = reply {
            assert!(
                winners.insert(*key, *id).is_none(),
                "key-{key} was enqueued twice"
            );
        }
    }
    assert_eq!(
        winners.len(),
        KEYS as usize,
        "every key got exactly one job"
    );
    for (key, reply) in answers {
        match reply {
            Ok(_) => {}
            Err(EnqueueError::Duplicate { existing, .. }) => {
                assert_eq!(existing, winners[&key], "key-{key}'s holder");
            }
            Err(other) => panic!("key-{key}: {other}"),
        }
    }
    let rows = nodes[0]
        .jobs(
            &JobFilter::all()
                .kind(Parked::KIND)
                .limit(10 * KEYS as usize),
        )
        .unwrap();
    assert_eq!(rows.len(), KEYS as usize);
}

/// Counts its runs by job.
#[derive(Serialize, Deserialize)]
struct Tally(u64);

fn tallies() -> &'static Mutex<HashMap<u64, u32>> {
    static TALLIES: std::sync::OnceLock<Mutex<HashMap<u64, u32>>> = std::sync::OnceLock::new();
    TALLIES.get_or_init(Default::default)
}

impl DurableJob for Tally {
    const KIND: &'static str = "nodes-tally";
    type Output = u64;

    async fn run(&self, ctx: Context) -> Result<u64, BoxError> {
        let id = ctx.job_id().expect("a durable job has an id").get();
        *tallies().lock().unwrap().entry(id).or_default() += 1;
        ctx.sleep(Duration::from_millis(2)).await;
        Ok(self.0)
    }
}

#[test]
fn a_server_restarted_under_load_loses_nothing_and_nodes_resume() {
    // A cluster of this test's own: restarting a shared server would cut the other tests.
    let cluster = Cluster::start();
    let url = cluster.url().to_string();
    let schema = fresh_schema("restart");
    let nodes: Vec<Manager> = (0..2)
        .map(|n| {
            builder()
                .store(store(&url, &schema, &format!("node-{n}")))
                .register::<Tally>()
                .build()
                .unwrap()
        })
        .collect();
    let stop = AtomicBool::new(false);
    let acknowledged = Mutex::new(Vec::new());
    let refused = AtomicU64::new(0);
    let restarted = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        let enqueuer = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let jobs = (n..n + 50).map(|n| (Tally(n), JobOptions::new())).collect();
                n += 50;
                for reply in nodes[(n / 50 % 2) as usize].enqueue_batch(jobs).wait() {
                    match reply {
                        Ok(id) => acknowledged.lock().unwrap().push(id),
                        Err(EnqueueError::Store { error, .. }) => {
                            // Nothing acknowledged that was not committed: a typed
                            // error that says the server is away.
                            assert!(
                                matches!(error.kind(), StoreErrorKind::Unavailable),
                                "{error}"
                            );
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        std::thread::sleep(Duration::from_millis(1500));
        cluster.restart();
        restarted.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(2500));
        stop.store(true, Ordering::SeqCst);
        enqueuer.join().unwrap();
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(
        acknowledged.len() > 100,
        "enqueues went on around the restart"
    );
    // Every acknowledged job completes, with no one restarting the nodes.
    for id in &acknowledged {
        let info = nodes[0]
            .wait_job(*id, PATIENCE)
            .wait()
            .unwrap()
            .expect("an acknowledged job is in the store");
        assert_eq!(info.job_state, JobState::Succeeded, "{id}");
    }
    let ran: HashSet<u64> = tallies().lock().unwrap().keys().copied().collect();
    for id in &acknowledged {
        assert!(ran.contains(&id.get()), "{id} never ran");
    }
    // The nodes saw the outage and came back from it.
    wait_until("both nodes commit again", || {
        nodes
            .iter()
            .all(|node| node.durable_stats().unwrap().failing == 0)
    });
    let failed: u64 = nodes
        .iter()
        .map(|node| node.durable_stats().unwrap().failed_commits)
        .sum();
    println!(
        "{} acknowledged, {} refused during the restart, {failed} failed commits",
        acknowledged.len(),
        refused.load(Ordering::SeqCst)
    );
    assert!(failed > 0, "the restart was not noticed");
    drop(nodes);
}

/// Notes that it ran.
#[derive(Serialize, Deserialize)]
struct Orphan;

static ORPHAN_RAN: AtomicBool = AtomicBool::new(false);

impl DurableJob for Orphan {
    const KIND: &'static str = "nodes-orphan";
    type Output = ();

    async fn run(&self, _ctx: Context) -> Result<(), BoxError> {
        ORPHAN_RAN.store(true, Ordering::SeqCst);
        Ok(())
    }
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_dead_nodes_job_is_rescued_as_its_lease_ends_not_at_the_next_poll() {
    use errand_core::engine::durable::{Op, Store};
    let url = url();
    let schema = fresh_schema("expiry");
    // The node that dies: a bare store that claims the job and never heartbeats.
    let mut dead = PgStore::options(&url)
        .schema(&schema)
        .node("dead")
        .lease(Duration::from_secs(3))
        .open()
        .unwrap();
    let survivor_poll = Duration::from_secs(600);
    let enqueuer = builder()
        .store(store(&url, &schema, "enqueuer"))
        .build()
        .unwrap();
    let id = enqueuer.enqueue(Orphan, JobOptions::new()).wait().unwrap();
    // Gone before the claim: any live node rescues, and this one polls often.
    drop(enqueuer);
    let mut claim = [Op::Claim {
        now: unix_millis(),
        limit: 10,
        kinds: [Orphan::KIND.to_string()].into_iter().collect(),
        reply: Vec::new(),
        next_due: None,
    }];
    dead.commit(&mut claim).unwrap();
    let [Op::Claim { reply, .. }] = &claim else {
        unreachable!("one claim op")
    };
    assert_eq!(reply.len(), 1, "the dead node claimed the job");
    // The survivor polls every ten minutes: only the lease's end can wake it in time.
    let survivor = builder()
        .store(
            PgStore::options(&url)
                .schema(&schema)
                .node("survivor")
                .lease(Duration::from_secs(3))
                .poll(survivor_poll)
                .open()
                .unwrap(),
        )
        .register::<Orphan>()
        .build()
        .unwrap();
    let row = survivor.job(id).unwrap().unwrap();
    assert_eq!(
        row.job_state,
        JobState::Running,
        "the lease ran out before the survivor started: the check would prove nothing"
    );
    let done = survivor
        .wait_job(id, survivor_poll / 20)
        .wait()
        .unwrap()
        .expect("the job exists");
    assert_eq!(done.job_state, JobState::Succeeded);
    assert!(ORPHAN_RAN.load(Ordering::SeqCst));
    assert_eq!(survivor.durable_stats().unwrap().rescued, 1);
    drop(dead);
}
