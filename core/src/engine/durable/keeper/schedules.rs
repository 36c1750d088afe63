//! Recurring schedules: the leader fires each due tick as a job with a unique key of its
//! own, in the transaction that advances the schedule.

use std::boxed::Box;
use std::vec::Vec;

use super::{Awaiting, Keeper};
use crate::engine::durable::job::JobId;
use crate::engine::durable::store::{Op, ScheduleRow, UnixMillis};

impl Keeper {
    /// Fires every schedule tick that is due (the missed-tick policy decides how many).
    pub(super) fn add_schedules(
        &mut self,
        now: UnixMillis,
        ops: &mut Vec<Op>,
        awaiting: &mut Vec<Awaiting>,
    ) {
        if self.stopping {
            return;
        }
        for index in 0..self.schedules.len() {
            let Some(due) = due_of(&self.schedules[index]) else {
                continue;
            };
            let previous_running = self.previous_running(self.schedules[index].last_job);
            let schedule = &mut self.schedules[index];
            if due > now {
                continue;
            }
            let interval = i64::try_from(schedule.interval_ms.max(1)).unwrap_or(i64::MAX);
            // The latest tick due now.
            let latest = u64::try_from((now - schedule.anchor) / interval).unwrap_or(0);
            let tick = if schedule.burst {
                schedule.next_tick
            } else {
                latest.max(schedule.next_tick)
            };
            let next_tick = tick.saturating_add(1);
            if !schedule.overlap && previous_running {
                // The previous tick's job has not finished: skip this one.
                schedule.next_tick = next_tick;
                awaiting.push(Awaiting::Own(ops.len()));
                ops.push(Op::PutSchedule {
                    schedule: Box::new(schedule.clone()),
                });
                continue;
            }
            let mut job = schedule.job.clone();
            job.run_at = schedule.anchor.saturating_add(
                i64::try_from(tick)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(interval),
            );
            job.created_at = now;
            job.unique_key = Some(std::format!("errand-schedule:{}:{tick}", schedule.name));
            job.schedule = Some(schedule.name.clone());
            job.claimed = false;
            schedule.next_tick = next_tick;
            schedule.fired = schedule.fired.saturating_add(1);
            self.maybe_pending = true;
            awaiting.push(Awaiting::Own(ops.len()));
            ops.push(Op::FireSchedule {
                name: schedule.name.clone(),
                tick,
                next_tick,
                job,
                reply: None,
            });
        }
    }

    /// Whether the job a schedule's previous tick made has not finished.
    pub(super) fn previous_running(&self, last: Option<JobId>) -> bool {
        let Some(last) = last else {
            return false;
        };
        if self.shared.task_of(last).is_some() {
            return true;
        }
        matches!(self.shared.reader.job(last), Ok(Some(row)) if !row.state.is_finished())
    }
}

/// When a schedule's next tick is due (`None` once it has fired its last).
pub(crate) fn due_of(schedule: &ScheduleRow) -> Option<UnixMillis> {
    if schedule.max_ticks.is_some_and(|max| schedule.fired >= max) {
        return None;
    }
    let interval = i64::try_from(schedule.interval_ms.max(1)).unwrap_or(i64::MAX);
    let due = schedule.anchor.saturating_add(
        i64::try_from(schedule.next_tick)
            .unwrap_or(i64::MAX)
            .saturating_mul(interval),
    );
    match schedule.until {
        Some(until) if due > until => None,
        _ => Some(due),
    }
}
