//! Which boot of the machine this process runs in.
//!
//! A commit that SQLite has written to its log but not yet flushed to the
//! disk lives in the kernel's page cache: it survives the death of the
//! process (`kill -9`), not the machine's (a power cut, a kernel panic).
//! Only a new boot can have lost it, so a store that lets some commits
//! wait for their flush records the boot it runs in, and the next start
//! compares (see [`SqliteStore`](super::sqlite::SqliteStore)).

/// Where Linux keeps a random id made at every boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// This boot's id, or `None` where the system does not tell it: a store
/// then flushes every commit before publishing it.
pub fn id() -> Option<String> {
    let text = std::fs::read_to_string(BOOT_ID).ok()?;
    let id = text.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_boot_id_is_stable_within_a_boot() {
        // Linux has it; this project's servers and CI run on Linux.
        let first = super::id().expect("a boot id on Linux");
        assert_eq!(super::id().as_deref(), Some(first.as_str()));
        assert!(!first.contains('\n'));
    }
}
