//! Phases 1 to 3: who runs when. Priority order, timers fired from SysTick, preemption of
//! a backlog by a task the interrupt made ready.

use cortex_m_semihosting::hprintln;
use errand_core::{Level, Priority, RandomSource, SplitMix64, State};

use super::{PHASE_LIMIT_MS, SMALL, drained, job};
use crate::firmware::{self, End, Executor, Ran, Refusal, Rejected, TASKS, Work, ticks};
use crate::report::{Checks, check};

/// Fills every slot with ready tasks of mixed priorities; the main loop runs them strictly
/// by level, first in first out within a level.
pub(super) fn priorities(ex: &Executor, checks: &mut Checks) {
    hprintln!(
        "\n[1] priorities: {} tasks queued by main, run strictly by level",
        TASKS
    );
    let shared = ex.shared();
    // The named priorities and one unnamed on each level.
    const MIX: [u8; 8] = [1, 5, 10, 20, 0, 7, 14, 200];
    let mut rng = SplitMix64::new(0x5eed);
    let mut submitted = [0usize; Level::COUNT];
    for arg in 0..TASKS as u32 {
        let priority = Priority(MIX[(rng.next_u64() % 8) as usize]);
        if ex.submit(job(Work::Compute, priority, arg, 0)).is_ok() {
            submitted[priority.level().index()] += 1;
        }
    }
    let total: usize = submitted.iter().sum();
    check!(
        checks,
        total == TASKS && shared.ready.len() == TASKS,
        "{total} submitted, every slot in use (low/normal/high/critical = {:?})",
        submitted
    );
    let used = shared.budget.used();
    let extra = job(Work::Compute, Priority::CRITICAL, TASKS as u32, 0);
    let refused = ex.submit(extra);
    check!(
        checks,
        matches!(refused, Err(Rejected { why: Refusal::NoSlot(e), job }) if e.capacity == TASKS && job == extra),
        "task {} refused (no free slot), the job handed back: {:?}",
        TASKS + 1,
        refused.map_err(|r| r.why)
    );
    check!(
        checks,
        shared.budget.used() == used && used == TASKS * usize::from(SMALL),
        "the refused task's bytes were given back: {} of {} bytes in use",
        shared.budget.used(),
        shared.budget.limit()
    );

    let mut ran = [0usize; Level::COUNT];
    let mut previous: Option<(Level, u32)> = None;
    let (mut inversions, mut fifo_breaks, mut not_ok) = (0, 0, 0);
    let idle = ex.run_until_idle(PHASE_LIMIT_MS, |r| {
        ran[r.level.index()] += 1;
        not_ok += usize::from(r.end != End::Succeeded);
        if let Some((level, arg)) = previous {
            inversions += usize::from(r.level > level);
            fifo_breaks += usize::from(r.level == level && r.arg <= arg);
        }
        previous = Some((r.level, r.arg));
    });
    check!(
        checks,
        ran == submitted && not_ok == 0,
        "all ran and succeeded, per level {:?}",
        ran
    );
    check!(
        checks,
        inversions == 0,
        "levels never rose during the run: {inversions} inversions"
    );
    check!(
        checks,
        fifo_breaks == 0,
        "first in, first out within each level: {fifo_breaks} out of order"
    );
    drained(ex, checks, idle);
}

/// Fills every slot with delayed tasks; the SysTick handler fires their timers and pushes
/// them from interrupt context. A few far-off ones are cancelled before they fire.
pub(super) fn timers(ex: &Executor, checks: &mut Checks) {
    const FAR: usize = 4;
    hprintln!(
        "\n[2] timers: {} delayed tasks, fired by SysTick, {} cancelled",
        TASKS,
        FAR
    );
    let shared = ex.shared();
    let (pushes, faults) = firmware::isr_counts();
    let start = ticks();
    // The batch is armed with SysTick masked, so nothing fires before the counts below.
    let (submitted, pending, far, max_delay, cancelled, pending_after, live_after) =
        critical_section::with(|_| {
            let mut far = [None; FAR];
            let (mut submitted, mut max_delay) = (0, 0);
            for i in 0..TASKS {
                let delay = if i < FAR {
                    60_000
                } else {
                    1 + (i as u32 * 37) % 50
                };
                let priority = if i % 2 == 0 {
                    Priority::NORMAL
                } else {
                    Priority::HIGH
                };
                if let Ok(id) = ex.submit(job(Work::Compute, priority, i as u32, delay)) {
                    submitted += 1;
                    match far.get_mut(i) {
                        Some(slot) => *slot = Some(id),
                        None => max_delay = max_delay.max(delay),
                    }
                }
            }
            let pending = shared.timers_pending();
            let cancelled = far
                .iter()
                .filter(|id| id.and_then(|id| ex.cancel(id)) == Some(State::Scheduled))
                .count();
            (
                submitted,
                pending,
                far,
                max_delay,
                cancelled,
                shared.timers_pending(),
                shared.tasks.len(),
            )
        });
    check!(
        checks,
        submitted == TASKS && pending == TASKS,
        "{submitted} submitted, {pending} timers pending (delays 1 to {max_delay} ms, and 60 s)"
    );
    check!(
        checks,
        cancelled == FAR && pending_after == TASKS - FAR && live_after == TASKS - FAR,
        "{cancelled} cancelled while scheduled: timers disarmed and slots freed ({pending_after} pending)"
    );

    let (mut ran, mut early, mut late_max, mut not_ok, mut ran_cancelled) = (0, 0, 0, 0, 0);
    let idle = ex.run_until_idle(PHASE_LIMIT_MS, |r| {
        ran += 1;
        early += usize::from(r.at < r.due);
        late_max = late_max.max(r.at.wrapping_sub(r.due));
        not_ok += usize::from(r.end != End::Succeeded);
        ran_cancelled += usize::from(far.contains(&Some(r.id)));
    });
    let elapsed = ticks().wrapping_sub(start);
    let (pushes_now, faults_now) = firmware::isr_counts();
    check!(
        checks,
        ran == TASKS - FAR && not_ok == 0 && ran_cancelled == 0,
        "{ran} ran and succeeded; cancelled ones run: {ran_cancelled}"
    );
    check!(
        checks,
        pushes_now - pushes == (TASKS - FAR) as u32 && faults_now == faults,
        "every one was pushed by the SysTick handler: {} pushes, {} faults",
        pushes_now - pushes,
        faults_now - faults
    );
    check!(
        checks,
        early == 0,
        "none started before its deadline ({early} early; latest {late_max} ms after)"
    );
    check!(
        checks,
        elapsed >= max_delay,
        "SysTick drove them: {elapsed} ticks for delays up to {max_delay} ms"
    );
    drained(ex, checks, idle);
}

/// A critical task made ready by SysTick while a backlog of low ones is running is the
/// next one dispatched.
pub(super) fn preemption(ex: &Executor, checks: &mut Checks) {
    let backlog = TASKS / 4;
    let delay = (backlog / 4) as u32;
    hprintln!(
        "\n[3] preemption: {} low tasks of 1 ms each, a critical one due after {} ms",
        backlog,
        delay
    );
    let shared = ex.shared();
    let (pushes, _) = firmware::isr_counts();
    let alarm = critical_section::with(|_| {
        for arg in 0..backlog as u32 {
            let _ = ex.submit(job(Work::Spin, Priority::LOW, arg, 0));
        }
        ex.submit(job(Work::Compute, Priority::CRITICAL, 0xa1a, delay))
    });
    check!(
        checks,
        alarm.is_ok() && shared.tasks.len() == backlog + 1,
        "{} tasks submitted",
        shared.tasks.len()
    );
    let mut seen: Option<(Ran, usize)> = None;
    let (mut low_done, mut low_before) = (0, 0);
    let idle = ex.run_until_idle(PHASE_LIMIT_MS, |r| {
        if Ok(r.id) == alarm {
            seen = Some((*r, shared.ready.level_len(Level::Low)));
        } else if r.end == End::Succeeded {
            low_done += 1;
            low_before += usize::from(seen.is_none());
        }
    });
    let (pushes_now, _) = firmware::isr_counts();
    match seen {
        Some((r, waiting)) => {
            hprintln!(
                "      critical task due at {} ran at {}, after {} low tasks; {} still waiting",
                r.due,
                r.at,
                low_before,
                waiting
            );
            check!(
                checks,
                r.end == End::Succeeded && r.at >= r.due && pushes_now - pushes == 1,
                "it was pushed by SysTick and ran, not before its deadline"
            );
            check!(
                checks,
                r.overtaken_by <= 1 && waiting > 0,
                "it overtook the backlog: dispatched {} after becoming ready, {waiting} low tasks still queued",
                if r.overtaken_by == 0 {
                    "next"
                } else {
                    "right after the task already popped"
                }
            );
        }
        None => {
            check!(checks, false, "the critical task never ran");
        }
    }
    check!(
        checks,
        low_done == backlog,
        "the backlog finished: {low_done} of {backlog}"
    );
    drained(ex, checks, idle);
}
