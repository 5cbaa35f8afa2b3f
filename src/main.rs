//! The `duality` command: `serve` (the default) runs the built-in
//! services on the engine, `watch` follows a view in the terminal, `bench`
//! measures this very binary.

mod cli;
mod printable;
mod watch;

fn main() -> std::process::ExitCode {
    cli::main()
}
