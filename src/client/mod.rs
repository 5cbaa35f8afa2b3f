//! The Rust client: follow any view of a duality server and keep a local
//! copy current. The aggregates service is built on it.

pub mod follower;
pub mod transport;

pub use follower::{Follower, Health, Observer, Options, ViewCopy};
pub use transport::{Http, InProcess, Transport};
