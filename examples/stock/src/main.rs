//! `duality-stock`: the stock service, with the engine's flags (and only
//! those: `duality-stock --help`).

use std::process::ExitCode;

use duality::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::from_command_line();
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match duality_stock::server()
        .launch(config, listener, shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
