//! The in-process transport: a follower's requests served by a router in
//! this process (the default one-process deployment, where service chaining
//! needs no sockets). Server-side, so the client crate stays free of axum.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use duality_client::{Error, Reply, Transport};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use tower::ServiceExt;

/// Requests served by a router in this process.
#[derive(Clone)]
pub struct InProcess {
    router: axum::Router,
}

impl InProcess {
    /// A transport that calls `router` directly.
    pub fn new(router: axum::Router) -> Arc<Self> {
        Arc::new(InProcess { router })
    }
}

impl Transport for InProcess {
    fn get<'a>(
        &'a self,
        path: &'a str,
        headers: &'a [(&'a str, String)],
    ) -> BoxFuture<'a, Result<Reply, Error>> {
        Box::pin(async move {
            let mut request = Request::get(path);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            // Only a bad path or header fails here.
            let request = request.body(Body::empty()).map_err(|e| Error::Url {
                url: path.to_string(),
                reason: e.to_string(),
            })?;
            let Ok(response) = self.router.clone().oneshot(request).await;
            let (parts, body) = response.into_parts();
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body
                    .into_data_stream()
                    .map_err(|e| Error::transport(&e))
                    .boxed(),
            })
        })
    }

    fn describe(&self) -> String {
        "in-process".into()
    }
}
