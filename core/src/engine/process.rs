//! Process CPU time (`clock_gettime` on Unix) and resident memory (`/proc/self` on Linux);
//! `None` elsewhere, and under miri, whose isolation forbids both.

use std::time::Duration;

/// CPU time (user + system) the whole process used so far, from
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`: nanosecond resolution, so a short window's
/// percentage is not quantized (`/proc/self/stat` counts 10 ms ticks).
#[cfg(all(unix, not(miri)))]
pub(crate) fn cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the call only writes it.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    if status != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nanos = u32::try_from(now.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

/// CPU time is not measured on this platform.
#[cfg(any(not(unix), miri))]
pub(crate) fn cpu_time() -> Option<Duration> {
    None
}

/// Resident set size of the process, in bytes (`VmRSS` of `/proc/self/status`).
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// Resident memory is not measured on this platform.
#[cfg(any(not(target_os = "linux"), miri))]
pub(crate) fn rss_bytes() -> Option<u64> {
    None
}

#[cfg(all(test, target_os = "linux", not(miri)))]
mod tests {
    #[test]
    fn proc_self_is_readable() {
        assert!(super::cpu_time().is_some());
        assert!(super::rss_bytes().unwrap() > 0);
    }
}
