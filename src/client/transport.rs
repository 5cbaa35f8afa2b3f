//! How a client reaches a server: over HTTP, or straight through an
//! in-process router (the default one-process deployment, where service
//! chaining needs no sockets). Both answer status, headers and a body
//! stream, so the follower does not care which it has.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use tower::ServiceExt;

/// A response as the client sees it.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: BoxStream<'static, Result<Bytes, String>>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads the whole body (at most `limit` bytes).
    pub async fn bytes(mut self, limit: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while let Some(chunk) = self.body.next().await {
            out.extend_from_slice(&chunk?);
            if out.len() > limit {
                return Err(format!("body larger than {limit} bytes"));
            }
        }
        Ok(out)
    }
}

pub trait Transport: Send + Sync + 'static {
    /// `GET path` (path and query) with extra request headers.
    fn get<'a>(
        &'a self,
        path: &'a str,
        headers: &'a [(&'a str, String)],
    ) -> BoxFuture<'a, Result<Reply, String>>;

    /// Where this transport goes, for logs and health reports.
    fn describe(&self) -> String;
}

/// Plain HTTP to a base URL such as `http://127.0.0.1:3001`.
pub struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    pub fn new(base: &str) -> Result<Self, String> {
        Http::with_token(base, None)
    }

    /// As [`Http::new`], sending `Authorization: Bearer <token>` with
    /// every request when a token is given (for a server with
    /// `--read-token`).
    pub fn with_token(base: &str, token: Option<&str>) -> Result<Self, String> {
        let base = base.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|e| format!("invalid URL `{base}`: {e}"))?;
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "the token must be visible ASCII".to_string())?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .default_headers(headers)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Http { client, base })
    }
}

impl Transport for Http {
    fn get<'a>(
        &'a self,
        path: &'a str,
        headers: &'a [(&'a str, String)],
    ) -> BoxFuture<'a, Result<Reply, String>> {
        Box::pin(async move {
            let mut request = self.client.get(format!("{}{}", self.base, path));
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            Ok(Reply {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response.bytes_stream().map_err(|e| e.to_string()).boxed(),
            })
        })
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}

/// Requests served by a router in this process.
#[derive(Clone)]
pub struct InProcess {
    router: axum::Router,
}

impl InProcess {
    pub fn new(router: axum::Router) -> Arc<Self> {
        Arc::new(InProcess { router })
    }
}

impl Transport for InProcess {
    fn get<'a>(
        &'a self,
        path: &'a str,
        headers: &'a [(&'a str, String)],
    ) -> BoxFuture<'a, Result<Reply, String>> {
        Box::pin(async move {
            let mut request = Request::get(path);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let request = request.body(Body::empty()).map_err(|e| e.to_string())?;
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .map_err(|e| e.to_string())?;
            let (parts, body) = response.into_parts();
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.into_data_stream().map_err(|e| e.to_string()).boxed(),
            })
        })
    }

    fn describe(&self) -> String {
        "in-process".into()
    }
}
