//! Query strings, read strictly: every parameter a path does not know is a
//! `400` that names it (docs/PROTOCOL.md, "Filters"), so a misspelt filter
//! never answers the whole view as if it had been applied.

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use duality_core::{Error, Filter};

/// The parameters of one request, in order, decoded.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes `query` (`None`: no query string) and refuses any parameter
    /// not in `known`.
    pub fn parse(query: Option<&str>, known: &[&str]) -> Result<Params, Error> {
        let params = Params::decode(query);
        let takes = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        params.refuse_unknown(|name| known.contains(&name), &takes)?;
        Ok(params)
    }

    /// Decodes `query` without checking the names (for a path whose names
    /// depend on its values; it then calls [`refuse_unknown`](Self::refuse_unknown)).
    pub fn decode(query: Option<&str>) -> Params {
        Params(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Refuses the first parameter `known` does not accept, naming it and
    /// saying what the path `takes`.
    pub fn refuse_unknown(&self, known: impl Fn(&str) -> bool, takes: &str) -> Result<(), Error> {
        if let Some((name, _)) = self.0.iter().find(|(k, _)| !known(k)) {
            let shown: String = name.chars().take(64).collect();
            return Err(Error::Invalid(format!(
                "unknown query parameter `{shown}`; this path takes {takes}"
            )));
        }
        Ok(())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The one value of `name`, if given; given twice is a `400`.
    pub fn one(&self, name: &str) -> Result<Option<&str>, Error> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(Error::Invalid(format!("{name}: given more than once")));
        }
        Ok(first)
    }

    /// The parameters named in `names`, encoded again as a query string
    /// (without `?`), in their order.
    pub fn encoded(&self, names: &[&str]) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.0.iter().filter(|(k, _)| names.contains(&k.as_str())) {
            out.append_pair(k, v);
        }
        out.finish()
    }

    /// The filter the `key` and `where` parameters describe.
    pub fn filter(&self) -> Result<Filter, Error> {
        Filter::parse(&self.all("key"), self.one("where")?)
    }
}

/// Middleware for routes that take no query parameter.
pub async fn none(request: Request, next: Next) -> Response {
    match Params::parse(request.uri().query(), &[]) {
        Ok(_) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// `router` with its query read strictly ([`none`]) by each method it
/// routes, not by its fallback: a method the path does not take stays a
/// `405`, whatever the query. A router made only of a fallback
/// (`axum::routing::any`) is checked as a whole.
pub fn strict<S: Clone + Send + Sync + 'static>(router: MethodRouter<S>) -> MethodRouter<S> {
    if routes_a_method(&router) {
        router.route_layer(middleware::from_fn(none))
    } else {
        router.layer(middleware::from_fn(none))
    }
}

/// Whether `router` routes at least one method itself. axum has no
/// accessor for it (and `route_layer` panics on a router that routes
/// none); its `Debug` lists each method's endpoint, `None` when unset
/// (pinned by `a_router_tells_whether_it_routes_a_method`). An unexpected
/// form reads as "none", the safe side.
fn routes_a_method<S>(router: &MethodRouter<S>) -> bool {
    let shown = format!("{router:?}");
    [
        "get", "head", "delete", "options", "patch", "post", "put", "trace", "connect",
    ]
    .iter()
    .any(|method| {
        shown
            .split_once(&format!("{method}: "))
            .is_some_and(|(_, rest)| !rest.starts_with("None"))
    })
}

/// Middleware for the page and its assets, which take only their version
/// (`?v=`, see `web`).
pub async fn version_only(request: Request, next: Next) -> Response {
    match Params::parse(request.uri().query(), &["v"]) {
        Ok(_) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_tells_whether_it_routes_a_method() {
        async fn ok() {}
        assert!(routes_a_method::<()>(&axum::routing::get(ok)));
        assert!(routes_a_method::<()>(&axum::routing::delete(ok).put(ok)));
        assert!(!routes_a_method::<()>(&axum::routing::any(ok)));
        assert!(!routes_a_method::<()>(&MethodRouter::new()));
    }

    #[test]
    fn unknown_parameters_are_refused_by_name() {
        let e = Params::parse(Some("key=a&warehouse=north"), &["key", "where"]).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("`warehouse`"), "{e}");
        let e = Params::parse(Some("limit=2"), &[]).unwrap_err();
        assert!(
            e.to_string().contains("`limit`") && e.to_string().contains("none"),
            "{e}"
        );
        assert!(Params::parse(None, &[]).is_ok());
        assert!(Params::parse(Some(""), &[]).is_ok());
    }

    #[test]
    fn keys_repeat_and_where_is_decoded_once() {
        let p = Params::parse(
            Some("key=A-100&key=b%20c&where=%7B%22s%22%3A1%7D"),
            &["key", "where"],
        )
        .unwrap();
        assert_eq!(p.all("key"), ["A-100", "b c"]);
        assert_eq!(p.one("where").unwrap(), Some("{\"s\":1}"));
        assert!(!p.filter().unwrap().is_all());
        let twice = Params::parse(Some("where={}&where={}"), &["where"]).unwrap();
        assert!(twice.one("where").is_err());
    }
}
