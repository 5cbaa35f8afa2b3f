//! Starts the stock service on 127.0.0.1:0, writes through HTTP, and
//! checks that each view's change stream folds into its snapshot.

use std::time::Duration;

use duality::Config;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

struct Running {
    base: String,
    http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        duality_stock::server().launch(Config::ephemeral(), listener, async {
            let _ = stopped.await;
        }),
    );
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running { base, http, stop }
}

impl Running {
    async fn put(&self, path: &str, body: Value) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.http.put(url).json(&body).send().await.unwrap()
    }

    async fn snapshot(&self, path: &str) -> (Value, u64) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let revision = response.headers()["x-revision"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        (response.json().await.unwrap(), revision)
    }

    /// Reads the stream from revision 1 and folds its first `count` patches.
    async fn fold(&self, stream: &str, count: usize) -> Value {
        let url = format!("{}{stream}?revision=1", self.base);
        let response = self.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let mut events = response.bytes_stream().eventsource();
        let mut view = json!({});
        for expected in 1..=count as u64 {
            let next = tokio::time::timeout(Duration::from_secs(10), events.next());
            let event = next.await.unwrap().unwrap().unwrap();
            assert_eq!(event.id, expected.to_string(), "revisions are gapless");
            let patch: Value = serde_json::from_str(&event.data).unwrap();
            json_patch::merge(&mut view, &patch);
        }
        view
    }
}

#[tokio::test]
async fn the_streams_of_products_stock_and_totals_fold_into_their_snapshots() {
    let s = start().await;
    assert_eq!(
        s.put("/products/p1", json!({"name": "Bolt"}))
            .await
            .status(),
        200
    );
    assert_eq!(
        s.put("/products/p2", json!({"name": "Nut"})).await.status(),
        200
    );
    for (path, quantity) in [
        ("/stock/p1/north", 5),
        ("/stock/p1/south", 3),
        ("/stock/p2/north", 7),
        ("/stock/p1/north", 1),
        ("/stock/p2/north", 0),
    ] {
        let answer = s.put(path, json!({"quantity": quantity})).await;
        assert_eq!(answer.status(), 200, "{path}");
    }
    let (totals, revision) = s.snapshot("/totals").await;
    assert_eq!(totals, json!({"p1": {"total": 4}}));
    assert_eq!(s.fold("/total-events", revision as usize).await, totals);
    let (stock, revision) = s.snapshot("/stock").await;
    assert_eq!(
        stock,
        json!({"p1/north": {"quantity": 1}, "p1/south": {"quantity": 3}})
    );
    assert_eq!(s.fold("/stock-events", revision as usize).await, stock);
    let (products, revision) = s.snapshot("/products").await;
    assert_eq!(revision, 2);
    assert_eq!(s.fold("/product-events", 2).await, products);
    let _ = s.stop.send(());
}

#[tokio::test]
async fn stock_of_an_unknown_product_is_a_404_and_changes_nothing() {
    let s = start().await;
    let answer = s.put("/stock/ghost/north", json!({"quantity": 1})).await;
    assert_eq!(answer.status(), 404);
    let body: Value = answer.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("ghost"), "{body}");
    let bad = s.put("/products/a%20b", json!({"name": "x"})).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(s.snapshot("/stock").await, (json!({}), 0));
    assert_eq!(s.snapshot("/totals").await, (json!({}), 0));
    assert_eq!(s.snapshot("/products").await, (json!({}), 0));
    let _ = s.stop.send(());
}
