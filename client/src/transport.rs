//! How a client reaches a server. [`Http`] goes over the network; anything
//! else that can answer a `GET` with status, headers and a body stream (the
//! server's own in-process router, a test double) implements [`Transport`]
//! too, so the follower does not care which it has.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
pub use reqwest::header::HeaderMap;

/// A response as the client sees it.
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as it arrives; an error ends it.
    pub body: BoxStream<'static, Result<Bytes, String>>,
}

impl Reply {
    /// The value of header `name`, if present and visible ASCII.
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

/// Something that answers `GET` requests from a duality server.
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
    /// A transport to `base` (scheme, host and port, no path needed).
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
