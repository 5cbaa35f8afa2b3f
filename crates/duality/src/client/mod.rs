//! The Rust client, from the `duality-client` crate, plus the server-side
//! transport that reaches this process's own router without a socket.

mod in_process;

pub use duality_client::{
    Error, Follower, FollowerSet, Health, Member, Observer, Options, ViewCopy, follower, set,
};
pub use in_process::InProcess;

/// The client's transports, with the in-process one beside them.
pub mod transport {
    pub use super::InProcess;
    pub use duality_client::transport::{HeaderMap, Http, Reply, Transport};
}

pub use transport::{Http, Reply, Transport};
