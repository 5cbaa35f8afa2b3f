//! Connection limits (docs/PROTOCOL.md, "Security model"): a header-read
//! timeout closes stalled connections, `--max-connections` answers `503`
//! past the cap, so a flood of half-sent requests cannot stop the server
//! from answering others.

use std::time::{Duration, Instant};

use crate::common::spawn;
use duality::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection that sends half a request header and stalls.
async fn half_open(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: slow")
        .await
        .unwrap();
    stream
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(mut stream: TcpStream, wait: Duration) -> String {
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&seen).into_owned()
}

/// `GET /healthz` until it answers 200 (a 503 means "full, retry").
async fn answered(client: &reqwest::Client, url: &str, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status() == 200 {
                return;
            }
            assert_eq!(r.status(), 503, "only 200 or 503 expected");
        }
        assert!(Instant::now() < deadline, "no answer within {wait:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn past_max_connections_a_new_connection_gets_a_503_json_answer() {
    let server = spawn(Config {
        max_connections: Some(2),
        header_timeout: Duration::from_secs(60),
        ..Config::ephemeral()
    })
    .await;
    let client = reqwest::Client::new();
    let url = server.url("/healthz");

    // Keep-alive connections that were answered hold the slots; the
    // first connection past the cap is answered 503 and closed.
    let mut held = Vec::new();
    let answer = loop {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut first))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&first[..n]).into_owned();
        if text.starts_with("HTTP/1.1 200") {
            held.push(stream);
            assert!(held.len() <= 2, "more connections served than the cap");
            continue;
        }
        break text + &until_closed(stream, Duration::from_secs(5)).await;
    };
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/json")
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many connections")
    );
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 503, "a client's request past the cap");
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());

    // Once those connections go away, the slots are free again.
    drop(held);
    answered(&client, &url, Duration::from_secs(10)).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn hundreds_of_half_open_connections_are_closed_and_a_normal_client_still_gets_answers() {
    duality::net::fds::raise_limit();
    let server = spawn(Config {
        max_connections: Some(50),
        header_timeout: Duration::from_secs(1),
        ..Config::ephemeral()
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(half_open(server.addr).await);
    }
    // A normal client gets through while the flood is still connected:
    // the stalled ones are closed after the header timeout.
    let client = reqwest::Client::new();
    answered(&client, &server.url("/healthz"), Duration::from_secs(15)).await;
    let r = client.get(server.url("/notes")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Every flooding connection was closed by the server: the first ones
    // without an answer after the header timeout, the rest with a 503.
    let closed = futures_util::future::join_all(
        flood
            .into_iter()
            .map(|s| until_closed(s, Duration::from_secs(15))),
    )
    .await;
    let refused = closed
        .iter()
        .filter(|s| s.starts_with("HTTP/1.1 503"))
        .count();
    assert!(refused >= 250, "{refused} of 300 refused");
    server.stop().await.unwrap();
}
