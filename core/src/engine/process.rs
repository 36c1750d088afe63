//! Process CPU time and resident memory, from `/proc/self` on Linux; `None` elsewhere
//! (and under miri, whose isolation forbids reading files).

use std::time::Duration;

/// CPU time (user + system) the whole process used so far.
///
/// Read from `/proc/self/stat` (fields 14 and 15), in clock ticks of `USER_HZ`, which
/// Linux fixes at 100 per second for this interface on every architecture: a 10 ms
/// resolution.
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is parenthesised and may contain spaces: skip past it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        utime.saturating_add(stime).saturating_mul(10),
    ))
}

/// CPU time is not measured on this platform.
#[cfg(any(not(target_os = "linux"), miri))]
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
