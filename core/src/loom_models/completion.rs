//! Loom models of a task's completion ([`Completion`]): the writer's publish and an
//! abort race, exactly one end reaches the taker, the taker never reads a slot the writer
//! still owns, and a waiting taker is always woken.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use loom::sync::Arc;
use loom::thread;

use crate::completion::{Completion, Taken};

/// Waits for the end and takes it, as a task's handle does: register, then check.
struct Take<'a>(&'a Completion<u32>);

impl Future for Take<'_> {
    type Output = Taken<u32>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Taken<u32>> {
        if let Some(taken) = self.0.take(|slot| core::mem::take(slot)) {
            return Poll::Ready(taken);
        }
        self.0.latch().register(cx.waker());
        match self.0.take(|slot| core::mem::take(slot)) {
            Some(taken) => Poll::Ready(taken),
            None => Poll::Pending,
        }
    }
}

/// A writer stages and publishes while another thread aborts and the taker waits: the
/// taker gets the value or the abort, never both, and the writer keeps its value exactly
/// when the abort won.
#[test]
fn publish_or_abort_one_end() {
    loom::model(|| {
        let completion = Arc::new(Completion::new(0_u32));
        let writer = {
            let completion = Arc::clone(&completion);
            thread::spawn(move || {
                // SAFETY: rule 1, this thread is the only writer and has not published.
                unsafe { completion.with_slot(|slot| *slot = 42) };
                // SAFETY: as above.
                let published = unsafe { completion.publish(1) };
                if !published {
                    // Rule 2: aborted first, the slot is still ours: empty it.
                    // SAFETY: rule 1, an aborted slot stays the writer's.
                    let kept = unsafe { completion.with_slot(|slot| core::mem::take(slot)) };
                    assert_eq!(kept, 42);
                }
                published
            })
        };
        let aborter = {
            let completion = Arc::clone(&completion);
            thread::spawn(move || completion.latch().abort(2))
        };
        let taken = loom::future::block_on(Take(&completion));
        let published = writer.join().unwrap();
        let aborted = aborter.join().unwrap();
        assert!(published != aborted, "exactly one end wins");
        match taken {
            Taken::Published(value) => {
                assert!(published);
                assert_eq!(value, 42);
            }
            Taken::Aborted(code) => {
                assert!(aborted);
                assert_eq!(code, 2);
            }
        }
        assert_eq!(
            completion.latch().code(),
            Some(if published { 1 } else { 2 })
        );
    });
}

/// The hand-back of a blocking attempt: the worker abandons its wait (an abort) while the
/// blocking thread sends (a publish). Either the worker gets the value, or the sender
/// gets it back: it is never lost and never in two hands.
#[test]
fn abandon_or_receive() {
    loom::model(|| {
        let channel = Arc::new(Completion::new(None::<u32>));
        let sender = {
            let channel = Arc::clone(&channel);
            thread::spawn(move || {
                // SAFETY: rule 1, the only writer.
                unsafe { channel.with_slot(|slot| *slot = Some(7)) };
                // SAFETY: as above.
                if unsafe { channel.publish(0) } {
                    None
                } else {
                    // SAFETY: rule 1, aborted: ours again.
                    unsafe { channel.with_slot(Option::take) }
                }
            })
        };
        let received = if channel.latch().abort(0) {
            None
        } else {
            match channel.take(Option::take) {
                Some(Taken::Published(value)) => value,
                other => panic!("a lost abort means a publish: {other:?}"),
            }
        };
        let returned = sender.join().unwrap();
        assert_eq!(
            received.is_some(),
            returned.is_none(),
            "the value is in exactly one hand"
        );
        assert_eq!(received.or(returned), Some(7));
    });
}
