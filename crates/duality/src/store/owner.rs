//! One process owns a SQLite file (README, "Configuration").
//!
//! Two processes on one SQLite file would each fan out only their own
//! writes, so their streams and snapshots would silently diverge. A process
//! therefore holds an exclusive lock on `<file>.lock` for as long as it
//! serves the file; a second one fails at start with one line naming the
//! file. The lock is the operating system's (`flock`): it cannot be left
//! behind by a crash, and taking it is race-free.
//!
//! The lock is on a file of its own, never on the database: SQLite's POSIX
//! locks on the database would be released by closing any other handle of
//! it in this process.

use duality_core::Error;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Holds the lock while alive.
#[derive(Debug)]
pub struct Owner {
    _file: File,
}

/// Where the lock for the database file `db` lives.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock for `db`, or says in one line why this process cannot
/// serve it.
pub fn claim(db: &Path) -> Result<Owner, Error> {
    let path = lock_path(db);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            Error::store_unavailable(format!(
                "cannot create {}: {e}; is its directory writable? Give another place with --db",
                path.display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Owner { _file: file }),
        Err(TryLockError::WouldBlock) => Err(Error::store_unavailable(format!(
            "another duality process is serving {} (it holds {}); one process owns a SQLite file: \
             stop that one or give this one another --db (processes share data only through PostgreSQL)",
            db.display(),
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(Error::store_unavailable(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_on_the_same_file_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let first = claim(&db).unwrap();
        let second = claim(&db).unwrap_err().to_string();
        assert!(
            second.contains("another duality process is serving"),
            "{second}"
        );
        assert!(second.contains("x.db"), "{second}");
        drop(first);
        assert!(claim(&db).is_ok());
    }
}
