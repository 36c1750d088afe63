//! Loom models of the idle workers' notifier ([`Waitlist`]): a notification reaches a
//! listener that waits, whether it lands before the listener's first poll or after, and
//! whether or not another listener it might have gone to is dropped unused (rule 4).
//!
//! A lost notification shows as a loom deadlock.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use crate::park::Notify;
use crate::waitlist::Waitlist;

/// A notify racing a listener's wait: the listener always wakes.
#[test]
fn a_notification_reaches_the_waiting_listener() {
    loom::model(|| {
        let list = Arc::new(Waitlist::with_capacity(1));
        let listener = list.listen();
        let notifier = {
            let list = Arc::clone(&list);
            thread::spawn(move || list.notify_one())
        };
        loom::future::block_on(listener);
        notifier.join().unwrap();
    });
}

/// Two listeners, one notification, and the older listener dropped unused while the
/// notification may be on its way to it: the younger one still wakes (rule 4).
#[test]
fn a_dropped_listener_passes_its_notification_on() {
    loom::model(|| {
        let list = Arc::new(Waitlist::with_capacity(2));
        let older = list.listen();
        let younger = list.listen();
        let notifier = {
            let list = Arc::clone(&list);
            thread::spawn(move || list.notify_one())
        };
        drop(older);
        loom::future::block_on(younger);
        notifier.join().unwrap();
    });
}

/// Two waiting threads and one `notify_all` after both registered: both wake.
#[test]
fn notify_all_reaches_every_waiter() {
    loom::model(|| {
        let list = Arc::new(Waitlist::with_capacity(2));
        let registered = Arc::new(AtomicUsize::new(0));
        let other = {
            let list = Arc::clone(&list);
            let registered = Arc::clone(&registered);
            thread::spawn(move || {
                let listener = list.listen();
                registered.store(1, Ordering::Release);
                loom::future::block_on(listener);
            })
        };
        let listener = list.listen();
        while registered.load(Ordering::Acquire) == 0 {
            thread::yield_now();
        }
        list.notify_all();
        loom::future::block_on(listener);
        other.join().unwrap();
    });
}
