//! The process's CPU time, for cases that measure work rather than waiting.

use std::time::Duration;

/// User plus system CPU time used so far by every thread of this process
/// (`getrusage(RUSAGE_SELF)`).
///
/// # Panics
///
/// If `getrusage` fails, which it does not for `RUSAGE_SELF` with a valid buffer.
///
/// # Examples
///
/// ```
/// let before = errand_benches::cpu::process_time();
/// let mut x = 0_u64;
/// for i in 0..1_000_000 { x = std::hint::black_box(x.wrapping_add(i)); }
/// assert!(errand_benches::cpu::process_time() >= before);
/// ```
#[must_use]
pub fn process_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `usage` is a writable buffer of the type `getrusage` fills; `RUSAGE_SELF` is
    // a valid `who`.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(status, 0, "getrusage(RUSAGE_SELF) failed");
    // SAFETY: `getrusage` returned 0, so it initialised `usage`.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}
