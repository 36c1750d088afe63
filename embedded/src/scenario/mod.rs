//! What the firmware does, phase by phase, and the checks that say it happened.
//!
//! Every phase starts and ends with no task live, so each one has the whole table.

use errand_core::Priority;

use crate::firmware::{Executor, Job, TASKS, Work};
use crate::report::{Checks, check};

mod lifecycle;
mod scheduling;

use lifecycle::{budget, progress, retries};
use scheduling::{preemption, priorities, timers};

/// Bytes of the memory budget: 64 per task.
pub const BUDGET_BYTES: usize = TASKS * 64;
/// Bytes charged by a small task (half the budget when every slot holds one).
const SMALL: u16 = 32;
/// No phase may take longer than this many ticks (ms).
const PHASE_LIMIT_MS: u32 = 3_000;

/// Runs every phase, recording checks in `checks`.
pub fn run(ex: &Executor, checks: &mut Checks) {
    priorities(ex, checks);
    timers(ex, checks);
    preemption(ex, checks);
    retries(ex, checks);
    progress(ex, checks);
    budget(ex, checks);
}

fn job(work: Work, priority: Priority, arg: u32, delay_ms: u32) -> Job {
    Job {
        work,
        priority,
        bytes: SMALL,
        arg,
        delay_ms,
    }
}

/// Checks that a phase ended with nothing live and no budget held.
fn drained(ex: &Executor, checks: &mut Checks, idle: bool) {
    let shared = ex.shared();
    check!(
        checks,
        idle && shared.tasks.is_empty() && shared.budget.used() == 0,
        "phase drained within {PHASE_LIMIT_MS} ms: {} tasks live, {} bytes held",
        shared.tasks.len(),
        shared.budget.used()
    );
}
