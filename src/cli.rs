//! The `duality` command: parses the command line and runs a subcommand.

use std::process::ExitCode;

use clap::Parser;
use duality::settings::{is_requested_output, one_line};

use clap::Subcommand;
use duality_services::Settings;

/// The `duality` command line: a subcommand, or the settings of `serve`.
#[derive(Debug, Parser)]
#[command(
    name = "duality",
    version,
    about = "Every view served twice: as an aggregate and as a change stream.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The subcommand, if one was given.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `duality` alone is `duality serve`.
    #[command(flatten)]
    pub serve: Settings,
}

/// The subcommands of `duality`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the views (the default command).
    Serve(Settings),
    /// Measure this binary: start `duality serve` as a child process on
    /// 127.0.0.1 and load it (durable writes/s, fan-out latency, memory per
    /// idle subscriber).
    Bench(duality_bench::BenchArgs),
    /// Print a view and keep it current: `duality watch http://127.0.0.1:3000/persons`.
    Watch(crate::watch::WatchArgs),
}

/// Entry point of the binary: parses the command line (`serve` when no
/// subcommand is given) and runs it.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if is_requested_output(&e) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("{}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    duality::telemetry::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        None => runtime.block_on(serve(cli.serve)),
        Some(Command::Serve(settings)) => runtime.block_on(serve(settings)),
        Some(Command::Bench(args)) => runtime.block_on(duality_bench::run(args)),
        Some(Command::Watch(args)) => runtime.block_on(crate::watch::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    // Every connection is a file descriptor: allow as many as permitted.
    duality::net::fds::raise_limit();
    // Before anything is opened or bound, as a flag's own value is.
    settings.engine.check()?;
    let server = duality_services::builtin(&settings.builtin).map_err(|e| e.to_string())?;
    let listen = settings.engine.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    server
        .launch(settings.engine, listener, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use duality::settings::Database;
    use duality::store::sqlite::Location;

    use super::*;

    #[test]
    fn bare_duality_means_serve_with_defaults() {
        let cli = Cli::try_parse_from(["duality"]).unwrap();
        assert!(cli.command.is_none());
        let engine = &cli.serve.engine;
        assert_eq!(engine.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(
            engine.db,
            Database::Sqlite(Location::File("duality.db".into()))
        );
        assert_eq!(engine.retention, Duration::from_secs(3600));
        assert_eq!(engine.shutdown_grace, Duration::from_secs(10));
        assert!(engine.write_token.is_empty() && !engine.open_writes);
        assert!(cli.serve.builtin.services.names().is_none());
    }
}
