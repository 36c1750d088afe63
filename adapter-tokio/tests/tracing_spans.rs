//! With errand-core's `tracing` feature (on for this crate's tests): each attempt runs in
//! an `errand.attempt` span carrying the task's id, label, priority and attempt, and
//! retries, failures and timeouts are events with the task and attempt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_tokio::prelude::*;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

/// What the layer saw: spans (name and fields) and events (fields, message included).
#[derive(Default)]
struct Seen {
    spans: Vec<(String, Vec<(String, String)>)>,
    events: Vec<Vec<(String, String)>>,
    /// Events emitted inside an attempt's span: their message and the span's task.
    inside: Vec<String>,
}

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().into(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().into(), value.into()));
    }
}

struct Recorder(Arc<Mutex<Seen>>);

impl<S> tracing_subscriber::Layer<S> for Recorder
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: LayerContext<'_, S>,
    ) {
        let mut fields = Fields(Vec::new());
        attrs.record(&mut fields);
        let name = attrs.metadata().name().to_string();
        self.0.lock().unwrap().spans.push((name, fields.0));
    }

    fn on_record(
        &self,
        _id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _ctx: LayerContext<'_, S>,
    ) {
        let mut fields = Fields(Vec::new());
        values.record(&mut fields);
        if let Some(last) = self.0.lock().unwrap().spans.last_mut() {
            last.1.extend(fields.0);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let mut seen = self.0.lock().unwrap();
        if let Some(span) = ctx.event_span(event) {
            if span.name() == "errand.attempt" {
                let message = fields
                    .0
                    .iter()
                    .find(|(k, _)| k == "message")
                    .map(|(_, v)| v.clone());
                seen.inside.push(message.unwrap_or_default());
            }
        }
        seen.events.push(fields.0);
    }
}

fn has(fields: &[(String, String)], key: &str, value: &str) -> bool {
    fields.iter().any(|(k, v)| k == key && v == value)
}

#[test]
fn attempts_have_spans_and_retries_failures_and_timeouts_are_events() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let subscriber = tracing_subscriber::registry().with(Recorder(Arc::clone(&seen)));
    // The engine's workers run on other threads: the subscriber is the process's.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let manager = errand_tokio::builder().workers(2).build().unwrap();
        let flaky = manager
            .submit(
                Task::blocking(|ctx: &Context| {
                    tracing::info!("inside the attempt");
                    if ctx.attempt() == 1 {
                        Err(BoxError::from("flaky"))
                    } else {
                        Ok(())
                    }
                })
                .label("flaky job")
                .priority(Priority::HIGH)
                .retry(
                    RetryPolicy::builder()
                        .max_retries(1)
                        .initial_delay(Duration::from_millis(1))
                        .build()
                        .unwrap(),
                ),
            )
            .unwrap();
        let flaky_id = flaky.id().to_string();
        flaky.await.unwrap();
        let broken = manager
            .submit(Task::blocking(|_: &Context| {
                Err::<(), _>(BoxError::from("broken"))
            }))
            .unwrap();
        let broken_id = broken.id().to_string();
        broken.await.unwrap_err();
        let slow = manager
            .submit(
                Task::future(|ctx: Context| async move {
                    ctx.cancelled().await;
                    Ok::<_, BoxError>(())
                })
                .timeout(Duration::from_millis(10)),
            )
            .unwrap();
        let slow_id = slow.id().to_string();
        slow.await.unwrap_err();
        manager.shutdown(Duration::from_secs(5)).await;

        let seen = seen.lock().unwrap();
        let attempts: Vec<_> = seen
            .spans
            .iter()
            .filter(|(name, fields)| name == "errand.attempt" && has(fields, "task", &flaky_id))
            .collect();
        assert_eq!(attempts.len(), 2, "{:?}", seen.spans);
        assert!(has(&attempts[0].1, "attempt", "1") && has(&attempts[1].1, "attempt", "2"));
        assert!(
            has(&attempts[0].1, "label", "flaky job"),
            "{:?}",
            attempts[0]
        );
        assert!(has(&attempts[0].1, "priority", "10"), "{:?}", attempts[0]);
        // The task's own events are inside its span.
        assert_eq!(
            seen.inside
                .iter()
                .filter(|m| *m == "inside the attempt")
                .count(),
            2
        );
        let event = |message: &str, task: &str| {
            seen.events
                .iter()
                .any(|fields| has(fields, "message", message) && has(fields, "task", task))
        };
        assert!(
            event("errand: attempt failed, retrying", &flaky_id),
            "{:?}",
            seen.events
        );
        assert!(
            event("errand: task failed", &broken_id),
            "{:?}",
            seen.events
        );
        assert!(
            event("errand: task timed out", &slow_id),
            "{:?}",
            seen.events
        );
    });
}
