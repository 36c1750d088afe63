//! Phases 4 to 6: a task's life. Retries with backoff, progress across runs, and the memory
//! budget refusing work and handing it back.

use cortex_m_semihosting::hprintln;
use errand_core::Priority;

use super::{PHASE_LIMIT_MS, drained, job};
use crate::firmware::{self, End, Executor, Job, Ran, Refusal, Rejected, Work};
use crate::report::{Checks, check};

/// Attempts of one retried task: when each started, and the delays between them.
#[derive(Default)]
struct Attempts {
    at: [u32; 8],
    due: [u32; 8],
    delays_ns: [u64; 8],
    count: usize,
    retries: usize,
    end: Option<End>,
}

impl Attempts {
    fn record(&mut self, r: &Ran) {
        if let Some(at) = self.at.get_mut(self.count) {
            *at = r.at;
            self.due[self.count] = r.due;
        }
        self.count += 1;
        if let End::Retrying { delay_ns, .. } = r.end {
            if let Some(d) = self.delays_ns.get_mut(self.retries) {
                *d = delay_ns;
            }
            self.retries += 1;
        }
        self.end = Some(r.end);
    }

    /// Every retry started no earlier than the previous attempt's start plus its delay.
    fn waited(&self) -> bool {
        (1..self.count.min(8)).all(|k| {
            let ms = self.delays_ns[k - 1].div_ceil(1_000_000) as u32;
            self.at[k] >= self.due[k] && self.at[k] - self.at[k - 1] >= ms
        })
    }

    fn print(&self, name: &str) {
        for k in 0..self.count.min(8) {
            if k < self.retries {
                hprintln!(
                    "      {} attempt {} at {} ms: failed, retry in {} us",
                    name,
                    k + 1,
                    self.at[k],
                    self.delays_ns[k] / 1_000
                );
            } else {
                hprintln!(
                    "      {} attempt {} at {} ms: {:?}",
                    name,
                    k + 1,
                    self.at[k],
                    self.end
                );
            }
        }
    }
}

/// A task that fails three times and one that always fails, retried from the timer wheel
/// by the retry policies' backoff.
pub(super) fn retries(ex: &Executor, checks: &mut Checks) {
    hprintln!(
        "\n[4] retries: flaky (fails 3 times, equal jitter) and doomed (always fails, exact)"
    );
    let flaky_work = Work::Flaky(3);
    let flaky = ex.submit(job(flaky_work, Priority::NORMAL, 1, 0));
    let doomed = ex.submit(job(Work::Doomed, Priority::HIGH, 2, 0));
    let (pushes, _) = firmware::isr_counts();
    let (mut f, mut d) = (Attempts::default(), Attempts::default());
    let idle = ex.run_until_idle(PHASE_LIMIT_MS, |r| {
        if Ok(r.id) == flaky {
            f.record(r);
        } else if Ok(r.id) == doomed {
            d.record(r);
        }
    });
    let (pushes_now, _) = firmware::isr_counts();
    f.print("flaky ");
    d.print("doomed");

    // Doomed: 4 retries of 5 ms × 2ⁿ capped at 30 ms, exactly, then failure.
    const EXACT_MS: [u64; 4] = [5, 10, 20, 30];
    check!(
        checks,
        d.count == 5 && d.end == Some(End::Failed),
        "doomed: {} attempts (1 + max_retries 4), ended {:?}",
        d.count,
        d.end
    );
    check!(
        checks,
        d.retries == 4 && (0..4).all(|k| d.delays_ns[k] == EXACT_MS[k] * 1_000_000),
        "doomed: delays {:?} us = 5 ms x 2^n capped at 30 ms",
        [0, 1, 2, 3].map(|k| d.delays_ns[k] / 1_000)
    );
    // Flaky: equal jitter puts retry n in [t/2, t], t = 5 ms × 2ⁿ⁻¹ (capped at 40 ms).
    let policy = ex.policy(flaky_work);
    let in_band = (0..f.retries.min(8)).all(|k| {
        policy.is_some_and(|p| {
            let t = p.base_delay_ns(k as u32 + 1);
            (t / 2..=t).contains(&f.delays_ns[k])
        })
    });
    check!(
        checks,
        f.count == 4 && f.retries == 3 && f.end == Some(End::Succeeded),
        "flaky: succeeded on attempt {} after {} retries",
        f.count,
        f.retries
    );
    check!(
        checks,
        in_band,
        "flaky: each jittered delay within [t/2, t] of the base 5, 10, 20 ms"
    );
    check!(
        checks,
        d.waited() && f.waited(),
        "no retry started before its delay had passed"
    );
    check!(
        checks,
        pushes_now - pushes == 7,
        "all 7 retries were made ready by the SysTick handler ({} pushes)",
        pushes_now - pushes
    );
    drained(ex, checks, idle);
}

/// Tasks that advance their progress a step per run, yielding to the wheel in between;
/// progress is readable by id while they live.
pub(super) fn progress(ex: &Executor, checks: &mut Checks) {
    const STEPS: [u8; 3] = [25, 40, 34];
    hprintln!(
        "\n[5] progress: three tasks advancing {:?} % per run",
        STEPS
    );
    let priorities = [Priority::LOW, Priority::NORMAL, Priority::HIGH];
    let ids = [0, 1, 2].map(|k| {
        ex.submit(job(Work::Chunked(STEPS[k]), priorities[k], k as u32, 0))
            .ok()
    });
    let mut seen = [[0u8; 8]; 3];
    let mut runs = [0usize; 3];
    let mut ends = [None; 3];
    let mut unreadable = 0;
    let idle = ex.run_until_idle(PHASE_LIMIT_MS, |r| {
        let Some(k) = ids.iter().position(|id| *id == Some(r.id)) else {
            return;
        };
        if let Some(slot) = seen[k].get_mut(runs[k]) {
            *slot = r.progress;
        }
        runs[k] += 1;
        ends[k] = Some(r.end);
        // While live, progress is read back by id; once ended, the id no longer resolves.
        let expected = match r.end {
            End::Rescheduled { .. } => Some(r.progress),
            _ => None,
        };
        unreadable += usize::from(ex.progress(r.id) != expected);
    });
    for k in 0..3 {
        let step = STEPS[k];
        let want_runs = usize::from(100u8.div_ceil(step));
        let expected = |n: usize| ((n as u32 + 1) * u32::from(step)).min(100) as u8;
        let ok = runs[k] == want_runs
            && (0..want_runs).all(|n| seen[k][n] == expected(n))
            && ends[k] == Some(End::Succeeded);
        check!(
            checks,
            ok,
            "step {step}%: progress {:?} over {} runs, ended {:?}",
            &seen[k][..runs[k].min(8)],
            runs[k],
            ends[k]
        );
    }
    check!(
        checks,
        unreadable == 0,
        "progress read back by id after every run ({unreadable} mismatches)"
    );
    drained(ex, checks, idle);
}

/// Large tasks fill the memory budget; the next one is refused and handed back, and is
/// accepted once the others have finished.
pub(super) fn budget(ex: &Executor, checks: &mut Checks) {
    let shared = ex.shared();
    let limit = shared.budget.limit();
    let frame = (limit * 3 / 10) as u16;
    hprintln!(
        "\n[6] memory budget: {} bytes; tasks of {} bytes each",
        limit,
        frame
    );
    let big = |arg| Job {
        bytes: frame,
        ..job(Work::Compute, Priority::NORMAL, arg, 0)
    };
    let accepted = (0..3).filter(|&arg| ex.submit(big(arg)).is_ok()).count();
    let rejections = shared.budget.rejections();
    let fourth = big(3);
    let refused = ex.submit(fourth);
    check!(
        checks,
        accepted == 3 && shared.budget.used() == 3 * usize::from(frame),
        "3 accepted: {} of {} bytes in use",
        shared.budget.used(),
        limit
    );
    let handed_back = match refused {
        Err(Rejected {
            why: Refusal::OverBudget(e),
            job,
        }) => {
            hprintln!("      refused: {}", e);
            e.requested == usize::from(frame)
                && e.used == 3 * usize::from(frame)
                && e.limit == limit
                && job == fourth
        }
        _ => false,
    };
    check!(
        checks,
        handed_back && shared.budget.rejections() == rejections + 1,
        "the 4th was refused over budget and handed back intact"
    );
    check!(
        checks,
        shared.tasks.len() == 3 && shared.budget.used() == 3 * usize::from(frame),
        "the refusal took nothing: {} slots, {} bytes in use",
        shared.tasks.len(),
        shared.budget.used()
    );
    let mut ran = 0;
    let idle = ex.run_until_idle(PHASE_LIMIT_MS, |_| ran += 1);
    check!(
        checks,
        idle && ran == 3 && shared.budget.used() == 0,
        "the 3 ran and gave their bytes back"
    );
    let again = refused.map_err(|r| ex.submit(r.job));
    let mut ran_again = None;
    let idle = ex.run_until_idle(PHASE_LIMIT_MS, |r| ran_again = Some(r.arg));
    check!(
        checks,
        matches!(again, Err(Ok(_))) && ran_again == Some(fourth.arg),
        "the handed-back job, submitted again, was accepted and ran"
    );
    check!(
        checks,
        shared.budget.peak() <= limit,
        "peak use {} of {} bytes, never above the limit",
        shared.budget.peak(),
        limit
    );
    drained(ex, checks, idle);
}
