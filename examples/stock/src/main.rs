//! `duality-stock`: the stock service, with `duality serve`'s flags.

use duality::settings::Settings;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_command_line();
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    duality_stock::server()
        .launch(settings, listener, shutdown)
        .await?;
    Ok(())
}
