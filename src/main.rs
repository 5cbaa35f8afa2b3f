fn main() -> std::process::ExitCode {
    duality::cli::main()
}
