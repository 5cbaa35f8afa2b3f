//! The accept loop. Each connection is served by hyper's HTTP/1 engine
//! over one shared service (the router is reference-counted, so no
//! connection copies the route table), with these bounds:
//!
//! - a connection that has not sent a whole request header within
//!   [`Limits::header_timeout`] is closed; hyper restarts that timer
//!   whenever a keep-alive connection waits for its next request, so it
//!   also closes idle keep-alive connections;
//! - at most [`Limits::max_connections`] are served at once; a connection
//!   past the cap is answered `503` with a JSON body and closed, so a flood
//!   of stalled connections cannot exhaust the descriptors the server
//!   needs to accept anyone;
//! - when `shutdown` completes the listener closes, connections finish
//!   their current exchange, and whatever is still open after
//!   [`Limits::grace`] (a consumer that stopped reading its stream) is
//!   closed, so `serve` returns in bounded time.

use std::future::Future;
use std::io;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// The bounds on connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: u64,
    /// Time a connection has to send a request header (also the idle
    /// keep-alive time between requests).
    pub header_timeout: Duration,
    /// Time connections get to end after shutdown begins.
    pub grace: Duration,
}

/// Refused connections that are given a moment to read the `503` before
/// they close; past this many at once a refused connection closes at once.
const LINGERING_REFUSALS: usize = 256;

/// How long a refused connection lingers (reading and dropping what the
/// client sends) so that closing it does not reset the `503` away.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The whole answer to a connection past the cap.
static REFUSAL: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let body = r#"{"error":"too many connections; try again shortly"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Serves `router` on `listener` within `limits` until `shutdown`
/// completes and the connections have ended (or the grace is over).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(
        usize::try_from(limits.max_connections).unwrap_or(Semaphore::MAX_PERMITS),
    ));
    let lingering = Arc::new(Semaphore::new(LINGERING_REFUSALS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let http = Arc::new(http);
    let service = TowerToHyperService::new(router);
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) if is_per_connection(&e) => continue,
                    Err(e) => {
                        // Out of descriptors or memory: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let connection = serve_connection(
                            stream,
                            Arc::clone(&http),
                            service.clone(),
                            draining.clone(),
                            slot,
                        );
                        connections.spawn(connection);
                    }
                    Err(_) => refuse(stream, &lingering),
                }
            }
        }
    }
    drop(listener);
    let _ = drain.send(true);
    let ended = tokio::time::timeout(limits.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if ended.is_err() {
        tracing::warn!(
            open = connections.len(),
            grace = ?limits.grace,
            "closing the connections still open after the shutdown grace"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Errors that concern only the connection being accepted.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

async fn serve_connection(
    stream: TcpStream,
    http: Arc<http1::Builder>,
    service: TowerToHyperService<Router>,
    mut draining: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    let open = metrics::gauge!("duality_connections");
    open.increment(1.0);
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let finished = tokio::select! {
        result = connection.as_mut() => Some(result),
        draining = draining.wait_for(|d| *d) => {
            drop(draining);
            None
        }
    };
    let result = match finished {
        Some(result) => result,
        None => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
    open.decrement(1.0);
    drop(slot);
}

/// Answers `503` to a connection past the cap and closes it. The answer
/// waits for the request head (up to [`REFUSAL_LINGER`]), because some
/// clients drop an answer that arrives before they sent their request;
/// then what the client still sends is read and dropped for a moment, so
/// that closing does not reset the answer away. Past
/// [`LINGERING_REFUSALS`] at once, the answer is sent at once instead.
fn refuse(stream: TcpStream, lingering: &Arc<Semaphore>) {
    metrics::counter!("duality_connections_refused_total").increment(1);
    let Ok(permit) = Arc::clone(lingering).try_acquire_owned() else {
        // It fits an empty socket buffer: one non-blocking write sends it.
        let _ = stream.try_write(&REFUSAL);
        return;
    };
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_LINGER, read_head(&mut stream)).await;
        let _ = tokio::time::timeout(REFUSAL_LINGER, stream.write_all(&REFUSAL)).await;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        drop(permit);
    });
}

/// Reads until the end of a request head (a blank line), the end of the
/// stream, or 16 KiB.
async fn read_head(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let mut last = [0u8; 3];
    let mut total = 0;
    while total < 16 * 1024 {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        total += n;
        let mut window = last.to_vec();
        window.extend_from_slice(&buf[..n]);
        if window.windows(4).any(|w| w == b"\r\n\r\n") {
            return;
        }
        let keep = window.len() - 3;
        last.copy_from_slice(&window[keep..]);
    }
}
