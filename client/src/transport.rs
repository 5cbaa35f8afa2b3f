//! How a client reaches a server. [`Http`] goes over the network; anything
//! else that can answer a `GET` with status, headers and a body stream (the
//! server's own in-process router, a test double) implements [`Transport`]
//! too, so the follower does not care which it has. Transports fail with
//! the crate's [`Error`], so a follower can tell a broken connection from
//! a refused token whatever it goes through.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
pub use reqwest::header::HeaderMap;

use crate::error::{BODY_EXCERPT, Error, with_causes};

/// How long [`Reply::into_error`] waits for the body of an unexpected
/// answer: the status decides, the body only adds the server's reason, so
/// a body that does not end (a stream answered with an error status) must
/// not hold the caller up.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(1);

/// A response as the client sees it.
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as it arrives; an error ends it.
    pub body: BoxStream<'static, Result<Bytes, Error>>,
}

impl Reply {
    /// The value of header `name`, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads the whole body (at most `limit` bytes, else
    /// [`Error::TooLarge`]).
    pub async fn bytes(mut self, limit: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        while let Some(chunk) = self.body.next().await {
            out.extend_from_slice(&chunk?);
            if out.len() > limit {
                return Err(Error::TooLarge { limit });
            }
        }
        Ok(out)
    }

    /// The error for this answer to `GET path` when its status is not the
    /// one asked for ([`Error::from_status`]), with the start of its body,
    /// which holds the server's reason: at most [`BODY_EXCERPT`] bytes,
    /// as much as arrives before the body ends or fails or a second
    /// passes.
    pub async fn into_error(mut self, path: &str) -> Error {
        let wanted = self
            .header("content-length")
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(BODY_EXCERPT, |n| n.min(BODY_EXCERPT));
        let mut start = Vec::new();
        let read = async {
            while start.len() < wanted {
                match self.body.next().await {
                    Some(Ok(chunk)) => start.extend_from_slice(&chunk),
                    Some(Err(_)) | None => break,
                }
            }
        };
        // Whatever arrived in time is enough.
        let _ = tokio::time::timeout(ERROR_BODY_WAIT, read).await;
        start.truncate(BODY_EXCERPT);
        let body = String::from_utf8_lossy(&start).into_owned();
        Error::from_status(path, self.status, body)
    }
}

/// Something that answers `GET` requests from a duality server.
pub trait Transport: Send + Sync + 'static {
    /// `GET path` (path and query) with extra request headers.
    fn get<'a>(
        &'a self,
        path: &'a str,
        headers: &'a [(&'a str, String)],
    ) -> BoxFuture<'a, Result<Reply, Error>>;

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
    pub fn new(base: &str) -> Result<Self, Error> {
        Http::with_token(base, None)
    }

    /// As [`Http::new`], sending `Authorization: Bearer <token>` with
    /// every request when a token is given (for a server with
    /// `--read-token`).
    pub fn with_token(base: &str, token: Option<&str>) -> Result<Self, Error> {
        let base = base.trim_end_matches('/').to_string();
        if let Err(e) = reqwest::Url::parse(&base) {
            return Err(Error::Url {
                url: base,
                reason: e.to_string(),
            });
        }
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| Error::Token)?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .default_headers(headers)
            .build()
            .map_err(|e| Error::Client(with_causes(&e)))?;
        Ok(Http { client, base })
    }
}

impl Transport for Http {
    fn get<'a>(
        &'a self,
        path: &'a str,
        headers: &'a [(&'a str, String)],
    ) -> BoxFuture<'a, Result<Reply, Error>> {
        Box::pin(async move {
            let url = format!("{}{}", self.base, path);
            let mut request = self.client.get(&url);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = request.send().await.map_err(|e| {
                // A request that could not even be built (a bad path or
                // header) will not succeed on a retry.
                if e.is_builder() {
                    Error::Url {
                        url,
                        reason: with_causes(&e),
                    }
                } else {
                    Error::transport(&e)
                }
            })?;
            Ok(Reply {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response
                    .bytes_stream()
                    .map_err(|e| Error::transport(&e))
                    .boxed(),
            })
        })
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &'static str, ends: bool) -> Reply {
        let first = futures_util::stream::iter([Ok(Bytes::from_static(body.as_bytes()))]);
        let body = if ends {
            first.boxed()
        } else {
            first.chain(futures_util::stream::pending()).boxed()
        };
        Reply {
            status,
            headers: HeaderMap::new(),
            body,
        }
    }

    #[tokio::test]
    async fn an_unexpected_answer_becomes_its_error_with_the_servers_reason() {
        let refused = reply(401, r#"{"error": "a read token is required"}"#, true);
        match refused.into_error("/persons").await {
            Error::Unauthorized { path, status, body } => {
                assert_eq!((path.as_str(), status), ("/persons", 401));
                assert!(body.contains("a read token is required"));
            }
            other => panic!("{other:?}"),
        }
        // An error body that never ends does not hold the caller up.
        let started = std::time::Instant::now();
        let gone = reply(410, "{}", false).into_error("/person-events").await;
        assert!(matches!(gone, Error::Gone { .. }), "{gone:?}");
        assert!(started.elapsed() < ERROR_BODY_WAIT * 3);
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_too_large() {
        let body = reply(200, "0123456789", true).bytes(4).await;
        assert_eq!(body, Err(Error::TooLarge { limit: 4 }));
    }
}
