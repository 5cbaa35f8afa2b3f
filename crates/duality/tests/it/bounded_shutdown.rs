//! Bounded shutdown (docs/PROTOCOL.md, "Security model"): `launch` returns
//! within `--shutdown-grace` of its shutdown signal even while a consumer
//! that stopped reading holds a stream whose socket buffers are full.

use std::time::{Duration, Instant};

use crate::common::spawn;
use duality::Config;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

#[tokio::test]
async fn a_consumer_that_stops_reading_does_not_hold_shutdown_past_the_grace() {
    let grace = Duration::from_secs(1);
    let server = spawn(Config {
        shutdown_grace: grace,
        ..Config::ephemeral()
    })
    .await;
    // Enough history that the stream cannot fit in the socket buffers of a
    // consumer that reads nothing.
    // (Loopback sockets buffer several MiB, so: 160 events of 64 KiB.)
    let text = "n".repeat(64 * 1024);
    let writes = futures_util::stream::iter(0..160)
        .map(|i| {
            let (server, text) = (&server, &text);
            async move {
                server
                    .put(&format!("/notes/big{i}"), json!({"text": text}))
                    .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(writes.iter().all(|r| r.status() == 200));

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /note-events?revision=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // A stream that is being served but never read from.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics
            .lines()
            .any(|l| l.starts_with("duality_subscribers{") && !l.ends_with(" 0"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the stream never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let asked = Instant::now();
    server.stop().await.unwrap();
    let took = asked.elapsed();
    assert!(
        took < grace + Duration::from_secs(5),
        "launch returned {took:?} after the shutdown signal"
    );
    drop(stalled);
}
