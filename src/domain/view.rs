//! The views the service knows, and where each is served.
//!
//! A view is a keyed JSON map `{key: document}` with its own revision
//! counter. Adding a view means adding a variant here; the write path, the
//! store, the snapshot cache and the stream path are shared by all views.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum View {
    Persons,
    Locations,
    Customers,
    Incidents,
    Dashboard,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Persons,
        View::Locations,
        View::Customers,
        View::Incidents,
        View::Dashboard,
    ];

    /// The name used in the store and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            View::Persons => "persons",
            View::Locations => "locations",
            View::Customers => "customers",
            View::Incidents => "incidents",
            View::Dashboard => "dashboard",
        }
    }

    pub fn from_name(name: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Where the whole view is served (`GET`).
    pub fn snapshot_path(self) -> &'static str {
        match self {
            View::Persons => "/persons",
            View::Locations => "/locations",
            View::Customers => "/customers",
            View::Incidents => "/incidents",
            View::Dashboard => "/aggregates/dashboard",
        }
    }

    /// Where the view's change stream is served.
    pub fn stream_path(self) -> &'static str {
        match self {
            View::Persons => "/person-events",
            View::Locations => "/location-events",
            View::Customers => "/customer-events",
            View::Incidents => "/incident-events",
            View::Dashboard => "/aggregates/dashboard-events",
        }
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_round_trips_through_its_name_and_has_distinct_paths() {
        let mut paths = std::collections::HashSet::new();
        for view in View::ALL {
            assert_eq!(View::from_name(view.name()), Some(view));
            assert!(paths.insert(view.snapshot_path()));
            assert!(paths.insert(view.stream_path()));
        }
        assert_eq!(View::from_name("nope"), None);
    }
}
