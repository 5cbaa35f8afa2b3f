//! The built-in services' panels on the page at `/` (registered with
//! [`Service::panel`](duality::Service::panel)): the engine draws every
//! view as a generic table; these scripts draw persons with their form,
//! locations with bars, the dashboard as cards, and each collection's
//! documents whole. The files are in `src/web/`, compiled into the binary.

/// The persons panel: the table, the form, the delete buttons.
pub const PERSONS_JS: &str = include_str!("web/persons.js");
/// The locations panel: cities with a bar each.
pub const LOCATIONS_JS: &str = include_str!("web/locations.js");
/// The styles of the persons and locations panels.
pub const PERSONS_CSS: &str = include_str!("web/persons.css");
/// The dashboard panel: the count and the ranked lists, in words.
pub const DASHBOARD_JS: &str = include_str!("web/dashboard.js");
/// The styles of the dashboard's cards.
pub const DASHBOARD_CSS: &str = include_str!("web/dashboard.css");
/// A collection's panel: each document by key, as compact JSON.
pub const COLLECTION_JS: &str = include_str!("web/collection.js");

#[cfg(test)]
mod tests {
    use crate::settings::{Builtin, parse_collection};
    use duality::http::web::writes_html;

    fn services() -> Vec<duality::Service> {
        let settings = Builtin {
            collections: vec![parse_collection("notes").unwrap()],
            ..Builtin::default()
        };
        vec![
            crate::persons::service(),
            crate::aggregate::customers_service(),
            crate::aggregate::incidents_service(),
            crate::aggregate::aggregates_service(settings.upstreams()),
            crate::collections::service(
                &settings.collections,
                &[],
                &[],
                settings.collection_batch_limit.0,
            )
            .unwrap(),
        ]
    }

    #[test]
    fn the_panel_scripts_set_no_text_through_inner_html() {
        let mut checked = 0;
        for service in services() {
            for panel in service.panels() {
                assert_eq!(writes_html(panel.script), None, "{:?}", panel.view);
                checked += 1;
            }
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn each_panel_draws_a_view_of_its_own_service() {
        for service in services() {
            for panel in service.panels() {
                assert!(service.views().contains(&panel.view), "{:?}", panel.view);
            }
        }
    }
}
