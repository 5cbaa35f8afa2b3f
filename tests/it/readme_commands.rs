//! The README's `duality …` and `cargo run … -- …` command lines are
//! accepted by this binary, so the README cannot drift from the command
//! line: every flag, subcommand and flag value of every such line goes
//! through the binary's own parser (with `--help` added, so nothing is
//! started), and every `DUALITY_*` variable a line sets is one the binary
//! reads.

use std::process::Command;

const README: &str = include_str!("../../README.md");

/// Shell words of one command, without a trailing `# comment`; single and
/// double quotes group words (enough for the README's commands).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// One command of the README: the variables it sets and the arguments it
/// gives the binary.
#[derive(Debug)]
struct Invocation {
    line: String,
    env: Vec<String>,
    args: Vec<String>,
}

/// The commands in the README's code blocks (indented or fenced) that run
/// the binary, with `\` continuation lines joined.
fn invocations(markdown: &str) -> Vec<Invocation> {
    let mut commands = Vec::new();
    let mut pending = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let code = if fenced {
            Some(line)
        } else {
            line.strip_prefix("    ")
        };
        let Some(code) = code else {
            pending.clear();
            continue;
        };
        let code = code.trim();
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(code);
        commands.push(std::mem::take(&mut pending));
    }
    commands
        .into_iter()
        .filter_map(|line| {
            let mut words = words(&line).into_iter().peekable();
            let mut env = Vec::new();
            while let Some((name, _)) = words.peek().and_then(|w| w.split_once('=')) {
                env.push(name.to_string());
                words.next();
            }
            let program: Vec<String> = words.collect();
            let args = match program.first().map(String::as_str) {
                Some("duality") | Some("target/release/duality") => program[1..].to_vec(),
                Some("cargo") if program.get(1).map(String::as_str) == Some("run") => {
                    match program.iter().position(|w| w == "--") {
                        Some(dashes) => program[dashes + 1..].to_vec(),
                        None => Vec::new(),
                    }
                }
                _ => return None,
            };
            Some(Invocation { line, env, args })
        })
        .collect()
}

/// Why the binary refuses `args`, if it does.
fn refused(args: &[String]) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_duality"))
        .args(args)
        .arg("--help")
        .env_remove("RUST_LOG")
        .output()
        .expect("run duality");
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

fn serve_help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_duality"))
        .args(["serve", "--help"])
        .output()
        .expect("run duality serve --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_command_in_the_readme_is_accepted_by_the_binary() {
    let found = invocations(README);
    // The README runs, watches and splits the service: if the extraction
    // found fewer lines than that, it broke, and the test would prove nothing.
    assert!(found.len() >= 5, "too few commands found: {found:#?}");
    for needle in ["watch", "--services", "--demo-data", "--listen"] {
        assert!(
            found.iter().any(|i| i.args.iter().any(|a| a == needle)),
            "no README command uses {needle}: {found:#?}"
        );
    }
    let help = serve_help();
    let mut wrong = Vec::new();
    for invocation in &found {
        if let Some(why) = refused(&invocation.args) {
            wrong.push(format!("{}\n  -> {}", invocation.line, why.trim()));
        }
        for name in &invocation.env {
            if name.starts_with("DUALITY_") && !help.contains(name.as_str()) {
                wrong.push(format!("{}\n  -> sets unknown {name}", invocation.line));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "README commands refused:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_catches_a_wrong_flag_a_wrong_value_and_a_wrong_variable() {
    let readme = "Run:\n\n    duality serve --no-such-flag\n    cargo run -- serve --retention soon\n    \
                  DUALITY_NO_SUCH=1 duality serve\n    duality watch \\\n        http://h/persons --onse\n\nText.\n";
    let found = invocations(readme);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(refused(&found[0].args).is_some());
    assert!(refused(&found[1].args).is_some());
    assert_eq!(found[2].env, ["DUALITY_NO_SUCH"]);
    assert!(!serve_help().contains("DUALITY_NO_SUCH"));
    assert_eq!(found[3].args, ["watch", "http://h/persons", "--onse"]);
    assert!(refused(&found[3].args).is_some());
    // Commands that are not the binary's are left alone.
    assert!(invocations("    curl -i localhost:3000/persons\n    cargo test\n").is_empty());
}

/// The README's whole Rust program is the engine's `notes` example, which
/// `cargo test` builds: the page cannot show code that does not compile.
#[test]
fn the_readme_rust_program_is_the_example_that_the_tests_build() {
    let example = include_str!("../../crates/duality/examples/notes.rs");
    let start = README.find("```rust\n").expect("a Rust block") + "```rust\n".len();
    let end = start + README[start..].find("```\n").expect("its end");
    assert_eq!(&README[start..end], example);
}
