//! Checks that talk to the store interface itself, where a manager gives no handle on the
//! moment (fencing, leases, pruning).

use super::jobs::Double;
use super::*;

pub(super) fn new_job(kind: &'static str, payload: &str, claimed: bool) -> NewJob {
    let mut job: NewJob = serde_json::from_value(serde_json::json!({
        "kind": kind,
        "payload": payload,
        "priority": 5,
        "run_at": 0,
        "retry": RetryPolicy::none(),
        "timeout_ms": null,
        "result_ttl_ms": 60_000,
        "unique_key": null,
        "schedule": null,
        "claimed": claimed,
        "created_at": 0,
    }))
    .expect("a NewJob");
    job.claimed = claimed;
    job
}

pub(super) fn insert<S: Store>(store: &mut S, job: NewJob) -> JobId {
    let mut ops = [Op::Insert { job, reply: None }];
    store.commit(&mut ops).unwrap();
    match &ops[0] {
        Op::Insert {
            reply: Some(Ok(id)),
            ..
        } => *id,
        other => panic!("insert answered {other:?}"),
    }
}

pub(super) fn claim<S: Store>(store: &mut S, kinds: &[&str]) -> Vec<JobRow> {
    let kinds: Arc<[String]> = kinds.iter().map(|kind| kind.to_string()).collect();
    let mut ops = [Op::Claim {
        now: i64::MAX / 2,
        limit: 10,
        kinds,
        reply: Vec::new(),
        next_due: None,
    }];
    store.commit(&mut ops).unwrap();
    match ops.into_iter().next() {
        Some(Op::Claim { reply, .. }) => reply,
        _ => unreachable!(),
    }
}

pub(super) fn finish<S: Store>(store: &mut S, id: JobId, attempt: u32, finish: Finish) -> bool {
    let mut ops = [Op::Finish {
        id,
        attempt,
        finish,
        at: 1,
        reply: false,
    }];
    store.commit(&mut ops).unwrap();
    matches!(ops[0], Op::Finish { reply: true, .. })
}

/// Fencing: every write an attempt makes names it, and a write of an older attempt (one
/// whose job was since released and claimed again) changes nothing.
/// One commit of many ops of a kind (a store may send them as one statement): each
/// insert answers its own job's id, and each attempt's end is fenced on its own.
pub fn many_ops_in_one_commit_answer_each_alone<A: Adapter, P: Place>() {
    let place = P::fresh();
    let mut store = place.open();
    let mut inserts: Vec<Op> = (0..50)
        .map(|n| Op::Insert {
            // Every fifth arrives claimed (straight into memory), the rest pending.
            job: new_job(Double::KIND, &n.to_string(), n % 5 == 0),
            reply: None,
        })
        .collect();
    store.commit(&mut inserts).unwrap();
    let ids: Vec<JobId> = inserts
        .iter()
        .map(|op| match op {
            Op::Insert {
                reply: Some(Ok(id)),
                ..
            } => *id,
            other => panic!("insert answered {other:?}"),
        })
        .collect();
    let reader = store.reader();
    for (n, id) in ids.iter().enumerate() {
        let row = reader.job(*id).unwrap().expect("the answered id exists");
        assert_eq!(
            row.payload,
            n.to_string(),
            "insert {n} answered another job's id"
        );
        let expected = if n % 5 == 0 {
            JobState::Running
        } else {
            JobState::Pending
        };
        assert_eq!(row.state, expected, "insert {n}");
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "ids are distinct");
    // The claimed ones end in one commit: attempt 1 is theirs, attempt 2 is not.
    let mut finishes: Vec<Op> = ids
        .iter()
        .step_by(5)
        .enumerate()
        .map(|(k, id)| Op::Finish {
            id: *id,
            attempt: if k % 2 == 0 { 1 } else { 2 },
            finish: Finish::Succeeded {
                result: format!("{k}"),
                expires_at: i64::MAX,
            },
            at: 1,
            reply: false,
        })
        .collect();
    store.commit(&mut finishes).unwrap();
    for (k, op) in finishes.iter().enumerate() {
        let Op::Finish { id, reply, .. } = op else {
            unreachable!()
        };
        let row = reader.job(*id).unwrap().unwrap();
        if k % 2 == 0 {
            assert!(*reply, "finish {k} was the attempt's own");
            assert_eq!(
                (row.state, row.result.as_deref()),
                (JobState::Succeeded, Some(k.to_string().as_str()))
            );
        } else {
            assert!(!*reply, "finish {k} named a stale attempt");
            assert_eq!(row.state, JobState::Running);
        }
    }
}

pub fn stale_attempts_change_nothing<A: Adapter, P: Place>() {
    let place = P::fresh();
    let mut store = place.open();
    let id = insert(&mut store, new_job(Double::KIND, "1", true));
    assert!(finish(&mut store, id, 1, Finish::Release));
    let claimed = claim(&mut store, &[Double::KIND]);
    assert_eq!(
        claimed
            .iter()
            .map(|row| (row.id, row.attempt))
            .collect::<Vec<_>>(),
        [(id, 2)]
    );
    // Attempt 1 is stale now.
    assert!(!finish(
        &mut store,
        id,
        1,
        Finish::Succeeded {
            result: "1".into(),
            expires_at: i64::MAX
        }
    ));
    let mut progress = [Op::Progress {
        id,
        attempt: 1,
        percent: 99.0,
        message: None,
    }];
    store.commit(&mut progress).unwrap();
    let row = store.reader().job(id).unwrap().unwrap();
    assert_eq!(
        (row.state, row.attempt, row.progress),
        (JobState::Running, 2, 0.0)
    );
    assert!(finish(
        &mut store,
        id,
        2,
        Finish::Succeeded {
            result: "2".into(),
            expires_at: i64::MAX
        }
    ));
    // And a finished attempt cannot finish twice.
    assert!(!finish(
        &mut store,
        id,
        2,
        Finish::Failed {
            error: "late".into()
        }
    ));
    let row = store.reader().job(id).unwrap().unwrap();
    assert_eq!(
        (row.state, row.result.as_deref()),
        (JobState::Succeeded, Some("2"))
    );
}

/// A backlog of expired results larger than one prune pass is pruned pass after pass, not
/// one pass per prune interval (30 s): pruning keeps up with any completion rate.
pub fn a_backlog_of_expired_results_is_pruned_at_once<A: Adapter, P: Place>() {
    const BACKLOG: usize = 12_000;
    let place = P::fresh();
    let mut store = place.open();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut inserts: Vec<Op> = (0..BACKLOG)
        .map(|_| Op::Insert {
            job: new_job(Double::KIND, "1", true),
            reply: None,
        })
        .collect();
    store.commit(&mut inserts).unwrap();
    let mut finishes: Vec<Op> = inserts
        .iter()
        .map(|op| match op {
            Op::Insert {
                reply: Some(Ok(id)),
                ..
            } => Op::Finish {
                id: *id,
                attempt: 1,
                finish: Finish::Succeeded {
                    result: "2".into(),
                    expires_at: now - 1,
                },
                at: now,
                reply: false,
            },
            other => panic!("not inserted: {other:?}"),
        })
        .collect();
    store.commit(&mut finishes).unwrap();
    let reader = store.reader();
    drop(store);
    let manager = durable::<A, P>(&place).build().unwrap();
    let with_result = || {
        let mut count = 0;
        let mut after = None;
        loop {
            let mut filter = JobFilter::all().limit(1000);
            if let Some(after) = after {
                filter = filter.after(after);
            }
            let page = reader.jobs(&filter).unwrap();
            let Some(last) = page.last() else {
                return count;
            };
            after = Some(last.id);
            count += page.iter().filter(|row| row.result.is_some()).count();
        }
    };
    wait_for(|| with_result() == 0, "every expired result pruned");
    drop(manager);
}

/// Commits `op` alone and gives it back with its reply.
fn commit_one<S: Store>(store: &mut S, op: Op) -> Op {
    let mut ops = [op];
    store.commit(&mut ops).unwrap();
    let [op] = ops;
    op
}

/// The reply of a rescue at `now`: how many jobs it made pending again.
fn rescue<S: Store>(store: &mut S, now: i64) -> u64 {
    match commit_one(
        store,
        Op::Rescue {
            now,
            limit: 100,
            reply: 0,
            next_expiry: None,
        },
    ) {
        Op::Rescue { reply, .. } => reply,
        _ => unreachable!(),
    }
}

/// The reply of a heartbeat at `now` for `jobs`: the jobs no longer held.
fn heartbeat<S: Store>(store: &mut S, now: i64, jobs: Vec<(JobId, u32)>) -> Vec<JobId> {
    match commit_one(
        store,
        Op::Heartbeat {
            now,
            jobs,
            reply: Vec::new(),
        },
    ) {
        Op::Heartbeat { reply, .. } => reply,
        _ => unreachable!(),
    }
}

/// Leases: a claim holds its job until its lease runs out; a heartbeat extends it; a
/// rescue makes a job whose lease expired pending again (any lease is taken to be longer
/// than a millisecond and shorter than an hour); the node that lost it learns so at its
/// next heartbeat, and its attempt's writes are stale.
pub fn leases_hold_until_they_expire_then_jobs_are_rescued<A: Adapter, P: Place>() {
    const HOUR: i64 = 3_600_000;
    let place = P::fresh();
    let mut store = place.open();
    let id = insert(&mut store, new_job(Double::KIND, "1", false));
    let claimed = claim(&mut store, &[Double::KIND]);
    assert_eq!(claimed.len(), 1);
    let at = i64::MAX / 2; // the claim helper's now
    let row = store.reader().job(id).unwrap().unwrap();
    assert_eq!((row.state, row.attempt), (JobState::Running, 1));
    assert!(row.node.is_some(), "a claim names its node");
    assert!(row.lease_until.is_some_and(|until| until > at + 1));
    // Within the lease: nothing to rescue.
    assert_eq!(rescue(&mut store, at + 1), 0);
    // A heartbeat an hour later extends the lease past an hour.
    assert!(heartbeat(&mut store, at + HOUR, vec![(id, 1)]).is_empty());
    assert_eq!(rescue(&mut store, at + HOUR + 1), 0);
    // A day later, without heartbeats: rescued, pending again, due.
    assert_eq!(rescue(&mut store, at + 24 * HOUR), 1);
    let row = store.reader().job(id).unwrap().unwrap();
    assert_eq!(
        (row.state, row.node, row.attempt),
        (JobState::Pending, None, 1)
    );
    // The next claim is attempt 2; the old attempt's node learns it lost the job, and its
    // end changes nothing.
    let again = claim(&mut store, &[Double::KIND]);
    assert_eq!(
        again
            .iter()
            .map(|row| (row.id, row.attempt))
            .collect::<Vec<_>>(),
        [(id, 2)]
    );
    assert_eq!(heartbeat(&mut store, at + 1, vec![(id, 1)]), [id]);
    assert!(heartbeat(&mut store, at + 1, vec![(id, 2)]).is_empty());
    assert!(!finish(&mut store, id, 1, Finish::Cancelled));
    assert!(finish(
        &mut store,
        id,
        2,
        Finish::Succeeded {
            result: "2".into(),
            expires_at: i64::MAX
        }
    ));
    // A finished job is not rescued, whatever its lease said.
    assert_eq!(rescue(&mut store, i64::MAX - 1), 0);
}

/// A cancel reaches a running job (on whichever node): the row is cancelled at once, the
/// attempt's end is stale, and the node learns it at its next heartbeat.
pub fn a_cancel_reaches_a_running_job<A: Adapter, P: Place>() {
    let place = P::fresh();
    let mut store = place.open();
    let id = insert(&mut store, new_job(Double::KIND, "1", true));
    let cancelled = commit_one(
        &mut store,
        Op::Cancel {
            id,
            at: 5,
            reply: None,
        },
    );
    assert!(matches!(
        cancelled,
        Op::Cancel {
            reply: Some(JobState::Running),
            ..
        }
    ));
    let row = store.reader().job(id).unwrap().unwrap();
    assert_eq!((row.state, row.finished_at), (JobState::Cancelled, Some(5)));
    assert_eq!(heartbeat(&mut store, 6, vec![(id, 1)]), [id]);
    assert!(!finish(
        &mut store,
        id,
        1,
        Finish::Succeeded {
            result: "2".into(),
            expires_at: i64::MAX
        }
    ));
    // Cancelling a finished job changes nothing and says what it was.
    let again = commit_one(
        &mut store,
        Op::Cancel {
            id,
            at: 7,
            reply: None,
        },
    );
    assert!(matches!(
        again,
        Op::Cancel {
            reply: Some(JobState::Cancelled),
            ..
        }
    ));
    assert_eq!(
        store.reader().job(id).unwrap().unwrap().finished_at,
        Some(5)
    );
}

/// Finished jobs are deleted once they are older than the retention and their result has
/// expired, oldest first, a bounded batch at a time; unfinished jobs never.
pub fn old_finished_jobs_are_purged_in_batches<A: Adapter, P: Place>() {
    let place = P::fresh();
    let mut store = place.open();
    // Three finished at 100, 200 and 300 (results expiring at 1 000 for the first two,
    // never for the third), one failed at 150, one pending, one running.
    let mut ended = Vec::new();
    for (at, expires_at) in [(100, 1_000), (200, 1_000), (300, i64::MAX)] {
        let id = insert(&mut store, new_job(Double::KIND, "1", true));
        let mut ops = [Op::Finish {
            id,
            attempt: 1,
            finish: Finish::Succeeded {
                result: "2".into(),
                expires_at,
            },
            at,
            reply: false,
        }];
        store.commit(&mut ops).unwrap();
        ended.push(id);
    }
    let failed = insert(&mut store, new_job(Double::KIND, "1", true));
    let mut ops = [Op::Finish {
        id: failed,
        attempt: 1,
        finish: Finish::Failed { error: "no".into() },
        at: 150,
        reply: false,
    }];
    store.commit(&mut ops).unwrap();
    let pending = insert(&mut store, new_job(Double::KIND, "1", false));
    let running = insert(&mut store, new_job(Double::KIND, "1", true));
    let purge = |store: &mut P::Store, now: i64, before: i64, limit: usize| match commit_one(
        store,
        Op::Purge {
            now,
            before,
            limit,
            reply: 0,
        },
    ) {
        Op::Purge { reply, .. } => reply,
        _ => unreachable!(),
    };
    // Before the results expire, only the failed job (no result) may go.
    assert_eq!(purge(&mut store, 500, 10_000, 10), 1);
    // Results expired: the two older successes go, one per pass with a limit of one,
    // oldest first.
    assert_eq!(purge(&mut store, 2_000, 10_000, 1), 1);
    let reader = store.reader();
    assert!(reader.job(ended[0]).unwrap().is_none());
    assert!(reader.job(ended[1]).unwrap().is_some());
    assert_eq!(purge(&mut store, 2_000, 10_000, 10), 1);
    // Not finished before `before`: stays.
    assert_eq!(purge(&mut store, i64::MAX, 250, 10), 0);
    // Its result never expires: stays.
    assert_eq!(purge(&mut store, 2_000, 10_000, 10), 0);
    let left: Vec<JobId> = reader
        .jobs(&JobFilter::all())
        .unwrap()
        .iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(left, [ended[2], pending, running]);
}

/// A schedule's tick fires once: a second fire of the same tick (another leader, or a
/// retry) changes nothing, and a fire of a schedule that is gone inserts nothing.
pub fn a_schedule_tick_fires_once_in_the_store<A: Adapter, P: Place>() {
    let place = P::fresh();
    let mut store = place.open();
    let schedule: ScheduleRow = serde_json::from_value(serde_json::json!({
        "name": "once",
        "job": new_job(Double::KIND, "1", false),
        "interval_ms": 1000,
        "anchor": 0,
        "next_tick": 0,
        "max_ticks": null,
        "fired": 0,
        "until": null,
        "burst": false,
        "overlap": false,
        "last_job": null,
    }))
    .expect("a ScheduleRow");
    commit_one(
        &mut store,
        Op::PutSchedule {
            schedule: Box::new(schedule),
        },
    );
    let fire = |store: &mut P::Store, name: &str, tick: u64| {
        let mut job = new_job(Double::KIND, "1", false);
        job.unique_key = Some(format!("tick-{name}-{tick}"));
        job.schedule = Some(name.to_string());
        match commit_one(
            store,
            Op::FireSchedule {
                name: name.to_string(),
                tick,
                next_tick: tick + 1,
                job,
                reply: None,
            },
        ) {
            Op::FireSchedule { reply, .. } => reply,
            _ => unreachable!(),
        }
    };
    let first = fire(&mut store, "once", 0);
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    assert_eq!(fire(&mut store, "once", 0), None, "tick 0 fired twice");
    assert!(matches!(fire(&mut store, "once", 1), Some(Ok(_))));
    assert_eq!(fire(&mut store, "gone", 0), None);
    let jobs = store.reader().jobs(&JobFilter::all()).unwrap();
    assert_eq!(jobs.len(), 2);
    let stored = store.schedules().unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|s| (s.name.as_str(), s.next_tick, s.fired))
            .collect::<Vec<_>>(),
        [("once", 2, 2)]
    );
}

/// The earliest-due pending job, over every kind (those no node knows included) and no
/// other state: what a store's lag is measured from.
pub fn the_earliest_due_pending_job_is_found<A: Adapter, P: Place>() {
    let place = P::fresh();
    let mut store = place.open();
    assert_eq!(store.reader().earliest_due().unwrap(), None);
    let due_at = |kind, run_at, claimed| {
        let mut job = new_job(kind, "1", claimed);
        job.run_at = run_at;
        job
    };
    insert(&mut store, due_at(Double::KIND, 300, false));
    insert(&mut store, due_at("conformance-no-such-kind", 200, false));
    let running = insert(&mut store, due_at(Double::KIND, 100, true));
    assert_eq!(store.reader().earliest_due().unwrap(), Some(200));
    assert!(finish(&mut store, running, 1, Finish::Cancelled));
    assert_eq!(store.reader().earliest_due().unwrap(), Some(200));
    let ids: Vec<JobId> = claim(&mut store, &["conformance-no-such-kind"])
        .iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(store.reader().earliest_due().unwrap(), Some(300));
    claim(&mut store, &[Double::KIND]);
    assert_eq!(store.reader().earliest_due().unwrap(), None);
}
