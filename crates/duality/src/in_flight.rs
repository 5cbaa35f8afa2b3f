//! The `Idempotency-Key`s this process is handling right now: a repeat of
//! one while the first request is still running is refused (409) instead
//! of racing it to the store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The keys this process is handling right now.
#[derive(Default)]
pub struct InFlight {
    keys: Mutex<HashSet<String>>,
}

/// Holds a key as in flight until dropped.
pub struct Claim {
    registry: Arc<InFlight>,
    key: String,
}

impl InFlight {
    /// Claims `key`; `None` if a request with it is still being handled.
    pub fn claim(self: &Arc<Self>, key: &str) -> Option<Claim> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.insert(key.to_string()).then(|| Claim {
            registry: Arc::clone(self),
            key: key.to_string(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut keys = self.registry.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(&self.key);
    }
}
