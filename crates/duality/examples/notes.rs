use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::put;
use duality::{ApiJson, App, Config, Error, Server, Service, View, ViewSpec, Write, written};
use serde_json::{Value, json};

static NOTES_SPEC: ViewSpec = ViewSpec::new("notes", "/notes", "/note-events");
const NOTES: View = View::of(&NOTES_SPEC);

/// A write: a pure function of the current state, run in one transaction.
fn save(key: String, text: String) -> Write {
    Write::new(&[NOTES], move |draft| {
        draft.put(NOTES, key.clone(), json!({ "text": text }))?;
        Ok(Value::Null)
    })
}

async fn put_note(
    State(app): State<App>,
    Path(key): Path<String>,
    ApiJson(text): ApiJson<String>,
) -> Result<Response, Error> {
    let done = app.write(save(key, text)).await?;
    Ok(written(StatusCode::NO_CONTENT, done, NOTES))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_command_line();
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let notes = Service::new("notes")
        .view(NOTES)
        .route("/notes/{key}", put(put_note));
    // GET /notes, GET /note-events, PUT /notes/{key}, /healthz, /metrics,
    // /openapi.json and the live page at / until Ctrl-C.
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    Server::new()
        .service(notes)
        .launch(config, listener, shutdown)
        .await?;
    Ok(())
}
