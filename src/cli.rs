//! The `duality` command: parses the command line and runs a subcommand.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use duality::settings::{is_requested_output, one_line};
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
    pub serve: Serve,
}

/// The subcommands of `duality`.
// Parsed once per process: the size of `Serve` costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the views (the default command).
    Serve(Serve),
    /// Measure this binary: start `duality serve` as a child process on
    /// 127.0.0.1 and load it (durable writes/s, fan-out latency, memory per
    /// idle subscriber).
    Bench(duality_bench::BenchArgs),
    /// Print a view and keep it current: `duality watch http://127.0.0.1:3000/persons`.
    Watch(crate::watch::WatchArgs),
}

/// What `serve` is given: a configuration file and the settings.
#[derive(Debug, Args)]
pub struct Serve {
    /// A TOML configuration file: every setting below by its flag's name
    /// (`listen = "0.0.0.0:3000"`, `cors_origin = ["https://…"]`), the
    /// collections (`[collections.NAME]`, `schema = "file.json"` relative to
    /// the file) and derived views (`[derived.NAME]`). A flag or an
    /// environment variable overrides the file's value for that setting;
    /// `--collection`s are added to the file's, and win over one of the
    /// same name.
    #[arg(long, env = "DUALITY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The settings.
    #[command(flatten)]
    pub settings: Settings,
}

/// Why the command line was not parsed: clap's error (which may be the
/// help or version text asked for), or a refused configuration file.
#[derive(Debug)]
pub enum Refused {
    /// Clap's error, help and version included.
    Clap(clap::Error),
    /// The configuration file, as one line.
    Config(String),
}

/// The command line as given, then, with a configuration file, once more
/// with the flags the file adds (see `duality_services::config_file`).
pub fn parse(args: Vec<OsString>) -> Result<Cli, Refused> {
    let matches = Cli::command()
        .try_get_matches_from(&args)
        .map_err(Refused::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(Refused::Clap)?;
    let (serve, serve_matches) = match (&cli.command, matches.subcommand_matches("serve")) {
        (None, _) => (&cli.serve, &matches),
        (Some(Command::Serve(serve)), Some(sub)) => (serve, sub),
        _ => return Ok(cli),
    };
    let Some(path) = serve.config.clone() else {
        return Ok(cli);
    };
    let given = |id: &str| given(serve_matches, id);
    let from_file =
        duality_services::config_file::read(&path, &given, &serve.settings.builtin.collections)
            .map_err(|line| Refused::Config(format!("error: {line}")))?;
    let mut args = args;
    args.extend(from_file.flags);
    let mut cli = Cli::try_parse_from(&args).map_err(Refused::Clap)?;
    let serve = match &mut cli.command {
        None => &mut cli.serve,
        Some(Command::Serve(serve)) => serve,
        Some(_) => return Ok(cli),
    };
    serve
        .settings
        .builtin
        .collections
        .extend(from_file.collections);
    serve.settings.builtin.derived = from_file.derived;
    Ok(cli)
}

/// Whether the command line or the environment gave the flag `id` (not its
/// default): such a setting is not the file's.
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// Entry point of the binary: parses the command line (`serve` when no
/// subcommand is given) and runs it.
pub fn main() -> ExitCode {
    let cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(Refused::Clap(e)) if is_requested_output(&e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(Refused::Clap(e)) => {
            eprintln!("{}", one_line(&e));
            return ExitCode::from(2);
        }
        Err(Refused::Config(line)) => {
            eprintln!("{line}");
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
        None => runtime.block_on(serve(cli.serve.settings)),
        Some(Command::Serve(serve_args)) => runtime.block_on(serve(serve_args.settings)),
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
        let engine = &cli.serve.settings.engine;
        assert_eq!(engine.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(
            engine.db,
            Database::Sqlite(Location::File("duality.db".into()))
        );
        assert_eq!(engine.retention, Duration::from_secs(3600));
        assert_eq!(engine.shutdown_grace, Duration::from_secs(10));
        assert!(engine.write_token.is_empty() && !engine.open_writes);
        assert!(cli.serve.settings.builtin.services.is_none());
        assert!(cli.serve.config.is_none());
    }
}
