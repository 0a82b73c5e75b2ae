//! Source-tree rules that a compiler does not check: every Rust file opens
//! with a `//!` line saying its one job, and SQL is written only in
//! `orchestrator/src/store/` and `orchestrator/src/placement.rs`. Reads files,
//! nothing else: no Docker, no database.

use std::fs;
use std::path::{Path, PathBuf};

/// Where the `//!` rule holds: every crate of ours, the tests and the benches.
/// `api/` and `cli/` may not exist yet; a missing directory is skipped.
const DOC_ROOTS: &[&str] = &[
    "orchestrator",
    "bot",
    "common",
    "api",
    "cli",
    "testrig",
    "tests",
    "bench",
    "fuzz",
];

/// Where the SQL rule holds: the product. The rig, the tests and the benches
/// set up and inspect the database from outside, which is their job.
const SQL_ROOTS: &[&str] = &["orchestrator", "bot", "common", "api", "cli"];

/// The one place for SQL, besides the placement statement.
const STORE_DIR: &str = "orchestrator/src/store/";
const PLACEMENT: &str = "orchestrator/src/placement.rs";

/// Files that still write SQL outside the store, being moved into it
/// (issue 9). This list must only shrink: the test fails when a file not on
/// it has SQL, and when a file on it no longer has any, so remove its line
/// with the change that moves its queries.
const KNOWN_SQL_OUTSIDE_STORE: &[&str] = &[];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.rs` files under `roots`, as repo-relative paths with `/`, sorted.
/// Build output (`target/`) and hidden directories are not sources.
fn rust_files(roots: &[&str]) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    let repo = repo();
    let mut files = Vec::new();
    for root in roots {
        walk(&repo.join(root), &mut files);
    }
    let mut relative: Vec<String> = files
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&repo).expect("under the repo");
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    relative.sort();
    relative
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// Whether the file's first line is a `//!` line with something to say.
fn opens_with_doc(text: &str) -> bool {
    let first = text.trim_start_matches('\u{feff}').lines().next();
    first
        .and_then(|line| line.strip_prefix("//!"))
        .is_some_and(|rest| !rest.trim().is_empty())
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Lines (1-based) of code, not comments, that write SQL through sqlx: any
/// `query…!` macro (`query!`, `query_as!`, `query_scalar!`, `query_file!`,
/// their `_unchecked` forms), and the `sqlx::query…(` / `sqlx::raw_sql(`
/// functions. `reqwest`'s `.query(…)` is neither.
fn sql_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or(code);
        if has_query_macro(code) || code.contains("sqlx::query") || code.contains("sqlx::raw_sql") {
            lines.push(n + 1);
        }
    }
    lines
}

/// `query` starting an identifier that ends in `!`.
fn has_query_macro(code: &str) -> bool {
    code.match_indices("query").any(|(at, _)| {
        let before = code[..at].chars().next_back();
        if before.is_some_and(is_ident) {
            return false;
        }
        let rest = &code[at..];
        let ident_len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        rest[ident_len..].starts_with('!')
    })
}

fn sql_allowed(rel: &str) -> bool {
    rel.starts_with(STORE_DIR) || rel == PLACEMENT
}

/// Where the function-length rule holds: every crate's `src/`.
const LENGTH_ROOTS: &[&str] = &[
    "orchestrator/src",
    "bot/src",
    "common/src",
    "api/src",
    "cli/src",
    "testrig/src",
];

/// The longest a function may be, in lines from `fn` to its closing brace.
const MAX_FN_LINES: usize = 80;

/// Functions that are one SQL statement (or one statement's text and its
/// binds), longer than `MAX_FN_LINES` because the statement is: `file::fn`.
/// `ARCHITECTURE.md` names them too.
const ONE_STATEMENT: &[&str] = &["orchestrator/src/placement.rs::reserve"];

/// Rust source with comments, strings and char literals blanked out (the
/// same length, newlines kept), so braces can be counted.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..].find("*/").map_or(b.len(), |n| i + n + 4);
                blank(&mut out, i, end);
                i = end;
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !is_ident(b[i - 1] as char)) =>
            {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let body = i + 2 + hashes;
                let end = text[body..]
                    .find(&close)
                    .map_or(b.len(), |n| body + n + close.len());
                blank(&mut out, i, end);
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i, j + 1);
                i = j + 1;
            }
            // A char literal ('{', '\n', '\''), not a lifetime ('a).
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                let end = text[i + 2..].find('\'').map_or(b.len(), |n| i + n + 3);
                blank(&mut out, i, end);
                i = end;
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => {
                blank(&mut out, i, i + 3);
                i += 3;
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).expect("blanking keeps UTF-8 boundaries")
}

/// `(name, first line, length in lines)` of every function with a body.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let code = code_only(text);
    let starts: Vec<usize> = std::iter::once(0)
        .chain(code.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |at: usize| starts.partition_point(|s| *s <= at);
    let mut out = Vec::new();
    for (at, _) in code.match_indices("fn ") {
        if at > 0 && is_ident(code.as_bytes()[at - 1] as char) {
            continue;
        }
        let rest = &code[at + 3..];
        let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
        if name.is_empty() {
            continue;
        }
        // The body opens at the first `{` outside the signature's
        // brackets; a `;` first means a declaration without a body.
        let (mut depth, mut open) = (0i32, None);
        for (k, c) in rest.char_indices() {
            match c {
                '(' | '[' | '<' => depth += 1,
                ')' | ']' | '>' if depth > 0 => depth -= 1,
                ';' if depth == 0 => break,
                '{' if depth == 0 => {
                    open = Some(at + 3 + k);
                    break;
                }
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let mut braces = 0;
        let mut close = None;
        for (k, c) in code[open..].char_indices() {
            match c {
                '{' => braces += 1,
                '}' => {
                    braces -= 1;
                    if braces == 0 {
                        close = Some(open + k);
                        break;
                    }
                }
                _ => {}
            }
        }
        if let Some(close) = close {
            out.push((name, line_of(at), line_of(close) - line_of(at) + 1));
        }
    }
    out
}

/// The repo-relative paths `ARCHITECTURE.md`'s module map names: under a
/// `**root/**` line, each `- \`path\` — …` bullet names `root/path`.
fn mapped_files(map: &str) -> Vec<String> {
    let mut root = None;
    let mut out = Vec::new();
    for line in map.lines() {
        if let Some(r) = line.strip_prefix("**").and_then(|l| l.strip_suffix("/**")) {
            root = Some(r.to_string());
        } else if line.starts_with("## ") {
            root = None;
        } else if let (Some(r), Some(rest)) = (&root, line.strip_prefix("- `")) {
            if let Some(path) = rest.split('`').next() {
                out.push(format!("{r}/{path}"));
            }
        }
    }
    out
}

/// Where the map rule holds: every Rust file of ours.
const MAP_ROOTS: &[&str] = &[
    "orchestrator",
    "bot",
    "common",
    "api",
    "cli",
    "testrig",
    "tests",
    "bench",
    "fuzz",
];

#[test]
fn functions_are_short_unless_one_statement() {
    let mut long = Vec::new();
    let mut seen = 0;
    for f in rust_files(LENGTH_ROOTS) {
        for (name, line, len) in functions(&read(&f)) {
            seen += 1;
            let key = format!("{f}::{name}");
            if len > MAX_FN_LINES && !ONE_STATEMENT.contains(&key.as_str()) {
                long.push(format!("{f}:{line} `{name}` is {len} lines"));
            }
        }
    }
    assert!(seen > 500, "the scanner found only {seen} functions");
    assert!(
        long.is_empty(),
        "functions longer than {MAX_FN_LINES} lines (split them into named steps, or list a one-statement function in ONE_STATEMENT and ARCHITECTURE.md):\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn the_map_names_every_source_file() {
    let map = read("ARCHITECTURE.md");
    let named = mapped_files(&map);
    let files = rust_files(MAP_ROOTS);
    let missing: Vec<&String> = files.iter().filter(|f| !named.contains(f)).collect();
    let stale: Vec<&String> = named.iter().filter(|n| !files.contains(n)).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "ARCHITECTURE.md's module map must name every source file, one line each.\nmissing:\n  {}\nnamed but absent:\n  {}",
        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
        stale.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
    );
    for key in ONE_STATEMENT {
        let name = key.rsplit("::").next().unwrap_or(key);
        assert!(
            map.contains(&format!("`{name}`")),
            "ARCHITECTURE.md must name the one-statement function {key}"
        );
    }
}

#[test]
fn the_length_and_map_scanners_see_what_they_should() {
    let text = "fn short() -> Vec<u8> {\n    vec![b'{']\n}\n\nfn long(x: &str) {\n    let s = \"}}}\";\n    let r = r#\"{ \"#;\n    // }\n    if x.is_empty() {\n    }\n}\ntrait T { fn decl(&self); }\n";
    let found = functions(text);
    assert_eq!(
        found,
        vec![("short".to_string(), 1, 3), ("long".to_string(), 5, 7)],
        "{found:?}"
    );
    let map =
        "**orchestrator/src/**\n- `main.rs` — x\n- `api/mod.rs` — y\n\n## Next\n- `not.rs` — z\n";
    assert_eq!(
        mapped_files(map),
        ["orchestrator/src/main.rs", "orchestrator/src/api/mod.rs"]
    );
}

#[test]
fn the_rules_see_what_they_should() {
    // The scanners themselves, so a rule that silently matches nothing
    // cannot pass.
    assert!(opens_with_doc("//! One job.\n\nuse x;\n"));
    assert!(!opens_with_doc("// A plain comment.\n"));
    assert!(!opens_with_doc("//!\n//! Job on the second line.\n"));
    assert!(!opens_with_doc("use x;\n//! Too late.\n"));
    assert!(!opens_with_doc(""));

    for sql in [
        "let r = sqlx::query!(\"SELECT 1\")",
        "sqlx::query_as!(Row, \"SELECT 1\")",
        "    query_scalar!(\"SELECT 1\")",
        "sqlx::query(\"SELECT 1\").execute(&pool)",
        "sqlx::query_as::<_, Row>(\"SELECT 1\")",
        "sqlx::raw_sql(sql)",
        "x = sqlx::query_file!(\"q.sql\"); // a comment",
    ] {
        assert_eq!(sql_lines(sql), vec![1], "{sql}");
    }
    for not_sql in [
        "client.get(url).query(&[(\"query\", q.as_str())])",
        "use bollard::query_parameters::LogsOptions;",
        "// sqlx::query!(\"in a comment\")",
        "//! One PromQL query per sweep.",
        "let query = format!(\"{q}\");",
        "uri.path_and_query()",
    ] {
        assert!(sql_lines(not_sql).is_empty(), "{not_sql}");
    }
    assert!(sql_allowed("orchestrator/src/store/vessels.rs"));
    assert!(sql_allowed(PLACEMENT));
    assert!(!sql_allowed("orchestrator/src/undertaker.rs"));
}

#[test]
fn every_source_file_opens_with_its_doc() {
    let files = rust_files(DOC_ROOTS);
    assert!(
        files.iter().any(|f| f == "orchestrator/src/main.rs"),
        "the walk found no orchestrator sources: {files:?}"
    );
    let missing: Vec<&String> = files.iter().filter(|f| !opens_with_doc(&read(f))).collect();
    assert!(
        missing.is_empty(),
        "these files must open with a `//!` line saying their one job:\n  {}",
        missing
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

#[test]
fn sql_lives_in_the_store() {
    let files = rust_files(SQL_ROOTS);
    let with_sql: Vec<(String, Vec<usize>)> = files
        .into_iter()
        .filter(|f| !sql_allowed(f))
        .filter_map(|f| {
            let lines = sql_lines(&read(&f));
            (!lines.is_empty()).then_some((f, lines))
        })
        .collect();

    let mut problems = Vec::new();
    let new: Vec<String> = with_sql
        .iter()
        .filter(|(f, _)| !KNOWN_SQL_OUTSIDE_STORE.contains(&f.as_str()))
        .map(|(f, lines)| format!("{f}: lines {lines:?}"))
        .collect();
    if !new.is_empty() {
        problems.push(format!(
            "SQL belongs in {STORE_DIR} (or {PLACEMENT}); move these queries there:\n  {}",
            new.join("\n  ")
        ));
    }
    let cleaned: Vec<&str> = KNOWN_SQL_OUTSIDE_STORE
        .iter()
        .copied()
        .filter(|known| !with_sql.iter().any(|(f, _)| f == known))
        .collect();
    if !cleaned.is_empty() {
        problems.push(format!(
            "these files no longer write SQL (or are gone): remove them from \
             KNOWN_SQL_OUTSIDE_STORE in tests/tidy.rs:\n  {}",
            cleaned.join("\n  ")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Where a wall-clock "now" may be read only through a clock: the product
/// crates' `src/` (tests, benches and the rig keep time as they need).
const CLOCK_ROOTS: &[&str] = &["orchestrator", "bot", "cli", "api", "common"];

/// The calls that read the wall clock; `chrono::Utc::now` and
/// `std::time::SystemTime::now` end in these. `Instant::now` is not one:
/// it measures timeouts and latencies, never says what time it is.
const WALL_CLOCK_READS: &[&str] = &["Utc::now", "SystemTime::now", "Local::now"];

/// The reason of the readers found when the rule came in.
const TO_MOVE: &str = "to move behind the clock (issue 19)";

/// Files that still read the wall clock outside a `clock.rs`, each with
/// why. This list must only shrink: the rule fails on a reader not on it,
/// and on an entry whose file no longer reads the clock.
const KNOWN_WALL_CLOCK_READERS: &[(&str, &str)] = &[
    ("cli/src/session.rs", TO_MOVE),
    ("orchestrator/src/api/auth.rs", TO_MOVE),
    ("orchestrator/src/metrics.rs", TO_MOVE),
    ("orchestrator/src/portal/usage.rs", TO_MOVE),
    ("orchestrator/src/prom.rs", TO_MOVE),
    ("orchestrator/src/schedule.rs", TO_MOVE),
];

/// Lines (1-based) of code, not comments, that read the wall clock, up to
/// the file's test module (a line starting with `#[cfg(test)]`): tests may
/// take the machine's time.
fn wall_clock_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or(code);
        if WALL_CLOCK_READS.iter().any(|read| calls(code, read)) {
            lines.push(n + 1);
        }
    }
    lines
}

/// `path` in `code` as a whole path: `MyUtc::now` or `Utc::nowish` is not
/// `Utc::now`.
fn calls(code: &str, path: &str) -> bool {
    code.match_indices(path).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + path.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

fn may_read_the_wall_clock(rel: &str) -> bool {
    rel.ends_with("/clock.rs")
}

#[test]
fn the_wall_clock_rule_sees_what_it_should() {
    for read in [
        "let now = Utc::now();",
        "    let end = chrono::Utc::now().timestamp();",
        "std::time::SystemTime::now()",
        "SystemTime::now().duration_since(UNIX_EPOCH)",
        "let today = Local::now().date_naive();",
        "opt.unwrap_or_else(Utc::now)",
        "let t = Utc::now(); // stamped here",
    ] {
        assert_eq!(wall_clock_lines(read), vec![1], "{read}");
    }
    for not_read in [
        "// Utc::now() in a comment",
        "//! Reads `SystemTime::now()` nowhere but here.",
        "let now = self.clock.now();",
        "let started = Instant::now();",
        "let at = tokio::time::Instant::now();",
        "MyUtc::now()",
        "Utc::nowhere()",
        "SystemTime::UNIX_EPOCH",
    ] {
        assert!(wall_clock_lines(not_read).is_empty(), "{not_read}");
    }
    // A test module at the end may read it; code above it may not.
    let file = "fn a() {}\nlet t = Utc::now();\n#[cfg(test)]\nmod tests {\n    fn t() { Utc::now(); }\n}\n";
    assert_eq!(wall_clock_lines(file), vec![2]);
    assert!(may_read_the_wall_clock("bot/src/clock.rs"));
    assert!(may_read_the_wall_clock("orchestrator/src/clock.rs"));
    assert!(!may_read_the_wall_clock("bot/src/clockwork.rs"));
    assert!(!may_read_the_wall_clock("bot/src/actions.rs"));
}

#[test]
fn the_wall_clock_is_read_only_in_clock_modules() {
    let files: Vec<String> = rust_files(CLOCK_ROOTS)
        .into_iter()
        .filter(|f| {
            CLOCK_ROOTS
                .iter()
                .any(|root| f.starts_with(&format!("{root}/src/")))
        })
        .collect();
    assert!(
        files.iter().any(|f| f == "bot/src/clock.rs"),
        "the walk found no bot sources: {files:?}"
    );
    let readers: Vec<(String, Vec<usize>)> = files
        .into_iter()
        .filter(|f| !may_read_the_wall_clock(f))
        .filter_map(|f| {
            let lines = wall_clock_lines(&read(&f));
            (!lines.is_empty()).then_some((f, lines))
        })
        .collect();

    let mut problems = Vec::new();
    let new: Vec<String> = readers
        .iter()
        .filter(|(f, _)| !KNOWN_WALL_CLOCK_READERS.iter().any(|(k, _)| k == f))
        .map(|(f, lines)| format!("{f}: lines {lines:?}"))
        .collect();
    if !new.is_empty() {
        problems.push(format!(
            "the wall clock is read through a `Clock` (clock.rs), so tests can set the \
             time; pass one to these readers:\n  {}",
            new.join("\n  ")
        ));
    }
    let cleaned: Vec<&str> = KNOWN_WALL_CLOCK_READERS
        .iter()
        .map(|(known, _)| *known)
        .filter(|known| !readers.iter().any(|(f, _)| f == known))
        .collect();
    if !cleaned.is_empty() {
        problems.push(format!(
            "these files no longer read the wall clock (or are gone): remove them from \
             KNOWN_WALL_CLOCK_READERS in tests/tidy.rs:\n  {}",
            cleaned.join("\n  ")
        ));
    }
    let unexplained: Vec<&str> = KNOWN_WALL_CLOCK_READERS
        .iter()
        .filter(|(_, why)| why.trim().is_empty() || why.contains('\n'))
        .map(|(known, _)| *known)
        .collect();
    if !unexplained.is_empty() {
        problems.push(format!(
            "each KNOWN_WALL_CLOCK_READERS entry needs a one-line reason:\n  {}",
            unexplained.join("\n  ")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
