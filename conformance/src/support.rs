//! Shared by the checks: the patience every wait uses, a gate tasks block on, a held worker.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use errand_core::engine::{BoxError, Context, Manager, Runtime, Task, TaskHandle};
use errand_core::{Priority, RetryPolicy};

use crate::Adapter;

/// The generous bound every wait in the suite uses; reaching it fails the test.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) fn wait<T>(handle: TaskHandle<T>) -> Result<T, errand_core::engine::TaskError> {
    match handle.wait_timeout(PATIENCE) {
        Ok(result) => result,
        Err(handle) => panic!("task {} did not end within {PATIENCE:?}", handle.id()),
    }
}

/// A one-shot gate: tasks block on it until the test opens it.
#[derive(Clone, Default)]
pub(crate) struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub(crate) fn is_open(&self) -> bool {
        *self.0.0.lock().unwrap()
    }

    pub(crate) fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    pub(crate) fn wait(&self) {
        let (lock, condvar) = &*self.0;
        let guard = lock.lock().unwrap();
        let (guard, timeout) = condvar
            .wait_timeout_while(guard, PATIENCE, |open| !*open)
            .unwrap();
        assert!(!timeout.timed_out() && *guard, "gate never opened");
    }
}

/// Occupies the only worker of `manager` until the returned gate opens; returns once the
/// blocker is running.
pub(crate) fn block_worker<R: Runtime>(manager: &Manager<R>) -> (Gate, TaskHandle<()>) {
    let gate = Gate::default();
    let started = Gate::default();
    let handle = manager
        .submit(
            Task::blocking({
                let gate = gate.clone();
                let started = started.clone();
                move |_: &Context| {
                    started.open();
                    gate.wait();
                    Ok::<_, BoxError>(())
                }
            })
            .priority(Priority(255))
            .label("blocker"),
        )
        .unwrap();
    started.wait();
    (gate, handle)
}

pub(crate) fn one_worker<A: Adapter>() -> Manager<A::Runtime> {
    A::builder().workers(1).build().unwrap()
}

pub(crate) fn policy(retries: u32, initial_ms: u64) -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(retries)
        .initial_delay(Duration::from_millis(initial_ms))
        .multiplier(2.0)
        .max_delay(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[derive(Debug)]
pub(crate) struct ConnectionError;

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed to connect to external service")
    }
}

impl std::error::Error for ConnectionError {}
