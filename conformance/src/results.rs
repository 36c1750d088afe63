//! Stored results and their expiry.

use std::time::Duration;

use errand_core::engine::{BoxError, Context, Task};

use crate::Adapter;
use crate::support::{PATIENCE, one_worker, wait};

/// A stored result is there until its TTL passes, then gone, and its bytes are back in
/// the memory budget.
pub fn stored_results_expire_and_are_freed<A: Adapter>() {
    let manager = one_worker::<A>();
    let kept = manager
        .submit(
            Task::blocking(|_: &Context| Ok::<_, BoxError>(String::from("report_2024.pdf")))
                .store_result_for(Duration::from_secs(3600)),
        )
        .unwrap();
    let kept_id = kept.id();
    assert_eq!(wait(kept).unwrap(), "report_2024.pdf");
    // Once every task has ended, only stored results hold budget.
    assert!(manager.wait_for_completion(PATIENCE).wait());
    let with_one = manager.analytics().memory.used;
    assert!(with_one > 0);
    assert_eq!(
        manager
            .stored_result::<String>(kept_id)
            .as_deref()
            .map(String::as_str),
        Some("report_2024.pdf")
    );
    assert!(
        manager.stored_result::<u32>(kept_id).is_none(),
        "wrong type"
    );

    let ttl = Duration::from_millis(50);
    let brief = manager
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>([7_u64; 64])).store_result_for(ttl))
        .unwrap();
    let brief_id = brief.id();
    assert_eq!(wait(brief).unwrap(), [7; 64]);
    assert!(manager.wait_for_completion(PATIENCE).wait());
    assert!(manager.analytics().memory.used > with_one);
    assert_eq!(manager.analytics().stored_results, 2);
    // Past its TTL the result is gone and its bytes are back in the budget.
    std::thread::sleep(ttl);
    assert!(
        manager.stored_result::<[u64; 64]>(brief_id).is_none(),
        "expired"
    );
    assert_eq!(manager.analytics().memory.used, with_one);
    assert_eq!(manager.analytics().stored_results, 1);
    // Results are stored only when asked for.
    let plain = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(1_u8))
        .unwrap();
    let plain_id = plain.id();
    wait(plain).unwrap();
    assert!(manager.stored_result::<u8>(plain_id).is_none());
}
