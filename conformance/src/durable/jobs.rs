//! The job types the checks enqueue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use errand_core::engine::{BoxError, Context, DurableJob};
use serde::{Deserialize, Serialize};

use crate::support::{Gate, PATIENCE};

/// Returns its number, doubled.
#[derive(Debug, Serialize, Deserialize)]
pub struct Double(pub u64);

impl DurableJob for Double {
    const KIND: &'static str = "conformance-double";
    type Output = u64;

    async fn run(&self, _ctx: Context) -> Result<u64, BoxError> {
        Ok(self.0 * 2)
    }
}

/// Appends its number to a named list (in this process), in run order.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    /// The list.
    pub list: String,
    /// What to append.
    pub value: u64,
}

fn lists() -> &'static Mutex<HashMap<String, Vec<u64>>> {
    static LISTS: OnceLock<Mutex<HashMap<String, Vec<u64>>>> = OnceLock::new();
    LISTS.get_or_init(Mutex::default)
}

pub(super) fn list(name: &str) -> Vec<u64> {
    lists()
        .lock()
        .unwrap()
        .get(name)
        .cloned()
        .unwrap_or_default()
}

impl DurableJob for Record {
    const KIND: &'static str = "conformance-record";
    type Output = ();

    async fn run(&self, _ctx: Context) -> Result<(), BoxError> {
        lists()
            .lock()
            .unwrap()
            .entry(self.list.clone())
            .or_default()
            .push(self.value);
        Ok(())
    }
}

/// Waits on a named gate (in this process), reporting progress first.
#[derive(Debug, Serialize, Deserialize)]
pub struct Held(pub String);

fn gates() -> &'static Mutex<HashMap<String, (Gate, Gate)>> {
    static GATES: OnceLock<Mutex<HashMap<String, (Gate, Gate)>>> = OnceLock::new();
    GATES.get_or_init(Mutex::default)
}

/// The (started, release) gates of name `name`.
pub(super) fn gate(name: &str) -> (Gate, Gate) {
    gates()
        .lock()
        .unwrap()
        .entry(name.into())
        .or_default()
        .clone()
}

impl DurableJob for Held {
    const KIND: &'static str = "conformance-held";
    type Output = ();

    async fn run(&self, ctx: Context) -> Result<(), BoxError> {
        ctx.progress(50.0, "held")?;
        let (started, release) = gate(&self.0);
        started.open();
        // Awaits (a cancel or timeout drops the future at its sleep), checking the gate
        // every millisecond.
        let deadline = std::time::Instant::now() + PATIENCE;
        while !release.is_open() {
            assert!(
                std::time::Instant::now() < deadline,
                "gate {} never opened",
                self.0
            );
            ctx.sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }
}

/// Fails its first `fails` attempts (counted in this process by name), then succeeds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Flaky {
    /// The counter's name.
    pub name: String,
    /// Attempts to fail.
    pub fails: u32,
}

fn counters() -> &'static Mutex<HashMap<String, Arc<AtomicU32>>> {
    static COUNTERS: OnceLock<Mutex<HashMap<String, Arc<AtomicU32>>>> = OnceLock::new();
    COUNTERS.get_or_init(Mutex::default)
}

impl DurableJob for Flaky {
    const KIND: &'static str = "conformance-flaky";
    type Output = u32;

    async fn run(&self, _ctx: Context) -> Result<u32, BoxError> {
        let counter = Arc::clone(
            counters()
                .lock()
                .unwrap()
                .entry(self.name.clone())
                .or_default(),
        );
        let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if run <= self.fails {
            Err(BoxError::from(format!("failure {run}")))
        } else {
            Ok(run)
        }
    }
}
