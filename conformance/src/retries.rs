//! Retries, backoff and error handlers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use errand_core::engine::{BoxError, Context, SubmitError, Task, TaskError};
use errand_core::{RetryDecision, RetryPolicy, State};

use crate::Adapter;
use crate::support::{ConnectionError, one_worker, policy, wait};

#[derive(Debug)]
struct ValueError;

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid data format")
    }
}

impl std::error::Error for ValueError {}

/// A task that fails twice then succeeds is retried after growing delays, never early.
pub fn failed_attempts_are_retried_with_backoff<A: Adapter>() {
    let manager = one_worker::<A>();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let handle = manager
        .submit(
            Task::blocking({
                let starts = Arc::clone(&starts);
                move |ctx: &Context| {
                    starts.lock().unwrap().push(Instant::now());
                    if ctx.attempt() < 3 {
                        Err(BoxError::from(std::format!(
                            "attempt {} failed",
                            ctx.attempt()
                        )))
                    } else {
                        Ok(ctx.attempt())
                    }
                }
            })
            .retry(policy(3, 20)),
        )
        .unwrap();
    let id = handle.id();
    assert_eq!(wait(handle).unwrap(), 3);
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 3);
    assert!(starts[1] - starts[0] >= Duration::from_millis(20));
    assert!(starts[2] - starts[1] >= Duration::from_millis(40));
    let counts = manager.counts();
    assert_eq!(
        (counts.retried, counts.executed, counts.succeeded),
        (2, 3, 1)
    );
    let info = manager.task(id).unwrap();
    assert_eq!(info.attempt, 3);
    assert_eq!(info.state, State::Succeeded);
}

/// Retries stop at the policy's limit: the task fails with its last error.
pub fn retries_are_bounded_by_the_policy<A: Adapter>() {
    let manager = A::builder()
        .workers(1)
        .default_retry(policy(2, 1))
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let handle = manager
        .spawn_blocking({
            let attempts = Arc::clone(&attempts);
            move |ctx: &Context| {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(BoxError::from(std::format!("failure {}", ctx.attempt())))
            }
        })
        .unwrap();
    let error = wait(handle).unwrap_err();
    assert_eq!(error.to_string(), "task failed: failure 3");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(manager.counts().retried, 2);
    assert_eq!(manager.counts().failed, 1);
}

/// The guide's custom handler: connection errors are retried, validation errors fail at
/// once, others are retried up to attempt 2; the handler sees id, error and attempt.
pub fn the_error_handler_decides_by_error_type<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = Arc::clone(&seen);
        move |id: errand_core::TaskId, error: &TaskError, attempt: u32| {
            seen.lock().unwrap().push((id, attempt));
            if error.downcast_ref::<ConnectionError>().is_some() {
                RetryDecision::RetryAfter(Duration::from_millis(5))
            } else if error.downcast_ref::<ValueError>().is_some() {
                RetryDecision::Fail
            } else if attempt < 2 {
                RetryDecision::Retry
            } else {
                RetryDecision::Fail
            }
        }
    };
    let connection = manager
        .submit(
            Task::blocking(|ctx: &Context| {
                if ctx.attempt() < 3 {
                    Err(BoxError::from(ConnectionError))
                } else {
                    Ok("connected")
                }
            })
            .retry(policy(5, 1))
            .on_error(handler.clone()),
        )
        .unwrap();
    let validation = manager
        .submit(
            Task::blocking(|_: &Context| Err::<(), _>(ValueError))
                .retry(policy(5, 1))
                .on_error(handler.clone()),
        )
        .unwrap();
    let connection_id = connection.id();
    let validation_id = validation.id();
    assert_eq!(wait(connection).unwrap(), "connected");
    let error = wait(validation).unwrap_err();
    assert!(error.downcast_ref::<ValueError>().is_some());
    let other = manager
        .submit(
            Task::blocking(|_: &Context| Err::<(), _>(BoxError::from("unknown error occurred")))
                .retry(policy(5, 1))
                .on_error(handler),
        )
        .unwrap();
    let other_id = other.id();
    assert_eq!(
        wait(other).unwrap_err().to_string(),
        "task failed: unknown error occurred"
    );
    let seen = seen.lock().unwrap().clone();
    let attempts = |id| -> Vec<u32> {
        seen.iter()
            .filter(|(seen_id, _)| *seen_id == id)
            .map(|(_, attempt)| *attempt)
            .collect()
    };
    assert_eq!(attempts(connection_id), [1, 2]);
    assert_eq!(attempts(validation_id), [1]);
    assert_eq!(attempts(other_id), [1, 2]);
}

/// A panic in the error handler fails the task (with both messages); the worker lives.
pub fn a_panicking_error_handler_fails_the_task<A: Adapter>() {
    let manager = one_worker::<A>();
    let handle = manager
        .submit(
            Task::blocking(|_: &Context| Err::<(), _>(BoxError::from("first failure")))
                .retry(policy(3, 1))
                .on_error(|_, _, _| panic!("handler exploded")),
        )
        .unwrap();
    let id = handle.id();
    assert_eq!(
        wait(handle).unwrap_err().to_string(),
        "task failed: first failure"
    );
    let info = manager.task(id).unwrap();
    assert_eq!(info.state, State::Failed);
    assert_eq!(
        info.error.as_deref(),
        Some("task failed: first failure; the error handler panicked: handler exploded")
    );
    assert_eq!(manager.counts().retried, 0);
    wait(
        manager
            .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
            .unwrap(),
    )
    .unwrap();
}

/// An error handler alone (no retry policy on the task) retries under the manager's
/// default policy: its `Retry` is never a silent single attempt.
pub fn a_handler_alone_retries_under_the_default_policy<A: Adapter>() {
    let manager = A::builder()
        .workers(1)
        .default_retry(policy(2, 1))
        .build()
        .unwrap();
    let handle = manager
        .submit(
            Task::blocking(|ctx: &Context| {
                if ctx.attempt() < 3 {
                    Err(BoxError::from(ConnectionError))
                } else {
                    Ok(ctx.attempt())
                }
            })
            .on_error(|_, _, _| RetryDecision::Retry),
        )
        .unwrap();
    assert_eq!(wait(handle).unwrap(), 3);
    assert_eq!(manager.counts().retried, 2);
}

/// A handler that could never retry (no policy on the task, none on the manager) is
/// refused at submission, with the task given back; a handler meant only to observe says
/// so with an explicit "no retries" policy.
pub fn a_handler_that_can_never_retry_is_refused<A: Adapter>() {
    let manager = one_worker::<A>();
    let task = Task::blocking(|_: &Context| Err::<(), _>(BoxError::from("no")))
        .on_error(|_, _, _| RetryDecision::Retry);
    let refused = manager.submit(task).unwrap_err();
    assert!(
        matches!(&refused, SubmitError::InvalidSpec { reason, .. } if reason.contains("error handler")),
        "{refused}"
    );
    let observed = Arc::new(AtomicUsize::new(0));
    let task = refused.into_task().retry(RetryPolicy::none()).on_error({
        let observed = Arc::clone(&observed);
        move |_, _, _| {
            observed.fetch_add(1, Ordering::SeqCst);
            RetryDecision::Retry
        }
    });
    assert!(wait(manager.submit(task).unwrap()).is_err());
    assert_eq!(observed.load(Ordering::SeqCst), 1);
    assert_eq!(manager.counts().retried, 0);
}
