//! Why a server could not start, or stopped with an error.

use duality_core::Error;

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The settings are unusable: a flag given twice, a missing companion
    /// flag or service, a schema file that does not load.
    #[error("{0}")]
    Config(String),
    /// The database could not be opened or prepared.
    #[error("cannot open the database: {0}")]
    Store(#[from] Error),
    /// Binding the listener or serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}
