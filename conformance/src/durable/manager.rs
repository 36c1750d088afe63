//! Checks that drive a manager on the store.

use super::jobs::{Double, Flaky, Held, Record, gate, list};
use super::*;

/// A job enqueued and run; the manager dropped and built again on the same place: its
/// state and result are still there, and `enqueue` was answered only once committed.
pub fn results_survive_a_restart<A: Adapter, P: Place>() {
    let place = P::fresh();
    let manager = durable::<A, P>(&place).build().unwrap();
    let id = manager
        .enqueue(Double(21), JobOptions::new())
        .wait()
        .unwrap();
    let info = finished(&manager, id);
    assert_eq!(
        (info.job_state, info.state),
        (JobState::Succeeded, State::Succeeded)
    );
    assert_eq!(info.attempt, 1);
    drop(manager);
    let manager = durable::<A, P>(&place).build().unwrap();
    assert_eq!(manager.job_result::<Double>(id).unwrap(), Some(42));
    let info = manager.job(id).unwrap().unwrap();
    assert_eq!((info.kind.as_str(), info.progress), (Double::KIND, 100.0));
    let listed = manager.jobs(&JobFilter::all().kind(Double::KIND)).unwrap();
    assert_eq!(listed.iter().map(|job| job.id).collect::<Vec<_>>(), [id]);
    // The result type is checked when read.
    let wrong = manager.job_result::<Held>(id).unwrap_err();
    assert_eq!(wrong.kind(), StoreErrorKind::Decode);
}

/// With one job in memory at a time, the waiting jobs run highest priority first, then
/// earliest due.
pub fn claims_follow_priority_then_due_time<A: Adapter, P: Place>() {
    let place = P::fresh();
    let manager = durable::<A, P>(&place).durable_window(1).build().unwrap();
    let name = unique("order");
    let held = manager
        .enqueue(Held(name.clone()), JobOptions::new())
        .wait()
        .unwrap();
    let (started, release) = gate(&name);
    started.wait();
    let list = unique("order-list");
    let record = |value| Record {
        list: list.clone(),
        value,
    };
    for (value, priority) in [
        (1, Priority::LOW),
        (2, Priority::NORMAL),
        (3, Priority::CRITICAL),
        (4, Priority::NORMAL),
    ] {
        manager
            .enqueue(record(value), JobOptions::new().priority(priority))
            .wait()
            .unwrap();
    }
    release.open();
    finished(&manager, held);
    let all = manager
        .jobs(&JobFilter::all().kind(Record::KIND).limit(1000))
        .unwrap();
    for job in all
        .iter()
        .filter(|job| job.job_state != JobState::Succeeded)
    {
        finished(&manager, job.id);
    }
    assert_eq!(list_of(&list), [3, 2, 4, 1]);
}

fn list_of(name: &str) -> Vec<u64> {
    list(name)
}

/// A failing job is retried as its policy says, each failure counted and its error kept;
/// the count survives a restart.
pub fn failures_retry_with_their_count_persisted<A: Adapter, P: Place>() {
    let place = P::fresh();
    let manager = durable::<A, P>(&place).build().unwrap();
    let name = unique("flaky");
    let policy = RetryPolicy::builder()
        .max_retries(3)
        .initial_delay(Duration::from_millis(5))
        .build()
        .unwrap();
    let id = manager
        .enqueue(
            Flaky {
                name: name.clone(),
                fails: 2,
            },
            JobOptions::new().retry(policy),
        )
        .wait()
        .unwrap();
    let info = finished(&manager, id);
    assert_eq!(info.job_state, JobState::Succeeded);
    assert_eq!((info.attempt, info.failures), (3, 2));
    assert_eq!(manager.job_result::<Flaky>(id).unwrap(), Some(3));
    // Out of retries: failed for good, with the last error.
    let doomed = manager
        .enqueue(
            Flaky {
                name: unique("doomed"),
                fails: 10,
            },
            JobOptions::new().retry(
                RetryPolicy::builder()
                    .max_retries(1)
                    .initial_delay(Duration::ZERO)
                    .build()
                    .unwrap(),
            ),
        )
        .wait()
        .unwrap();
    let info = finished(&manager, doomed);
    assert_eq!((info.job_state, info.failures), (JobState::Failed, 2));
    assert_eq!(info.error.as_deref(), Some("task failed: failure 2"));
    drop(manager);
    let manager = durable::<A, P>(&place).build().unwrap();
    let info = manager.job(doomed).unwrap().unwrap();
    assert_eq!((info.attempt, info.failures), (2, 2));
}

/// At most one unfinished job holds a unique key, even with enqueues racing from threads;
/// once it finished, the key is free again.
pub fn unique_keys_admit_one_unfinished_job<A: Adapter, P: Place>() {
    let place = P::fresh();
    let manager = Arc::new(durable::<A, P>(&place).build().unwrap());
    let name = unique("unique");
    let options = || JobOptions::new().unique("the-key");
    let holder = manager
        .enqueue(Held(name.clone()), options())
        .wait()
        .unwrap();
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let manager = Arc::clone(&manager);
            std::thread::spawn(move || manager.enqueue(Double(1), options()).wait())
        })
        .collect();
    for racer in racers {
        match racer.join().unwrap() {
            Err(EnqueueError::Duplicate { existing, job }) => {
                assert_eq!(existing, holder);
                assert_eq!(job.0, 1, "the job comes back");
            }
            other => panic!(
                "expected a duplicate, got {:?}",
                other.map_err(|e| e.to_string())
            ),
        }
    }
    let (started, release) = gate(&name);
    started.wait();
    release.open();
    finished(&manager, holder);
    let next = manager.enqueue(Double(2), options()).wait().unwrap();
    assert_ne!(next, holder);
    assert_eq!(finished(&manager, next).job_state, JobState::Succeeded);
}

/// Jobs a previous run left running are pending again at once when the store opens, and
/// a manager built on it runs them.
pub fn running_jobs_are_recovered_at_start<A: Adapter, P: Place>() {
    let place = P::fresh();
    let id = {
        let mut store = place.open();
        let id = insert(&mut store, new_job(Double::KIND, "5", true));
        assert_eq!(
            store.reader().job(id).unwrap().unwrap().state,
            JobState::Running
        );
        id
    };
    let manager = durable::<A, P>(&place).build().unwrap();
    let info = finished(&manager, id);
    assert_eq!((info.job_state, info.attempt), (JobState::Succeeded, 2));
    assert_eq!(manager.job_result::<Double>(id).unwrap(), Some(10));
    assert_eq!(manager.durable_stats().unwrap().recovered, 1);
}

/// Results are kept for their TTL, then a prune pass drops them (the rows stay).
pub fn expired_results_are_pruned<A: Adapter, P: Place>() {
    let place = P::fresh();
    let manager = durable::<A, P>(&place).build().unwrap();
    let short = manager
        .enqueue(
            Double(3),
            JobOptions::new().result_ttl(Duration::from_millis(1)),
        )
        .wait()
        .unwrap();
    let long = manager
        .enqueue(Double(4), JobOptions::new())
        .wait()
        .unwrap();
    finished(&manager, short);
    finished(&manager, long);
    drop(manager);
    let mut store = place.open();
    // A second from now: past the short TTL, well before the long one (a day).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut prune = [Op::Prune {
        now: now + 1_000,
        limit: 100,
        reply: 0,
    }];
    store.commit(&mut prune).unwrap();
    assert!(matches!(prune[0], Op::Prune { reply: 1, .. }));
    let reader = store.reader();
    let short_row = reader.job(short).unwrap().unwrap();
    assert_eq!(
        (short_row.state, short_row.result),
        (JobState::Succeeded, None)
    );
    assert_eq!(
        reader.job(long).unwrap().unwrap().result.as_deref(),
        Some("8")
    );
}

/// A schedule fires one job per tick (a unique key per tick), stops after its runs, and
/// resumes after a restart with the missed-tick policy applied to the downtime.
pub fn schedules_fire_once_per_tick_and_resume<A: Adapter, P: Place>() {
    let place = P::fresh();
    let list = unique("ticks");
    let manager = durable::<A, P>(&place).build().unwrap();
    manager
        .schedule(
            "three",
            Record {
                list: list.clone(),
                value: 1,
            },
            Every::new(Duration::from_millis(10)).times(3),
            JobOptions::new(),
        )
        .wait()
        .unwrap();
    wait_for(|| list_of(&list).len() == 3, "three ticks");
    let jobs = manager.jobs(&JobFilter::all().kind(Record::KIND)).unwrap();
    let ticks: Vec<_> = jobs
        .iter()
        .filter(|job| job.schedule.as_deref() == Some("three"))
        .map(|job| job.unique_key.clone().unwrap())
        .collect();
    assert_eq!(ticks.len(), 3, "one job per tick: {ticks:?}");
    drop(manager);
    // Resuming: ticks every 10 ms, the process down for 100 ms. Skip: one job for the
    // ticks missed meanwhile; Burst: one per tick.
    let manager = durable::<A, P>(&place).build().unwrap();
    let every = Every::new(Duration::from_millis(10)).overlap(errand_core::engine::Overlap::Queue);
    let skip = unique("skip");
    let burst = unique("burst");
    manager
        .schedule(
            "skip",
            Record {
                list: skip.clone(),
                value: 1,
            },
            every,
            JobOptions::new(),
        )
        .wait()
        .unwrap();
    manager
        .schedule(
            "burst",
            Record {
                list: burst.clone(),
                value: 1,
            },
            every.missed_ticks(MissedTicks::Burst),
            JobOptions::new(),
        )
        .wait()
        .unwrap();
    wait_for(
        || !list_of(&skip).is_empty() && !list_of(&burst).is_empty(),
        "first ticks",
    );
    drop(manager);
    let down = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(100));
    let up = std::time::SystemTime::now();
    let manager = durable::<A, P>(&place).build().unwrap();
    // Jobs of `schedule` due in the heart of the downtime (a tick's margin each side).
    let tick = Duration::from_millis(10);
    let missed = |schedule: &str| {
        manager
            .jobs(&JobFilter::all().kind(Record::KIND).limit(10_000))
            .unwrap()
            .into_iter()
            .filter(|job| job.schedule.as_deref() == Some(schedule))
            .filter(|job| job.run_at > down + tick && job.run_at < up - tick)
            .count()
    };
    let resumed = |list: &str, before: usize| list_of(list).len() > before;
    let (skip_before, burst_before) = (list_of(&skip).len(), list_of(&burst).len());
    wait_for(|| missed("burst") >= 7, "the burst of missed ticks");
    wait_for(
        || resumed(&skip, skip_before) && resumed(&burst, burst_before),
        "resumed",
    );
    assert_eq!(
        missed("skip"),
        0,
        "skip: no job for the ticks missed, one run for them all"
    );
    assert!(manager.unschedule("skip").wait().unwrap());
    assert!(manager.unschedule("burst").wait().unwrap());
    assert!(!manager.unschedule("burst").wait().unwrap());
}

/// A payload that no longer decodes fails its job with the decode error in its row, and
/// the others run; a kind nobody registered stays pending and is reported.
pub fn bad_payloads_fail_alone_and_unknown_kinds_wait<A: Adapter, P: Place>() {
    let place = P::fresh();
    let (bad, orphan) = {
        let mut store = place.open();
        (
            insert(&mut store, new_job(Double::KIND, "\"not a number\"", false)),
            insert(&mut store, new_job("nobody-runs-this", "{}", false)),
        )
    };
    let manager = durable::<A, P>(&place).build().unwrap();
    let good = manager
        .enqueue(Double(8), JobOptions::new())
        .wait()
        .unwrap();
    let info = finished(&manager, bad);
    assert_eq!(info.job_state, JobState::Failed);
    assert!(info.error.unwrap().contains("did not decode"));
    assert_eq!(finished(&manager, good).job_state, JobState::Succeeded);
    let stats = manager.durable_stats().unwrap();
    assert_eq!(stats.unknown_kinds, [("nobody-runs-this".to_string(), 1)]);
    assert_eq!(
        manager.job(orphan).unwrap().unwrap().job_state,
        JobState::Pending
    );
}

/// A pending job cancelled never runs; a running one is cancelled as a task is.
pub fn pending_and_running_jobs_can_be_cancelled<A: Adapter, P: Place>() {
    let place = P::fresh();
    let manager = durable::<A, P>(&place).build().unwrap();
    let later = manager
        .enqueue(
            Double(1),
            JobOptions::new().delay(Duration::from_secs(3600)),
        )
        .wait()
        .unwrap();
    assert_eq!(
        manager.cancel_job(later).wait().unwrap(),
        Some(JobState::Pending)
    );
    assert_eq!(
        manager.job(later).unwrap().unwrap().job_state,
        JobState::Cancelled
    );
    let name = unique("cancel");
    let running = manager
        .enqueue(Held(name.clone()), JobOptions::new())
        .wait()
        .unwrap();
    let (started, release) = gate(&name);
    started.wait();
    assert_eq!(
        manager.cancel_job(running).wait().unwrap(),
        Some(JobState::Running)
    );
    release.open();
    assert_eq!(finished(&manager, running).job_state, JobState::Cancelled);
    assert_eq!(
        manager.cancel_job(JobId::new(999_999)).wait().unwrap(),
        None
    );
}

/// Progress shows live while a job runs; a timed-out attempt is recorded as such.
pub fn progress_and_timeouts_are_recorded<A: Adapter, P: Place>() {
    let place = P::fresh();
    let manager = durable::<A, P>(&place).build().unwrap();
    let name = unique("progress");
    let id = manager
        .enqueue(Held(name.clone()), JobOptions::new())
        .wait()
        .unwrap();
    let (started, release) = gate(&name);
    started.wait();
    let info = manager.job(id).unwrap().unwrap();
    assert_eq!(
        (info.state, info.progress, info.message.as_deref()),
        (State::Running, 50.0, Some("held"))
    );
    release.open();
    finished(&manager, id);
    let slow = unique("slow");
    let timed = manager
        .enqueue(
            Held(slow.clone()),
            JobOptions::new().timeout(Duration::from_millis(20)),
        )
        .wait()
        .unwrap();
    let info = finished(&manager, timed);
    assert_eq!(
        (info.job_state, info.error.as_deref()),
        (JobState::TimedOut, Some("timed out"))
    );
    // After a shutdown the store is closed: an enqueue says so, and gives the job back.
    drop(manager.shutdown(PATIENCE).wait());
    match manager.enqueue(Double(1), JobOptions::new()).wait() {
        Err(EnqueueError::Store { error, job }) => {
            assert_eq!((error.kind(), job.0), (StoreErrorKind::Closed, 1));
        }
        other => panic!(
            "expected a closed store, got {:?}",
            other.map_err(|e| e.to_string())
        ),
    }
}

/// A job that failed or was cancelled is put back by `retry_job`: pending again with a
/// fresh retry budget, its attempt count going on; a succeeded one, a job whose unique key
/// another unfinished job holds now, and an unknown id are refused, each saying why.
pub fn finished_jobs_can_be_retried<A: Adapter, P: Place>() {
    use errand_core::engine::Retried;
    let place = P::fresh();
    let manager = durable::<A, P>(&place).build().unwrap();
    let no_retries = RetryPolicy::builder().max_retries(0).build().unwrap();
    let id = manager
        .enqueue(
            Flaky {
                name: unique("retry-me"),
                fails: 1,
            },
            JobOptions::new().retry(no_retries),
        )
        .wait()
        .unwrap();
    let failed = finished(&manager, id);
    assert_eq!((failed.job_state, failed.failures), (JobState::Failed, 1));
    assert_eq!(
        manager.retry_job(id).wait().unwrap(),
        Some(Retried::Requeued {
            from: JobState::Failed
        })
    );
    let again = finished(&manager, id);
    assert_eq!(again.job_state, JobState::Succeeded);
    // The second attempt, and no failure counted against its new budget.
    assert_eq!((again.attempt, again.failures), (2, 0));
    assert_eq!(manager.job_result::<Flaky>(id).unwrap(), Some(2));
    assert_eq!(
        manager.retry_job(id).wait().unwrap(),
        Some(Retried::NotRetryable {
            state: JobState::Succeeded
        })
    );
    // A cancelled job whose key a newer job now holds stays cancelled.
    let key = unique("retry-key");
    let first = manager
        .enqueue(
            Double(1),
            JobOptions::new()
                .delay(Duration::from_secs(3600))
                .unique(key.clone()),
        )
        .wait()
        .unwrap();
    manager.cancel_job(first).wait().unwrap();
    let second = manager
        .enqueue(
            Double(2),
            JobOptions::new()
                .delay(Duration::from_secs(3600))
                .unique(key),
        )
        .wait()
        .unwrap();
    assert_eq!(
        manager.retry_job(first).wait().unwrap(),
        Some(Retried::KeyHeld {
            state: JobState::Cancelled
        })
    );
    assert_eq!(
        manager.job(first).unwrap().unwrap().job_state,
        JobState::Cancelled
    );
    // Once the key is free again, the retry goes through.
    manager.cancel_job(second).wait().unwrap();
    assert_eq!(
        manager.retry_job(first).wait().unwrap(),
        Some(Retried::Requeued {
            from: JobState::Cancelled
        })
    );
    assert_eq!(finished(&manager, first).job_state, JobState::Succeeded);
    assert_eq!(manager.retry_job(JobId::new(999_999)).wait().unwrap(), None);
}

/// Stored schedules are listed by name with their next run, from the store.
pub fn schedules_are_listed_with_their_next_run<A: Adapter, P: Place>() {
    let place = P::fresh();
    let manager = durable::<A, P>(&place).build().unwrap();
    let name = unique("listed");
    let every = Every::new(Duration::from_secs(3600)).times(3);
    let start = std::time::SystemTime::now() + Duration::from_secs(600);
    manager
        .schedule(&name, Double(5), every, JobOptions::new().run_at(start))
        .wait()
        .unwrap();
    let listed = manager.schedules().unwrap();
    let schedule = listed
        .iter()
        .find(|schedule| schedule.name == name)
        .expect("the schedule is listed");
    assert_eq!(schedule.kind, Double::KIND);
    assert_eq!(schedule.interval, Duration::from_secs(3600));
    assert_eq!((schedule.fired, schedule.max_ticks), (0, Some(3)));
    let next = schedule.next_run.expect("a first tick is due");
    let off = next
        .duration_since(start)
        .unwrap_or_else(|early| early.duration());
    assert!(
        off < Duration::from_secs(1),
        "next run {next:?}, start {start:?}"
    );
    assert!(manager.unschedule(&name).wait().unwrap());
    assert!(manager.schedules().unwrap().iter().all(|s| s.name != name));
}
