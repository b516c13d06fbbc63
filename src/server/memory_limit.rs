//! Whether `session.capacity` fits the container's memory limit: a full
//! memory store past the cgroup limit is an OOM kill, and in memory mode
//! that logs everyone out. Checked once at start, a warning when it does
//! not fit (the operator may know their sessions are smaller).

/// Resident bytes per live session, as bench/run measures them (684: the moka
/// entry, the user index and record), and the process without sessions.
pub const BYTES_PER_SESSION: u64 = 700;
/// What the process needs besides its sessions.
pub const PROCESS_BYTES: u64 = 30 << 20;

/// The cgroup memory limit (v2, else v1), `None` when there is none.
pub fn cgroup_limit(read: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    let v2 = read("/sys/fs/cgroup/memory.max");
    let text = v2.or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))?;
    // "max" (v2) or a huge number (v1's "unlimited") mean no limit.
    text.trim().parse::<u64>().ok().filter(|&n| n < (1 << 60))
}

/// The warning to log when `capacity` sessions would not fit `limit`.
pub fn warning(capacity: u64, limit: Option<u64>) -> Option<String> {
    let limit = limit?;
    let needed = capacity
        .saturating_mul(BYTES_PER_SESSION)
        .saturating_add(PROCESS_BYTES);
    (needed > limit).then(|| {
        format!(
            "session.capacity = {capacity} sessions x ~{BYTES_PER_SESSION} B + the process \
             (~{} MiB) would exceed this container's memory limit ({} MiB): when full it is \
             OOM-killed, which in memory mode logs everyone out; lower session.capacity to \
             about {} or raise the limit",
            needed >> 20,
            limit >> 20,
            limit.saturating_sub(PROCESS_BYTES) / BYTES_PER_SESSION
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_warnings() {
        let v2 =
            |path: &str| (path == "/sys/fs/cgroup/memory.max").then(|| "268435456\n".to_owned());
        assert_eq!(cgroup_limit(&v2), Some(256 << 20));
        let unlimited =
            |path: &str| (path == "/sys/fs/cgroup/memory.max").then(|| "max\n".to_owned());
        assert_eq!(cgroup_limit(&unlimited), None);
        let v1 = |path: &str| {
            (path == "/sys/fs/cgroup/memory/memory.limit_in_bytes")
                .then(|| "9223372036854771712".to_owned())
        };
        assert_eq!(cgroup_limit(&v1), None);
        assert_eq!(cgroup_limit(&|_| None), None);
        assert!(warning(1_000_000, Some(256 << 20)).is_some_and(|w| w.contains("1000000")));
        assert_eq!(warning(200_000, Some(256 << 20)), None);
        assert_eq!(warning(1_000_000, None), None);
    }
}
