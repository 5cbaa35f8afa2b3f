//! The engine's module layers, checked against its own source tree
//! (docs/ARCHITECTURE.md, "Inside the engine").
//!
//! The test reads every `.rs` file under `src/` at test time, maps it to
//! its top-level module (`src/store/sqlite.rs` is `store`), and collects
//! the modules it names through `crate::X` paths (in `use` or anywhere in
//! code, grouped imports included) and `super::` paths that climb out of
//! its own top-level module. Comments, string and character literals, and
//! `#[cfg(test)]` items are left out: a test may reach anywhere. Two checks
//! then run over that graph: it has no cycle, and every arrow points from
//! a higher layer of [`LAYERS`] to a lower one.
//!
//! This is a reader of Rust good enough for this crate's style, not a
//! parser: `the_reader_finds_every_kind_of_path_and_nothing_else` pins
//! down what it understands.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The engine's top-level modules, bottom layer first. A module may use
/// the modules of the layers below its own, never those of its own layer
/// or above. A new module gets a layer here (and in docs/ARCHITECTURE.md).
const LAYERS: &[&[&str]] = &[
    // Leaves: they name no other module of the engine.
    &[
        "error",
        "in_flight",
        "telemetry",
        "net",
        "client",
        "interest",
    ],
    // Storage; owns the `Publish` trait it announces commits through.
    &["store"],
    // Over the store: the configuration (it names a SQLite `Location`),
    // retention, the in-memory copies (which catch up from the store).
    &["settings", "retention", "materialized"],
    // Implements `store::Publish`: advances the copies, fans frames out.
    &["hub"],
    // The core every handler goes through.
    &["app"],
    // Catch-up instead of 410: one patch from the changed keys, over `App`.
    &["catch_up"],
    // The one stream path, and long-polling, over `App`.
    &["stream", "poll"],
    // The router, handlers, edge checks.
    &["http"],
    // The public `Service`/`Server` API.
    &["service"],
    // `Server::launch`: wires everything together.
    &["run"],
];

/// Where an edge was seen first: file (relative to the crate) and line.
type Seen = (String, usize);
/// `from -> to -> where it was seen first`.
type Graph = BTreeMap<String, BTreeMap<String, Seen>>;

// ---------------------------------------------------------------- reading

/// `src` with comments, string and character literals blanked out (their
/// newlines kept, so lines still count).
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    // Blanks `c[from..to]`, keeping its newlines.
    let blank = |out: &mut String, from: usize, to: usize| {
        for &ch in &c[from..to.min(c.len())] {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied();
        // Line comment (doc comments too).
        if c[i] == '/' && at(i + 1) == Some('/') {
            let end = (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len());
            blank(&mut out, i, end);
            i = end;
            continue;
        }
        // Block comment, nested.
        if c[i] == '/' && at(i + 1) == Some('*') {
            let (mut depth, mut k) = (1, i + 2);
            while k < c.len() && depth > 0 {
                if c[k] == '/' && at(k + 1) == Some('*') {
                    depth += 1;
                    k += 2;
                } else if c[k] == '*' && at(k + 1) == Some('/') {
                    depth -= 1;
                    k += 2;
                } else {
                    k += 1;
                }
            }
            blank(&mut out, i, k);
            i = k;
            continue;
        }
        // Raw string: r"…", r#"…"#, br#"…"#.
        let starts_word =
            i == 0 || !ident(c[i - 1]) || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2])));
        if c[i] == 'r' && starts_word {
            let hashes = (i + 1..c.len()).take_while(|&k| c[k] == '#').count();
            if at(i + 1 + hashes) == Some('"') {
                let body = i + 2 + hashes;
                let closes = |k: usize| c[k] == '"' && (1..=hashes).all(|h| at(k + h) == Some('#'));
                let end = (body..c.len())
                    .find(|&k| closes(k))
                    .map_or(c.len(), |k| k + 1 + hashes);
                out.push('r');
                blank(&mut out, i + 1, end);
                i = end;
                continue;
            }
        }
        // String, with escapes.
        if c[i] == '"' {
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, k + 1);
            i = k + 1;
            continue;
        }
        // Character literal ('x', '\n', '\u{1F600}'); a lifetime stays.
        if c[i] == '\'' {
            if at(i + 1) == Some('\\') {
                let end = (i + 3..c.len())
                    .find(|&k| c[k] == '\'')
                    .map_or(c.len(), |k| k + 1);
                blank(&mut out, i, end);
                i = end;
                continue;
            }
            if at(i + 2) == Some('\'') {
                blank(&mut out, i, i + 3);
                i += 3;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Identifiers, `::` and single punctuation, each with its line.
fn tokens(stripped: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = stripped.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

fn is_ident(t: Option<&(Tok, usize)>, word: &str) -> bool {
    matches!(t, Some((Tok::Ident(w), _)) if w == word)
}

fn is_punct(t: Option<&(Tok, usize)>, p: char) -> bool {
    matches!(t, Some((Tok::Punct(q), _)) if *q == p)
}

fn is_path(t: Option<&(Tok, usize)>) -> bool {
    matches!(t, Some((Tok::Path, _)))
}

/// The index just past the bracket that closes the one at `open`.
fn close_of(toks: &[(Tok, usize)], open: usize) -> usize {
    let mut depth = 0i32;
    for (k, (t, _)) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// Whether `#[cfg(test)]` (or `#![cfg(test)]`) starts at `i`; answers the
/// index past its `]`, and whether it is an inner attribute.
fn cfg_test_at(toks: &[(Tok, usize)], i: usize) -> Option<(usize, bool)> {
    if !is_punct(toks.get(i), '#') {
        return None;
    }
    let inner = is_punct(toks.get(i + 1), '!');
    let b = i + 1 + usize::from(inner);
    let shape = is_punct(toks.get(b), '[')
        && is_ident(toks.get(b + 1), "cfg")
        && is_punct(toks.get(b + 2), '(')
        && is_ident(toks.get(b + 3), "test")
        && is_punct(toks.get(b + 4), ')')
        && is_punct(toks.get(b + 5), ']');
    shape.then_some((b + 6, inner))
}

/// The tokens without their `#[cfg(test)]` items, and the names of the
/// out-of-line modules such items declared (`#[cfg(test)] mod layers;`),
/// whose files are test code too. A file under `#![cfg(test)]` is all test.
fn without_tests(toks: Vec<(Tok, usize)>) -> (Vec<(Tok, usize)>, Vec<String>) {
    let mut kept = Vec::with_capacity(toks.len());
    let mut test_files = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let Some((mut k, inner)) = cfg_test_at(&toks, i) else {
            kept.push(toks[i].clone());
            i += 1;
            continue;
        };
        if inner {
            return (Vec::new(), test_files);
        }
        // Further attributes of the same item.
        while is_punct(toks.get(k), '#') && is_punct(toks.get(k + 1), '[') {
            k = close_of(&toks, k + 1);
        }
        // The item ends at its first `;` or its body's `}` outside brackets.
        let start = k;
        let mut depth = 0i32;
        while k < toks.len() {
            match &toks[k].0 {
                Tok::Punct('(' | '[') => depth += 1,
                Tok::Punct(')' | ']') => depth -= 1,
                Tok::Punct(';') if depth == 0 => {
                    k += 1;
                    break;
                }
                Tok::Punct('{') if depth == 0 => {
                    k = close_of(&toks, k);
                    break;
                }
                _ => {}
            }
            k += 1;
        }
        let item = &toks[start..k.min(toks.len())];
        if let Some(m) = item
            .iter()
            .position(|(t, _)| *t == Tok::Ident("mod".into()))
            && let Some((Tok::Ident(name), _)) = item.get(m + 1)
            && is_punct(item.get(m + 2), ';')
        {
            test_files.push(name.clone());
        }
        i = k;
    }
    (kept, test_files)
}

/// The first segment of each path a `use` tree or path continues with at
/// `i` (just after `crate::`): `hub` for `hub::Hub`, `http` and `net` for
/// `{http, net::serve}`.
fn heads(toks: &[(Tok, usize)], i: usize) -> Vec<(String, usize)> {
    match toks.get(i) {
        Some((Tok::Ident(name), line)) => vec![(name.clone(), *line)],
        Some((Tok::Punct('{'), _)) => {
            let end = close_of(toks, i) - 1;
            let mut out = Vec::new();
            let mut entry_start = true;
            let mut depth = 0;
            for (t, line) in &toks[i + 1..end] {
                match t {
                    Tok::Punct('{' | '(' | '[') => depth += 1,
                    Tok::Punct('}' | ')' | ']') => depth -= 1,
                    Tok::Punct(',') if depth == 0 => {
                        entry_start = true;
                        continue;
                    }
                    Tok::Ident(name) if entry_start && depth == 0 => {
                        out.push((name.clone(), *line));
                    }
                    _ => {}
                }
                entry_start = false;
            }
            out
        }
        _ => Vec::new(),
    }
}

/// The names a file's code reaches through the crate root, with their
/// lines: what follows `crate::`, or a `super::` chain that climbs out of
/// the file's top-level module. `module` is the file's module path
/// (`["store", "sqlite"]`); inline `mod x { … }` blocks extend it.
fn root_names(toks: &[(Tok, usize)], module: &[String]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    // Inline modules open around `i`, with the brace depth inside each.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let after_path = i > 0 && is_path(toks.get(i - 1));
        match &toks[i].0 {
            Tok::Punct('{') => {
                depth += 1;
                if i >= 2
                    && is_ident(toks.get(i - 2), "mod")
                    && let Tok::Ident(name) = &toks[i - 1].0
                {
                    inline.push((name.clone(), depth));
                }
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(w) if w == "crate" && !after_path && is_path(toks.get(i + 1)) => {
                out.extend(heads(toks, i + 2));
            }
            Tok::Ident(w) if w == "super" && !after_path => {
                let mut k = i;
                let mut ups = 0;
                while is_ident(toks.get(k), "super") && is_path(toks.get(k + 1)) {
                    ups += 1;
                    k += 2;
                }
                let here = module.len() + inline.len();
                // Climbing to the root: the next segments name a top-level
                // item; short of it, the path stays in this module.
                if ups > 0 && ups == here {
                    out.extend(heads(toks, k));
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A `use` tree's leaves as (first segment, name it is known by):
/// `pub use store::{Committed, Event as E};` gives `(store, Committed)`
/// and `(store, E)`.
fn use_leaves(toks: &[(Tok, usize)], mut i: usize, first: Option<&str>) -> Vec<(String, String)> {
    let mut first = first.map(str::to_string);
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(name)) => {
                let first = first.get_or_insert_with(|| name.clone()).clone();
                match toks.get(i + 1).map(|t| &t.0) {
                    Some(Tok::Path) => i += 2,
                    Some(Tok::Ident(w)) if w == "as" => {
                        return match toks.get(i + 2).map(|t| &t.0) {
                            Some(Tok::Ident(alias)) => vec![(first, alias.clone())],
                            _ => Vec::new(),
                        };
                    }
                    _ => return vec![(first, name.clone())],
                }
            }
            Some(Tok::Punct('{')) => {
                let end = close_of(toks, i) - 1;
                let mut out = Vec::new();
                let mut k = i + 1;
                while k < end {
                    out.extend(use_leaves(toks, k, first.as_deref()));
                    // On to the next entry at this level.
                    let mut depth = 0;
                    while k < end {
                        match toks[k].0 {
                            Tok::Punct('{') => depth += 1,
                            Tok::Punct('}') => depth -= 1,
                            Tok::Punct(',') if depth == 0 => break,
                            _ => {}
                        }
                        k += 1;
                    }
                    k += 1;
                }
                return out;
            }
            _ => return Vec::new(),
        }
    }
}

/// One Rust file of the crate, read.
struct Source {
    /// Relative to the crate, for messages (`src/store/sqlite.rs`).
    shown: String,
    /// Its module path (`["store", "sqlite"]`; empty for `lib.rs`).
    module: Vec<String>,
    toks: Vec<(Tok, usize)>,
    /// Out-of-line modules it declares under `#[cfg(test)]`.
    test_files: Vec<String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

fn read_crate(root: &Path) -> Vec<Source> {
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut sources: Vec<Source> = files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).expect("under src");
            let mut module: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let (toks, test_files) = without_tests(tokens(&strip(&text)));
            Source {
                shown: format!("src/{}", rel.display()),
                module,
                toks,
                test_files,
            }
        })
        .collect();
    // Files of modules declared only under `#[cfg(test)]` are test code.
    let test_modules: BTreeSet<Vec<String>> = sources
        .iter()
        .flat_map(|s| {
            s.test_files.iter().map(|name| {
                let mut m = s.module.clone();
                m.push(name.clone());
                m
            })
        })
        .collect();
    sources.retain(|s| !test_modules.iter().any(|t| s.module.starts_with(t)));
    sources
}

/// The graph of top-level modules (every one of them a node), read from
/// the crate at `root`.
fn module_graph(root: &Path) -> Graph {
    let sources = read_crate(root);
    let lib = sources
        .iter()
        .find(|s| s.module.is_empty())
        .expect("src/lib.rs");
    // The top-level modules, and what the root re-exports from each
    // (`pub use store::Committed` makes `crate::Committed` mean `store`).
    let mut tops = BTreeSet::new();
    let mut reexports = BTreeMap::new();
    for (k, (t, _)) in lib.toks.iter().enumerate() {
        if *t == Tok::Ident("mod".into())
            && let Some((Tok::Ident(name), _)) = lib.toks.get(k + 1)
            && is_punct(lib.toks.get(k + 2), ';')
        {
            tops.insert(name.clone());
        }
    }
    for (k, (t, _)) in lib.toks.iter().enumerate() {
        if *t == Tok::Ident("use".into()) {
            for (first, name) in use_leaves(&lib.toks, k + 1, None) {
                if tops.contains(&first) {
                    reexports.insert(name, first);
                }
            }
        }
    }
    let mut graph: Graph = tops.iter().map(|m| (m.clone(), BTreeMap::new())).collect();
    for source in sources.iter().filter(|s| !s.module.is_empty()) {
        let from = &source.module[0];
        for (name, line) in root_names(&source.toks, &source.module) {
            let to = if tops.contains(&name) {
                &name
            } else if let Some(m) = reexports.get(&name) {
                m
            } else {
                // `crate::domain` (the core crate) or a root item.
                continue;
            };
            if to != from {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to.clone())
                    .or_insert_with(|| (source.shown.clone(), line));
            }
        }
    }
    graph
}

// ---------------------------------------------------------------- checks

/// A cycle of the graph as its modules (the first repeated at the end),
/// if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let at = path.iter().position(|m| m == next).expect("on the path");
                    let mut cycle = path[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, graph, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

/// `a -> b (src/a.rs:12) -> a (src/b.rs:3)`.
fn show_cycle(graph: &Graph, cycle: &[String]) -> String {
    let mut shown = cycle[0].clone();
    for pair in cycle.windows(2) {
        let (file, line) = &graph[&pair[0]][&pair[1]];
        let _ = write!(shown, " -> {} ({file}:{line})", pair[1]);
    }
    shown
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every arrow that does not point to a lower layer, and every module the
/// layers do not place (or place but the crate does not have).
fn layer_violations(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    for module in graph.keys() {
        if layer_of(module).is_none() {
            found.push(format!("`{module}` has no layer: add it to LAYERS"));
        }
    }
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        if !graph.contains_key(*module) {
            found.push(format!(
                "LAYERS names `{module}`, which src/lib.rs does not declare"
            ));
        }
    }
    for (from, edges) in graph {
        for (to, (file, line)) in edges {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to))
                && a <= b
            {
                found.push(format!(
                    "`{from}` (layer {a}) uses `{to}` (layer {b}) at {file}:{line}"
                ));
            }
        }
    }
    found
}

fn engine() -> Graph {
    module_graph(Path::new(env!("CARGO_MANIFEST_DIR")))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = engine();
    // The reader found the arrows every engine has, so a pass means something.
    for (from, to) in [("hub", "store"), ("hub", "materialized"), ("run", "http")] {
        assert!(
            graph[from].contains_key(to),
            "the reader missed `{from}` -> `{to}`; graph: {graph:#?}"
        );
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the engine's modules form a cycle: {}",
            show_cycle(&graph, &cycle)
        );
    }
}

#[test]
fn the_layers_point_down_only() {
    let graph = engine();
    let found = layer_violations(&graph);
    assert!(
        found.is_empty(),
        "arrows that do not point down (docs/ARCHITECTURE.md):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_store_and_the_hub_know_nothing_above_them() {
    let graph = engine();
    let forbidden: &[(&str, &[&str])] = &[
        (
            "store",
            &[
                "materialized",
                "hub",
                "app",
                "stream",
                "http",
                "service",
                "run",
            ],
        ),
        (
            "materialized",
            &["hub", "app", "stream", "http", "service", "run"],
        ),
        ("hub", &["app", "stream", "http", "service", "run"]),
        ("app", &["stream", "http", "service", "run"]),
        ("http", &["service", "run"]),
    ];
    let mut found = Vec::new();
    for (from, above) in forbidden {
        for to in *above {
            if let Some((file, line)) = graph[*from].get(*to) {
                found.push(format!("`{from}` uses `{to}` at {file}:{line}"));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_reader_finds_every_kind_of_path_and_nothing_else() {
    let names = |src: &str, module: &[&str]| -> Vec<String> {
        let (toks, _) = without_tests(tokens(&strip(src)));
        let module: Vec<String> = module.iter().map(|m| m.to_string()).collect();
        root_names(&toks, &module)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    let src = r####"
        //! A doc comment naming crate::a.
        use crate::hub::Hub; // and crate::b
        use crate::{http, net::serve, retention::{self, spawn}};
        /* crate::c /* nested crate::d */ crate::e */
        const S: &str = "crate::f \" crate::g";
        const R: &str = r##"crate::h "# crate::i"##;
        const Q: char = '"';
        fn f<'a>(x: &'a str) -> &'a str { crate::telemetry::init(); x }
        const E: char = '\'';
        #[cfg(test)]
        mod tests {
            use crate::service::Service;
        }
        #[cfg(test)]
        use crate::run::x;
        mod inner {
            use super::super::app::App;
        }
        use super::Location;
        use super::super::stream::Opened;
        fn g() { let _ = crate::Committed; }
    "####;
    assert_eq!(
        names(src, &["store", "sqlite"]),
        [
            "hub",
            "http",
            "net",
            "retention",
            "telemetry",
            "stream",
            "Committed"
        ]
    );
    // From a top-level file, one `super` reaches the root; from an inline
    // module in it, two.
    assert_eq!(
        names(src, &["hub"]),
        [
            "hub",
            "http",
            "net",
            "retention",
            "telemetry",
            "app",
            "Location",
            "Committed"
        ]
    );
    // A file under `#![cfg(test)]` is all test code; a test module declared
    // out of line is named.
    assert!(names("#![cfg(test)]\nuse crate::hub::Hub;", &["x"]).is_empty());
    let (_, test_files) = without_tests(tokens(&strip("#[cfg(test)]\nmod layers;\nmod kept;")));
    assert_eq!(test_files, ["layers"]);
    // The root's re-exports map back to their modules.
    let toks = tokens(&strip(
        "pub use store::{Committed, Event as E, x::Y}; pub use a::B;",
    ));
    assert_eq!(
        use_leaves(&toks, 2, None),
        [
            ("store".to_string(), "Committed".to_string()),
            ("store".to_string(), "E".to_string()),
            ("store".to_string(), "Y".to_string()),
        ]
    );
}

#[test]
fn a_cycle_is_found_and_shown_with_where_each_arrow_comes_from() {
    let edge = |file: &str, line| (file.to_string(), line);
    let mut graph: Graph = BTreeMap::new();
    graph
        .entry("a".into())
        .or_default()
        .insert("b".into(), edge("src/a.rs", 3));
    graph
        .entry("b".into())
        .or_default()
        .insert("c".into(), edge("src/b/mod.rs", 7));
    graph
        .entry("c".into())
        .or_default()
        .insert("a".into(), edge("src/c.rs", 1));
    graph
        .entry("d".into())
        .or_default()
        .insert("a".into(), edge("src/d.rs", 9));
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(
        show_cycle(&graph, &cycle),
        "a -> b (src/a.rs:3) -> c (src/b/mod.rs:7) -> a (src/c.rs:1)"
    );
    graph.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&graph), None);
}
