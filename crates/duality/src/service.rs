//! The public API for serving your own views: a [`Service`] registers its
//! views and its routes; a [`Server`] gathers services and launches them.
//!
//! A service gets, for every view it registers and with no further code,
//! the snapshot and stream endpoints (docs/PROTOCOL.md), revisions, the outbox,
//! retention, SQLite and PostgreSQL, metrics, `/healthz` and OpenAPI
//! entries, and a panel on the page at `/` (a generic table of the view's
//! documents, or a richer one the service gives with [`Service::panel`]).
//! Its own routes are plain axum handlers over [`App`]: they parse, run a
//! [`Write`](crate::Write) or read a view, and shape the answer.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::MethodRouter;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use duality_core::View;

use crate::app::App;
use crate::error::LaunchError;
use crate::http::{Parts, query};
use crate::settings::Config;
use crate::telemetry::Metric;

// What a service hands the HTTP layer is defined there, below this module,
// so that `http` never reaches up into `service` (docs/ARCHITECTURE.md).
pub use crate::http::{Health, OpenApiPaths, Panel};

/// What a service's start hook is given.
#[derive(Clone)]
pub struct Context {
    /// The running core: writes, snapshots, read models.
    pub app: App,
    /// The engine's configuration the process runs with.
    pub config: Config,
    /// This process's own routes (every running service's views and
    /// routes, without tokens or other edge checks), to reach a service
    /// of this process without a socket.
    pub local: Router,
    /// The names of the services this process runs.
    pub running: Vec<&'static str>,
}

impl Context {
    /// Whether the service `name` runs in this process.
    pub fn runs(&self, name: &str) -> bool {
        self.running.contains(&name)
    }
}

/// What a start hook hands back: routes that need state made at start, and
/// a health reporter.
#[derive(Default)]
pub struct Started {
    /// Routes added to the service's own: a path (as
    /// [`axum::Router::route`] takes it) and its handlers.
    pub routes: Vec<(String, MethodRouter<App>)>,
    /// Reported in `/healthz`.
    pub health: Option<Arc<dyn Health>>,
}

type StartFn = Box<dyn FnOnce(Context) -> BoxFuture<'static, Result<Started, LaunchError>> + Send>;

/// One service: a name (what `--services` selects), its views, its routes.
///
/// ```
/// use duality::{Service, View, ViewSpec};
/// use axum::routing::get;
///
/// static NOTES: ViewSpec = ViewSpec::new("notes", "/notes", "/note-events");
/// const NOTES_VIEW: View = View::of(&NOTES);
///
/// let service = Service::new("notes")
///     .view(NOTES_VIEW)
///     .route("/notes/hello", get(|| async { "hello" }));
/// assert_eq!(service.name(), "notes");
/// ```
pub struct Service {
    name: &'static str,
    views: Vec<View>,
    routes: Router<App>,
    /// The path of every route, so that `/openapi.json` names each one
    /// (described by the service, or derived from the path).
    paths: Vec<String>,
    starts: Vec<StartFn>,
    openapi: Vec<OpenApiPaths>,
    metrics: Vec<Metric>,
    panels: Vec<Panel>,
    styles: Vec<&'static str>,
}

impl Service {
    /// A service named `name`, with no views and no routes yet.
    pub fn new(name: &'static str) -> Service {
        Service {
            name,
            views: Vec::new(),
            routes: Router::new(),
            paths: Vec::new(),
            starts: Vec::new(),
            openapi: Vec::new(),
            metrics: Vec::new(),
            panels: Vec::new(),
            styles: Vec::new(),
        }
    }

    /// Registers a view: its snapshot and stream are served with the
    /// service.
    pub fn view(mut self, view: View) -> Service {
        self.views.push(view);
        self
    }

    /// Adds a route, as [`axum::Router::route`] does. Describe it with
    /// [`Service::openapi`]; a route left undescribed still appears in
    /// `/openapi.json`, with what its path says.
    pub fn route(mut self, path: &str, method_router: MethodRouter<App>) -> Service {
        // Its handlers take no query parameter; a method it does not take
        // stays a 405.
        self.routes = self.routes.route(path, query::strict(method_router));
        self.paths.push(path.to_string());
        self
    }

    /// Runs `hook` when the process starts, after the store is open and
    /// before requests are served; what it returns is served too.
    pub fn on_start<F, Fut>(mut self, hook: F) -> Service
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Started, LaunchError>> + Send + 'static,
    {
        self.starts.push(Box::new(move |cx| Box::pin(hook(cx))));
        self
    }

    /// Documents the service's own routes in `/openapi.json`.
    pub fn openapi(
        mut self,
        paths: impl Fn(&mut Map<String, Value>) + Send + Sync + 'static,
    ) -> Service {
        self.openapi.push(Arc::new(paths));
        self
    }

    /// Lists the metrics the service records, with their kind and help
    /// text: described at start, so `/metrics` shows a `# HELP` line for
    /// each (check a crate's list with
    /// [`unlisted_metrics`](crate::telemetry::unlisted_metrics)).
    pub fn metrics(mut self, metrics: &[Metric]) -> Service {
        self.metrics.extend_from_slice(metrics);
        self
    }

    /// Gives `view` (one of this service's views) a richer panel on the
    /// page at `/` than the generic table of its documents. The engine
    /// serves `script` under `/assets/panels/`, versioned and cached like
    /// its own files, and the page loads it (the page's Content Security
    /// Policy runs no inline code) before it draws any panel. The script
    /// registers the panel with `duality.panel({title, note, span, mount})`
    /// (the engine's `app.js` documents it): `mount(panel, view)` fills the
    /// panel under its header and returns `render(model, changed)`, called
    /// with the whole view after every snapshot and patch. The page keeps
    /// the stream, the revision and the connection state. One script may
    /// serve several views (it is loaded once, for all of them). Put every
    /// text in the page with `textContent` or text nodes, never as HTML
    /// (check a script with [`writes_html`](crate::http::web::writes_html)).
    pub fn panel(mut self, view: View, script: &'static str) -> Service {
        self.panels.push(Panel { view, script });
        self
    }

    /// A style sheet the page at `/` loads with the service's panels (after
    /// the engine's own, which its classes may use: `grid`, `num`, `muted`,
    /// `empty`, `track` and `fill`, `pill`, `flash`, buttons).
    pub fn panel_style(mut self, css: &'static str) -> Service {
        self.styles.push(css);
        self
    }

    /// The service's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The views the service registers.
    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// The panels the service gives its views.
    pub fn panels(&self) -> &[Panel] {
        &self.panels
    }

    /// The style sheets of the service's panels.
    pub fn panel_styles(&self) -> &[&'static str] {
        &self.styles
    }
}

/// The services one process runs; [`Server::launch`] serves them all.
///
/// ```no_run
/// # async fn run(listener: tokio::net::TcpListener) -> Result<(), duality::LaunchError> {
/// use duality::{Config, Server, Service};
///
/// Server::new()
///     .service(Service::new("empty"))
///     .launch(Config::ephemeral(), listener, std::future::pending())
///     .await
/// # }
/// ```
#[derive(Default)]
pub struct Server {
    pub(crate) services: Vec<Service>,
    pub(crate) starts: Vec<StartFn>,
}

impl Server {
    /// A server with no services.
    pub fn new() -> Server {
        Server::default()
    }

    /// Adds a service.
    pub fn service(mut self, service: Service) -> Server {
        self.services.push(service);
        self
    }

    /// Runs `hook` at start, before the services' own hooks (for work that
    /// spans services, such as loading sample data).
    pub fn on_start<F, Fut>(mut self, hook: F) -> Server
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), LaunchError>> + Send + 'static,
    {
        self.starts.push(Box::new(move |cx| {
            Box::pin(async move {
                hook(cx).await?;
                Ok(Started::default())
            })
        }));
        self
    }

    /// The names of the services added so far.
    pub fn names(&self) -> Vec<&'static str> {
        self.services.iter().map(|s| s.name).collect()
    }
}

impl Server {
    /// Every metric the services list.
    pub(crate) fn metrics(&self) -> Vec<Metric> {
        self.services
            .iter()
            .flat_map(|s| s.metrics.clone())
            .collect()
    }

    /// Every view of the services.
    pub(crate) fn views(&self) -> Vec<View> {
        self.services.iter().flat_map(|s| s.views.clone()).collect()
    }

    /// The views, routes and documentation known before start.
    pub(crate) fn parts(&self) -> Parts {
        Parts {
            views: self.views(),
            routes: self.services.iter().map(|s| s.routes.clone()).collect(),
            paths: self
                .services
                .iter()
                .flat_map(|s| s.paths.iter().map(|p| (s.name, p.clone())))
                .collect(),
            openapi: self
                .services
                .iter()
                .flat_map(|s| s.openapi.clone())
                .collect(),
            health: Vec::new(),
            panels: self
                .services
                .iter()
                .flat_map(|s| s.panels.clone())
                .collect(),
            styles: self
                .services
                .iter()
                .flat_map(|s| s.styles.clone())
                .collect(),
        }
    }

    /// Runs the start hooks (the server's, then each service's) and adds
    /// what they return to `parts`.
    pub(crate) async fn start(self, cx: Context, parts: &mut Parts) -> Result<(), LaunchError> {
        let mut hooks: Vec<(&'static str, StartFn)> = Vec::new();
        for hook in self.starts {
            hooks.push(("server", hook));
        }
        for service in self.services {
            for hook in service.starts {
                hooks.push((service.name, hook));
            }
        }
        for (name, hook) in hooks {
            let started = hook(cx.clone()).await?;
            let mut routes = Router::new();
            for (path, method_router) in started.routes {
                routes = routes.route(&path, query::strict(method_router));
                parts.paths.push((name, path));
            }
            parts.routes.push(routes);
            parts.health.extend(started.health);
        }
        Ok(())
    }
}
