//! The engine's typed configuration: its flags and environment variables
//! (README, "Configuration").
//!
//! [`Config`] is a clap `Args` struct, so a binary flattens it into its own
//! command next to its services' settings; every value is parsed and
//! checked here, so an invalid flag is refused at start with a one-line
//! error, before anything is opened. It names no service: the built-in
//! services' flags live with them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser};

use crate::store::Location;

/// What the engine needs to know to serve: where, from which database, and
/// its limits, tokens and CORS origins.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to serve on: `HOST:PORT` (a host name is resolved at start)
    /// or a bare `PORT`, meaning 127.0.0.1:PORT.
    #[arg(long, env = "DUALITY_LISTEN", default_value = "127.0.0.1:3000", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// A SQLite file path, `:memory:`, or a `postgres://` URL.
    #[arg(long, env = "DUALITY_DB", default_value = "duality.db", value_parser = parse_database)]
    pub db: Database,

    /// How long events are kept (`500ms`, `30s`, `5m`, `2h`).
    #[arg(long, env = "DUALITY_RETENTION", default_value = "1h", value_parser = parse_duration)]
    pub retention: Duration,

    /// How long a consumer may be away and still catch up with one patch of
    /// what changed instead of reloading the view (at least `--retention`);
    /// older positions get `410`. The database keeps one small row per key
    /// changed or deleted within the horizon, not one per event: however
    /// much is written, at most one row per key the views had in that
    /// time, so a long horizon (`30d`, `365d`) costs what the keys cost.
    #[arg(long, env = "DUALITY_CATCH_UP_HORIZON", default_value = "7d", value_parser = parse_duration)]
    pub catch_up_horizon: Duration,

    /// Origins whose pages may read snapshots and streams (comma list, or `*`).
    #[arg(long, env = "DUALITY_CORS_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origin: Vec<String>,

    /// How often an idle stream sends a keep-alive comment.
    #[arg(long, env = "DUALITY_KEEP_ALIVE", default_value = "15s", value_parser = parse_duration)]
    pub keep_alive: Duration,

    /// Let pages on the `--cors-origin` origins write too (POST, PATCH,
    /// PUT, DELETE), not only read.
    #[arg(long, env = "DUALITY_CORS_ALLOW_WRITES", value_parser = BoolishValueParser::new())]
    pub cors_allow_writes: bool,

    /// Writes need `Authorization: Bearer TOKEN` (comma list: every token
    /// listed is valid, for rotation).
    #[arg(long, env = "DUALITY_WRITE_TOKEN", value_delimiter = ',', value_parser = parse_token, hide_env_values = true)]
    pub write_token: Vec<Token>,

    /// Snapshots and streams need a token too (a read or a write token);
    /// streams also take it as `?access_token=`.
    #[arg(long, env = "DUALITY_READ_TOKEN", value_delimiter = ',', value_parser = parse_token, hide_env_values = true)]
    pub read_token: Vec<Token>,

    /// Serve writes without a token on a non-loopback address.
    #[arg(long, env = "DUALITY_OPEN_WRITES", value_parser = BoolishValueParser::new())]
    pub open_writes: bool,

    /// Connections served at once; past it a new connection gets `503`
    /// (default: three quarters of the file-descriptor limit).
    #[arg(long, env = "DUALITY_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: Option<u64>,

    /// A connection must send a whole request header within this time,
    /// also between requests of a keep-alive connection, or it is closed.
    #[arg(long, env = "DUALITY_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// On SIGTERM/SIGINT, how long requests and streams may take to end
    /// before the remaining connections are closed.
    #[arg(long, env = "DUALITY_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

/// The engine's flags alone, for a program that has no flags of its own.
#[derive(Debug, Parser)]
#[command(about = "Serves views as aggregates and as change streams.")]
struct EngineOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// The configuration from this process's command line and environment,
    /// for a program with no flags of its own (`--help` lists the engine's;
    /// an invalid value prints the error as [`one_line`] and exits with 2).
    pub fn from_command_line() -> Self {
        match EngineOnly::try_parse() {
            Ok(cli) => cli.config,
            Err(e) if is_requested_output(&e) => e.exit(),
            Err(e) => {
                eprintln!("{}", one_line(&e));
                std::process::exit(2);
            }
        }
    }

    /// Checks what no single flag can: the catch-up horizon is at least
    /// the retention (catch-up answers positions older than the retained
    /// events). An `Err` is a one-line message.
    pub fn check(&self) -> Result<(), String> {
        if self.catch_up_horizon < self.retention {
            return Err(format!(
                "--catch-up-horizon ({}) must be at least --retention ({}): catch-up answers \
                 the positions older than the retained events",
                shown(self.catch_up_horizon),
                shown(self.retention)
            ));
        }
        Ok(())
    }

    /// A configuration for tests and tools: an in-memory database on port 0.
    pub fn ephemeral() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: Database::Sqlite(Location::Memory),
            retention: Duration::from_secs(3600),
            catch_up_horizon: Duration::from_secs(7 * 86_400),
            cors_origin: Vec::new(),
            keep_alive: Duration::from_secs(15),
            cors_allow_writes: false,
            write_token: Vec::new(),
            read_token: Vec::new(),
            open_writes: false,
            max_connections: None,
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// True if clap's "error" is the help or version text the user asked for,
/// to print as it is, with success.
pub fn is_requested_output(e: &clap::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    )
}

/// A refused command line as one line: what was refused and why, and
/// clap's "did you mean" for a mistyped flag, subcommand or value. Scripts
/// and people both read one line; clap's usage block and tips are left out.
pub fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut line = text
        .lines()
        .next()
        .unwrap_or("error: invalid arguments")
        .to_string();
    let suggestions: Vec<String> = [
        ContextKind::SuggestedArg,
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedValue,
    ]
    .into_iter()
    .filter_map(|kind| e.get(kind))
    .flat_map(|value| match value {
        ContextValue::String(s) => vec![s.clone()],
        ContextValue::Strings(list) => list.clone(),
        _ => Vec::new(),
    })
    .collect();
    if !suggestions.is_empty() {
        let quoted: Vec<String> = suggestions.iter().map(|s| format!("'{s}'")).collect();
        line.push_str(&format!("; did you mean {}?", quoted.join(" or ")));
    }
    line
}

/// A bearer token. Its `Debug` form hides the value, so settings can be
/// logged without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token's bytes, for a constant-time comparison.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The token as text (e.g. for an `Authorization` header).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// A token as an `Authorization: Bearer` header carries it: 1 to 1024
/// visible ASCII characters, no spaces or commas.
pub fn parse_token(raw: &str) -> Result<Token, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("a token must not be empty".into());
    }
    if raw.len() > 1024 {
        return Err("a token must be at most 1024 characters".into());
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err("a token must be visible ASCII without spaces or commas".into());
    }
    Ok(Token(raw.to_string()))
}

/// `HOST:PORT`, `[V6]:PORT`, or a bare `PORT` meaning 127.0.0.1:PORT. A
/// host name is resolved here, once: `localhost` is 127.0.0.1, any other
/// name takes the first address it resolves to. The exposure check at
/// start looks at the bound address, so a name that resolves to a public
/// address still needs `--write-token` or `--open-writes`.
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let usage = || format!("`{raw}` is not an address like 127.0.0.1:3000, localhost:3000 or 3000");
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = raw.parse().map_err(|_| usage())?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let (host, port) = raw.rsplit_once(':').ok_or_else(usage)?;
    let port: u16 = port.parse().map_err(|_| usage())?;
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !host_ok {
        return Err(usage());
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{host}` resolves to no address"))
}

/// An origin as browsers send it (`https://example.com:8080`), or `*`.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    let raw = raw.trim().trim_end_matches('/');
    if raw == "*" {
        return Ok(raw.into());
    }
    let ok = (raw.starts_with("http://") || raw.starts_with("https://"))
        && !raw
            .split_once("://")
            .is_some_and(|(_, rest)| rest.is_empty() || rest.contains('/'))
        && axum::http::HeaderValue::from_str(raw).is_ok();
    if ok {
        Ok(raw.to_string())
    } else {
        Err(format!(
            "`{raw}` is not an origin like https://example.com or *"
        ))
    }
}

/// Which database to serve from, as given by `--db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, or an in-memory database (`:memory:`).
    Sqlite(Location),
    /// A PostgreSQL server, by its `postgres://` URL.
    Postgres(String),
}

impl std::fmt::Display for Database {
    /// For logs: a PostgreSQL URL shows `***` instead of its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(Location::Memory) => f.write_str(":memory:"),
            Database::Sqlite(Location::File(path)) => write!(f, "{}", path.display()),
            #[cfg(not(feature = "postgres"))]
            Database::Postgres(_) => f.write_str("postgres://(not built in)"),
            #[cfg(feature = "postgres")]
            Database::Postgres(url) => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    f.write_str(parsed.as_str())
                }
                Err(_) => f.write_str("postgres://(unparsable URL)"),
            },
        }
    }
}

/// Reads `--db`: a `postgres://` (or `postgresql://`) URL, `:memory:`, or else
/// a SQLite file path.
pub fn parse_database(raw: &str) -> Result<Database, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("the database must be a file path, :memory: or a postgres:// URL".into());
    }
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        return Ok(Database::Postgres(raw.to_string()));
    }
    if raw.contains("://") {
        return Err(format!("unsupported database URL `{raw}`"));
    }
    if raw == ":memory:" {
        return Ok(Database::Sqlite(Location::Memory));
    }
    Ok(Database::Sqlite(Location::File(PathBuf::from(raw))))
}

/// A duration as the flags take it: its largest whole unit (`90s` is
/// `90s`, `2h` is `2h`).
fn shown(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// Parses `500ms`, `30s`, `5m`, `2h` (and `1d`); the duration must be > 0.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{raw}` needs a unit: ms, s, m, h or d"))?;
    let (number, unit) = raw.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{raw}` is not a duration like 500ms, 30s, 5m or 2h"))?;
    let ms_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{raw}` has an unknown unit; use ms, s, m, h or d")),
    };
    let ms = n
        .checked_mul(ms_per_unit)
        .ok_or_else(|| format!("`{raw}` is too long"))?;
    if ms == 0 {
        return Err("the duration must be greater than zero".into());
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_documented_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in [
            "",
            "5",
            "s",
            "0s",
            "5x",
            "-5s",
            "1.5s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn databases_are_files_memory_or_postgres() {
        assert_eq!(
            parse_database(":memory:"),
            Ok(Database::Sqlite(Location::Memory))
        );
        assert_eq!(
            parse_database("x.db"),
            Ok(Database::Sqlite(Location::File("x.db".into())))
        );
        assert!(matches!(
            parse_database("postgres://u@h/db"),
            Ok(Database::Postgres(_))
        ));
        assert!(parse_database("mysql://x").is_err());
        assert!(parse_database("").is_err());
    }

    // Without the feature a PostgreSQL URL is shown as not built in.
    #[cfg(feature = "postgres")]
    #[test]
    fn database_urls_show_no_password() {
        let db = parse_database("postgres://app:s3cret@db.internal:5432/duality").unwrap();
        // A build without PostgreSQL shows no URL at all.
        #[cfg(feature = "postgres")]
        assert_eq!(
            db.to_string(),
            "postgres://app:***@db.internal:5432/duality"
        );
        assert!(!db.to_string().contains("s3cret"));
        assert_eq!(parse_database(":memory:").unwrap().to_string(), ":memory:");
    }

    #[test]
    fn origins_are_scheme_host_and_port_or_a_star() {
        assert_eq!(
            parse_origin("https://a.example:8080/"),
            Ok("https://a.example:8080".into())
        );
        assert_eq!(parse_origin("*"), Ok("*".into()));
        for bad in ["a.example", "https://", "https://a.example/path", "ftp://x"] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_visible_ascii_and_never_shown() {
        let token = parse_token(" s3cret-token ").unwrap();
        assert_eq!(token.as_bytes(), b"s3cret-token");
        assert!(!format!("{token:?}").contains("s3cret"));
        for bad in ["", "  ", "a b", "tab\there", "\u{e9}t\u{e9}"] {
            assert!(parse_token(bad).is_err(), "{bad:?}");
        }
        let cli =
            EngineOnly::try_parse_from(["app", "--write-token", "one,two", "--read-token", "r"])
                .unwrap();
        assert_eq!(cli.config.write_token.len(), 2);
        assert_eq!(cli.config.read_token.len(), 1);
        assert!(EngineOnly::try_parse_from(["app", "--max-connections", "0"]).is_err());
    }

    #[test]
    fn listen_takes_a_host_name_or_a_bare_port() {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(parse_listen("3105"), Ok(local(3105)));
        assert_eq!(parse_listen("localhost:3105"), Ok(local(3105)));
        assert_eq!(parse_listen("LocalHost:0"), Ok(local(0)));
        assert_eq!(
            parse_listen("0.0.0.0:80"),
            Ok(SocketAddr::from(([0; 4], 80)))
        );
        assert_eq!(
            parse_listen("[::1]:7").map(|a| a.ip().is_loopback()),
            Ok(true)
        );
        for bad in [
            "",
            "nowhere",
            "x:y",
            "70000",
            "localhost:",
            ":3000",
            "a b:1",
            "h/x:1",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_refused_command_line_is_one_line_with_its_suggestion() {
        let e = EngineOnly::try_parse_from(["app", "--db", "mysql://x"]).unwrap_err();
        let line = one_line(&e);
        assert!(
            line.starts_with("error: ") && line.contains("mysql://x"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let e = EngineOnly::try_parse_from(["app", "--lisen", "3000"]).unwrap_err();
        assert!(one_line(&e).ends_with("did you mean '--listen'?"), "{e}");
        let help = EngineOnly::try_parse_from(["app", "--help"]).unwrap_err();
        assert!(is_requested_output(&help) && !is_requested_output(&e));
    }

    #[test]
    fn no_flags_mean_the_defaults() {
        let cli = EngineOnly::try_parse_from(["app"]).unwrap();
        assert_eq!(cli.config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(
            cli.config.db,
            Database::Sqlite(Location::File("duality.db".into()))
        );
        assert_eq!(cli.config.retention, Duration::from_secs(3600));
        assert_eq!(cli.config.shutdown_grace, Duration::from_secs(10));
        assert_eq!(cli.config.catch_up_horizon, Duration::from_secs(7 * 86_400));
        assert!(cli.config.write_token.is_empty() && !cli.config.open_writes);
        assert_eq!(cli.config.check(), Ok(()));
    }

    #[test]
    fn a_catch_up_horizon_shorter_than_retention_is_refused_in_one_line() {
        let cli =
            EngineOnly::try_parse_from(["app", "--retention", "2h", "--catch-up-horizon", "90m"])
                .unwrap();
        let refused = cli.config.check().unwrap_err();
        assert_eq!(
            refused,
            "--catch-up-horizon (90m) must be at least --retention (2h): catch-up answers \
             the positions older than the retained events"
        );
        let cli =
            EngineOnly::try_parse_from(["app", "--retention", "2h", "--catch-up-horizon", "2h"])
                .unwrap();
        assert_eq!(cli.config.check(), Ok(()));
        assert!(EngineOnly::try_parse_from(["app", "--catch-up-horizon", "0s"]).is_err());
    }
}
