//! What the crash and cluster tests share: a seeded generator, the workers' logs, every
//! row of a store, and the check that every job completed exactly once.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use errand_core::engine::durable::{JobRow, StoreReader};
use errand_core::engine::{JobFilter, JobState};

/// A small seeded generator (SplitMix64), so each seed replays its choices.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// A fresh directory under the target directory.
pub(crate) fn fresh_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    drop(std::fs::remove_dir_all(&dir));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits for `child` to exit by itself, within `patience`; its exit code.
pub(crate) fn exit_code(child: &mut Child, patience: Duration) -> i32 {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the worker did not finish within {patience:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the workers' logs say: the jobs acknowledged, and the attempts that ran, per
/// job, over every log in `logs`.
pub(crate) fn read_logs(logs: &[PathBuf]) -> (Vec<u64>, HashMap<u64, Vec<u32>>) {
    let mut acks = Vec::new();
    let mut runs: HashMap<u64, Vec<u32>> = HashMap::new();
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("ack"), Some(id), None) => acks.push(id.parse().unwrap()),
                (Some("run"), Some(id), Some(attempt)) => {
                    runs.entry(id.parse().unwrap())
                        .or_default()
                        .push(attempt.parse().unwrap());
                }
                _ => {}
            }
        }
    }
    (acks, runs)
}

/// Every row of the store, by id.
pub(crate) fn all_rows(reader: &dyn StoreReader) -> Vec<JobRow> {
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let mut filter = JobFilter::all().limit(1000);
        if let Some(id) = after {
            filter = filter.after(id);
        }
        let page = reader.jobs(&filter).unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        rows.extend(page);
    }
    rows
}

/// Every acknowledged job is there and succeeded; every row succeeded with the right
/// result, recorded by its last claimed attempt (fencing kept a stale attempt from
/// overwriting it), an attempt that ran; attempts add up (every run a counted claim, no
/// claim run twice). How many jobs ran more than once.
pub(crate) fn check_each_completed_once(
    what: &str,
    rows: &[JobRow],
    acks: &[u64],
    runs: &HashMap<u64, Vec<u32>>,
) -> usize {
    let by_id: HashMap<u64, &JobRow> = rows.iter().map(|row| (row.id.get(), row)).collect();
    for id in acks {
        let row = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{what}: acknowledged job j-{id} lost"));
        assert_eq!(row.state, JobState::Succeeded, "{what}: j-{id}");
    }
    for row in rows {
        let id = row.id.get();
        assert_eq!(
            row.state,
            JobState::Succeeded,
            "{what}: j-{id} ended {:?}",
            row.state
        );
        let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap();
        let result: serde_json::Value =
            serde_json::from_str(row.result.as_deref().unwrap()).unwrap();
        assert_eq!(
            result["doubled"],
            payload["n"].as_u64().unwrap() * 2,
            "{what}: j-{id}"
        );
        let ran = runs
            .get(&id)
            .unwrap_or_else(|| panic!("{what}: j-{id} never ran"));
        let completed = result["attempt"].as_u64().unwrap() as u32;
        assert_eq!(
            completed, row.attempt,
            "{what}: j-{id} completed by a stale attempt"
        );
        assert!(
            ran.contains(&completed),
            "{what}: j-{id}'s attempt {completed} never ran"
        );
        assert!(
            row.attempt as usize >= ran.len(),
            "{what}: j-{id} ran {ran:?} in {} attempts",
            row.attempt
        );
        let mut distinct = ran.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            ran.len(),
            "{what}: j-{id} ran an attempt twice: {ran:?}"
        );
    }
    rows.iter().filter(|row| row.attempt > 1).count()
}
