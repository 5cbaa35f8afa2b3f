//! docs/PROTOCOL.md: every snapshot names its stream in a `Link` header
//! (`<stream path>; rel="duality-stream"`), so a consumer never guesses
//! the stream's path from the snapshot's.

use crate::common::{header, spawn_default};
use reqwest::StatusCode;

/// The test service's views: (snapshot, the link it must answer).
const VIEWS: [(&str, &str); 2] = [
    ("/notes", r#"</note-events>; rel="duality-stream""#),
    ("/tags", r#"</tag-events>; rel="duality-stream""#),
];

#[tokio::test]
async fn every_snapshot_links_its_stream_on_get_head_and_304() {
    let server = spawn_default().await;
    server.note("a", "Ay", Some("rome")).await;
    for (path, link) in VIEWS {
        let get = server.get(path).await;
        assert_eq!(get.status(), 200, "GET {path}");
        assert_eq!(header(&get, "link"), link, "GET {path}");
        let etag = header(&get, "etag");

        let head = server.client.head(server.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(header(&head, "link"), link, "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");

        let unchanged = server
            .client
            .get(server.url(path))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(header(&unchanged, "link"), link, "304 {path}");

        let gzipped = server
            .client
            .get(server.url(path))
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(header(&gzipped, "content-encoding"), "gzip");
        assert_eq!(header(&gzipped, "link"), link, "gzip {path}");
    }
}

#[tokio::test]
async fn the_linked_stream_is_the_snapshots_own() {
    let server = spawn_default().await;
    server.note("a", "Ay", Some("rome")).await;
    for (path, _) in VIEWS {
        let snapshot = server.get(path).await;
        let link = header(&snapshot, "link");
        let stream = link
            .strip_prefix('<')
            .and_then(|rest| rest.split_once('>'))
            .map(|(target, _)| target.to_string())
            .unwrap_or_else(|| panic!("not a link: {link}"));
        let view: serde_json::Value = snapshot.json().await.unwrap();
        // Its snapshot event is the same document.
        let mut events = server
            .subscribe(&format!("{stream}?snapshot=true"), &[])
            .await;
        let first = events.next().await.unwrap();
        assert_eq!(first.event, "snapshot", "{stream}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&first.data).unwrap(),
            view,
            "{stream}"
        );
    }
}
