//! The process's file-descriptor limit: raised to its hard maximum at
//! start (every connection is a descriptor), and the default connection
//! cap derived from it, so that accepting never fails with "too many open
//! files" while the store, logs and refusals still have descriptors left.

/// Descriptors kept out of the connection cap for the store, the log,
/// upstream clients and the short-lived `503` refusals.
const RESERVED: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit in force afterwards (`None` where it cannot be read).
#[cfg(unix)]
pub fn raise_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            } else {
                tracing::warn!(
                    soft = limit.rlim_cur,
                    hard = limit.rlim_max,
                    "cannot raise the file-descriptor limit"
                );
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
pub fn raise_limit() -> Option<u64> {
    None
}

/// The soft `RLIMIT_NOFILE` in force.
#[cfg(unix)]
pub fn current_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
    ok.then_some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
pub fn current_limit() -> Option<u64> {
    None
}

/// The default `--max-connections` for a descriptor limit: three quarters
/// of what is left after the reserve (1 024 when the limit is unknown).
pub fn default_max_connections(limit: Option<u64>) -> u64 {
    match limit {
        Some(limit) => (limit.saturating_sub(RESERVED) / 4 * 3).clamp(1, 10_000_000),
        None => 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_room_for_everything_else() {
        assert_eq!(default_max_connections(Some(1024)), 720);
        assert_eq!(default_max_connections(Some(4096)), 3024);
        assert_eq!(default_max_connections(Some(10)), 1);
        assert_eq!(default_max_connections(None), 1024);
        assert_eq!(default_max_connections(Some(u64::MAX)), 10_000_000);
    }

    #[cfg(unix)]
    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let soft = raise_limit().unwrap();
        assert_eq!(current_limit(), Some(soft));
    }
}
