//! The host's tree is its architecture, and this test keeps it so: it reads `host/src`, finds
//! every module's references to other modules of the crate (`crate::a::b`, `super::x`), and
//! checks that
//!
//! - no module imports its importer and no modules import each other in a circle, at any
//!   level: files, and the folders they sit in, collapsed to each depth in turn;
//! - the layers point one way: `config` and `civil` use no other layer, `telemetry` only those
//!   two, `capabilities` and `links` nothing of `runtime`, `app`, `swap`, `http` or `commands`,
//!   and only `commands` (and `main.rs`) start what `http` serves;
//! - no file holds more than [`MAX_CODE_LINES`] lines of code, its tests not counted.
//!
//! A reference inside a file's `#[cfg(test)] mod tests` counts too, except its `use super::*`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most lines of code (not blank, not comments, not the tests) a host file may hold.
const MAX_CODE_LINES: usize = 700;

/// A module of the crate, by path below `crate` (`["capabilities", "sqlite", "host"]`).
type Module = Vec<String>;

/// Every module of the library crate with its source text (main.rs is the binary: it may only
/// use the library through `shop::`).
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut found = BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let mut module: Module = relative
                .iter()
                .map(|part| part.to_str().unwrap().trim_end_matches(".rs").to_string())
                .collect();
            match module.last().map(String::as_str) {
                Some("main") if module.len() == 1 => continue,
                Some("lib") if module.len() == 1 => module.clear(),
                Some("mod") => {
                    module.pop();
                }
                _ => {}
            }
            found.insert(module, std::fs::read_to_string(&path).unwrap());
        }
    }
    found
}

/// The text of `source` without comments (so a doc link is no dependency).
fn code_of(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal (a URL) ends no code worth reading here.
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The part of `code` before its `#[cfg(test)] mod tests`, and that test module.
fn split_tests(code: &str) -> (&str, &str) {
    let at = [
        "#[cfg(test)]\nmod tests",
        "#[cfg(test)]\npub(crate) mod tests",
    ]
    .iter()
    .filter_map(|start| code.find(start))
    .min();
    match at {
        Some(at) => (&code[..at], &code[at..]),
        None => (code, ""),
    }
}

/// The modules `module`'s code refers to, resolved against the crate's `known` modules.
fn references(module: &Module, code: &str, known: &BTreeSet<Module>) -> BTreeSet<Module> {
    let (body, tests) = split_tests(code);
    let tests = tests.replace("use super::*;", "");
    let mut found = BTreeSet::new();
    for (text, in_tests) in [(body, false), (tests.as_str(), true)] {
        for path in paths_in(text) {
            let mut segments: Vec<String> = Vec::new();
            let mut parts = path.iter();
            match parts.next().map(String::as_str) {
                Some("crate") => {}
                Some("super") => {
                    // `super` in a file's own code is its parent; in its test module, itself.
                    segments = module.clone();
                    if !in_tests {
                        segments.pop();
                    }
                }
                _ => continue,
            }
            let mut resolved = segments.clone();
            for part in parts {
                let mut next = resolved.clone();
                next.push(part.clone());
                if known.contains(&next) {
                    resolved = next;
                } else {
                    break;
                }
            }
            if &resolved != module {
                found.insert(resolved);
            }
        }
    }
    found
}

/// Every path starting `crate::` or `super::` in `text`, with one level of `{a, b}` groups
/// expanded (`crate::x::{self, y}` gives `crate::x` and `crate::x::y`).
fn paths_in(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(offset) = text[from..].find(start) {
            let at = from + offset;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let mut end = at;
            while end < bytes.len()
                && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
            {
                end += 1;
            }
            let head: Vec<String> = text[at..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if text[end..].starts_with('{') {
                let close = text[end..].find('}').map_or(text.len(), |c| end + c);
                for item in text[end + 1..close].split(',') {
                    let item = item.trim();
                    let first = item.split("::").next().unwrap_or_default();
                    let mut path = head.clone();
                    if !first.is_empty() && first != "self" && !first.starts_with('{') {
                        path.push(first.to_string());
                    }
                    paths.push(path);
                }
            }
            paths.push(head);
        }
    }
    paths
}

/// Whether `graph` (edges between nodes) has a cycle; if so, one, for the message.
fn find_cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        marks: &mut BTreeMap<Module, Mark>,
        trail: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let at = trail.iter().position(|m| m == node).unwrap();
                let mut cycle = trail[at..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Open);
        trail.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, trail) {
                return Some(cycle);
            }
        }
        trail.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

fn show(module: &Module) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

fn host_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Each module's references, with the implicit edge from every parent to its children.
fn edges(sources: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let known: BTreeSet<Module> = sources.keys().cloned().collect();
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, source) in sources {
        let refs = references(module, &code_of(source), &known);
        graph.entry(module.clone()).or_default().extend(refs);
        if let Some((_, parent)) = module.split_last() {
            graph
                .entry(parent.to_vec())
                .or_default()
                .insert(module.clone());
        }
    }
    graph
}

#[test]
fn the_module_graph_has_no_cycle_at_any_level() {
    let sources = modules(&host_src());
    assert!(
        sources.len() > 20,
        "host/src should hold the host's modules"
    );
    let graph = edges(&sources);
    let depth = sources.keys().map(Vec::len).max().unwrap();
    // Depth 1 compares the top-level folders, the deepest compares files.
    for level in 1..=depth {
        let collapse = |m: &Module| m[..m.len().min(level)].to_vec();
        let mut collapsed: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (from, tos) in &graph {
            for to in tos {
                let (a, b) = (collapse(from), collapse(to));
                // A folder's file (`mod.rs`) declaring its children is an edge into the folder:
                // a child that uses anything of its folder's file closes a circle.
                if a != b {
                    collapsed.entry(a).or_default().insert(b);
                }
            }
        }
        if let Some(cycle) = find_cycle(&collapsed) {
            let cycle: Vec<String> = cycle.iter().map(show).collect();
            panic!(
                "modules import each other in a circle at depth {level}: {}",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_layers_point_one_way() {
    let sources = modules(&host_src());
    let graph = edges(&sources);
    // Lowest first; a layer may use only those before it (capabilities and links: neither
    // the other).
    let layers: &[&[&str]] = &[
        &["civil"],
        &["config"],
        &["telemetry"],
        &["capabilities", "links"],
        &["runtime"],
        &["app"],
        &["swap"],
        &["http"],
        &["commands"],
    ];
    let rank = |name: &str| layers.iter().position(|layer| layer.contains(&name));
    let mut wrong = Vec::new();
    for (from, tos) in &graph {
        let Some(layer) = from.first() else { continue };
        for to in tos {
            let Some(target) = to.first() else { continue };
            let (Some(a), Some(b)) = (rank(layer), rank(target)) else {
                wrong.push(format!("{} or {} is in no layer", show(from), show(to)));
                continue;
            };
            if layer != target && b >= a {
                wrong.push(format!("{} uses {}", show(from), show(to)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a layer uses one above it:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_host_file_is_too_long() {
    let src = host_src();
    let mut long = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
                let source = std::fs::read_to_string(&path).unwrap();
                let code = code_of(&source);
                let (body, _tests) = split_tests(&code);
                let lines = body.lines().filter(|l| !l.trim().is_empty()).count();
                if lines > MAX_CODE_LINES {
                    long.push(format!("{} ({lines} lines)", path.display()));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_CODE_LINES} lines of code: {}",
        long.join(", ")
    );
}

#[test]
fn the_checker_sees_a_cycle_and_a_child_using_its_parent() {
    // The checker itself must be able to fail.
    let mut sources = BTreeMap::new();
    sources.insert(vec![], "pub mod a; pub mod b;".to_string());
    sources.insert(vec!["a".to_string()], "use crate::b::X;".to_string());
    sources.insert(
        vec!["b".to_string()],
        "use crate::a::{self, Y};".to_string(),
    );
    assert!(find_cycle(&edges(&sources)).is_some());

    let mut sources = BTreeMap::new();
    sources.insert(vec![], "pub mod a;".to_string());
    sources.insert(vec!["a".to_string()], "mod c; pub use c::Z;".to_string());
    sources.insert(
        vec!["a".to_string(), "c".to_string()],
        "use super::W;".to_string(),
    );
    assert!(find_cycle(&edges(&sources)).is_some());

    let mut sources = BTreeMap::new();
    sources.insert(vec![], "pub mod a; pub mod b;".to_string());
    sources.insert(vec!["a".to_string()], "use crate::b::X;".to_string());
    sources.insert(
        vec!["b".to_string()],
        "fn f() {}\n#[cfg(test)]\nmod tests {\n use super::*;\n}".to_string(),
    );
    assert!(find_cycle(&edges(&sources)).is_none());
}
