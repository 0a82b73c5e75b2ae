//! The CLI's source rules a compiler does not check (issue 19): the
//! `use crate::…` graph between `cli/src` files has no cycle, so a file is
//! understood from the files below it, and no function is longer than 80
//! lines. Reads files only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const MAX_FN_LINES: usize = 80;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Each module file of the library (`lib.rs` is the root, `main.rs` a
/// client of the library like any other) with its text.
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(src()).expect("cli/src") {
        let path = entry.expect("an entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        assert!(
            !path.is_dir(),
            "{}: a directory of modules; teach this test to walk it",
            path.display()
        );
        if path.extension().is_some_and(|e| e == "rs") && stem != "main" {
            out.insert(stem.to_string(), std::fs::read_to_string(&path).unwrap());
        }
    }
    out
}

/// The text with comments, strings and character literals blanked (kept as
/// spaces and newlines, so lines still count), leaving only code.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let rest = &chars[i..];
        let end = if rest.starts_with(&['/', '/']) {
            i + rest.iter().position(|&c| c == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            i + 2 + find(&rest[2..], &['*', '/']).map_or(rest.len() - 2, |p| p + 2)
        } else if rest[0] == '"' {
            i + 1 + quoted_len(&rest[1..], '"')
        } else if rest[0] == 'r' && (rest.get(1) == Some(&'#') || rest.get(1) == Some(&'"')) {
            let hashes = rest[1..].iter().take_while(|&&c| c == '#').count();
            let mut close = vec!['"'];
            close.extend(std::iter::repeat_n('#', hashes));
            let open = 2 + hashes;
            i + open + find(&rest[open..], &close).map_or(rest.len() - open, |p| p + close.len())
        } else if rest[0] == '\'' && is_char_literal(rest) {
            i + 1 + quoted_len(&rest[1..], '\'')
        } else {
            out.push(rest[0]);
            i += 1;
            continue;
        };
        let end = end.min(chars.len());
        out.extend(chars[i..end].iter().map(|&c| blank(c)));
        i = end;
    }
    out
}

fn find(hay: &[char], needle: &[char]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Characters up to and including the closing `quote`, escapes skipped.
fn quoted_len(rest: &[char], quote: char) -> usize {
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            '\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    rest.len()
}

/// `'x'` or `'\n'`, not a lifetime `'a`.
fn is_char_literal(rest: &[char]) -> bool {
    match rest.get(1) {
        Some('\\') => true,
        Some(_) => rest.get(2) == Some(&'\''),
        None => false,
    }
}

/// The modules a file names through `crate::…` (groups included). In
/// these flat files `super::` is the crate root, except in a file's own
/// `mod tests`, where it is the file itself; the root's relative `use x::`
/// names a module as `crate::x::` does.
fn imports(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let tests_at = code.find("mod tests").unwrap_or(code.len());
    if code.match_indices("super::").any(|(at, _)| at < tests_at) {
        out.insert("lib".to_string());
    }
    for line in code.lines() {
        let line = line.trim_start().trim_start_matches("pub ");
        if let Some(path) = line.strip_prefix("use ") {
            let first: String = path
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if known.contains(&first) {
                out.insert(first);
            }
        }
    }
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `vessel_crate::`, not ours
        }
        let rest = &code[at + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .map(str::trim)
                .collect(),
            None => vec![rest],
        };
        for name in names {
            let ident: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if known.contains(&ident) {
                out.insert(ident);
            }
        }
    }
    out
}

/// A cycle in `graph`, as the path around it, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut around = path[start..].to_vec();
            around.push(node.to_string());
            return Some(around);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

/// Each function's name and length in lines, from its `fn` line to its
/// closing brace.
fn function_lengths(code: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(at) = line.find("fn ") else {
            continue;
        };
        if at > 0 && !line[..at].ends_with(' ') {
            continue;
        }
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let mut depth = 0usize;
        let mut opened = false;
        'lines: for (n, l) in lines.iter().enumerate().skip(start) {
            for c in l.chars() {
                match c {
                    // A declaration without a body (in a trait).
                    ';' if !opened => break 'lines,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => {
                        depth -= 1;
                        if opened && depth == 0 {
                            out.push((name.clone(), n - start + 1));
                            break 'lines;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

#[test]
fn the_rules_see_what_they_should() {
    let code = code_only("let s = \"{ // not code\"; // {\nlet c = '{'; fn f<'a>() {}\n");
    assert!(
        !code.contains("not code") && !code.contains("'{'"),
        "{code}"
    );
    assert_eq!(code.lines().count(), 2);
    let known: BTreeSet<String> = ["ctx", "error", "ssh", "lib"].map(String::from).into();
    let found = imports(
        "use crate::ctx::Ctx;\nuse crate::{error::CliError, ssh};\nvessel_crate::x;\nsuper::f();",
        &known,
    );
    assert_eq!(found, known);
    let tests_only = imports("pub use ssh::x;\nmod tests {\n use super::*;\n}", &known);
    assert_eq!(tests_only, ["ssh".to_string()].into());
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(cycle(&graph).unwrap(), ["a", "b", "a"]);
    let lengths = function_lengths(&code_only("fn one() {\n    x();\n}\nfn two();\n"));
    assert_eq!(lengths, [("one".to_string(), 3)]);
}

#[test]
fn no_file_of_the_cli_imports_one_that_imports_it_back() {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    assert!(known.contains("commands"), "found no sources: {known:?}");
    let graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|(name, text)| {
            let mut to = imports(&code_only(text), &known);
            to.remove(name);
            (name.clone(), to)
        })
        .collect();
    if let Some(around) = cycle(&graph) {
        panic!(
            "an import cycle between cli/src files: {}",
            around.join(" → ")
        );
    }
}

#[test]
fn every_function_fits_on_a_screen_or_two() {
    let mut long = Vec::new();
    for (module, text) in modules() {
        for (name, lines) in function_lengths(&code_only(&text)) {
            if lines > MAX_FN_LINES {
                long.push(format!("{module}::{name}: {lines} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them into named steps):\n  {}",
        long.join("\n  ")
    );
}
