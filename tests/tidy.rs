//! Source-tree rules that a compiler does not check: every Rust file opens
//! with a `//!` line saying its one job, and SQL is written only in
//! `orchestrator/src/store/` and `orchestrator/src/placement.rs`. Reads files,
//! nothing else: no Docker, no database.

use std::collections::{BTreeMap, BTreeSet};
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

/// Files that still read the wall clock outside a `clock.rs`, each with
/// why. This list must only shrink: the rule fails on a reader not on it,
/// and on an entry whose file no longer reads the clock.
const KNOWN_WALL_CLOCK_READERS: &[(&str, &str)] = &[
    (
        "cli/src/session.rs",
        "a token's expiry is the issuer's wall time; a CLI run lasts seconds",
    ),
    (
        "orchestrator/src/api/auth.rs",
        "token lifetimes are wall time, as jsonwebtoken itself checks them",
    ),
    (
        "orchestrator/src/metrics.rs",
        "the longest wait is measured from `queued_at`, the database's now()",
    ),
    (
        "orchestrator/src/portal/usage.rs",
        "a Prometheus snapshot is stamped in Prometheus's wall time",
    ),
    (
        "orchestrator/src/schedule.rs",
        "cron ticks are the machine's time, as tokio-cron-scheduler runs them",
    ),
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

/// The crates whose files must not import each other in a circle: a leaf
/// (config types, value types, error types) imports nothing above it.
const IMPORT_CRATES: &[&str] = &["orchestrator", "bot", "cli", "api", "common", "testrig"];

/// Files still in an import cycle, being untangled on main (issue 19): the
/// API, the portal and `/metrics` reach into each other, `config.rs` names
/// the portal's `PortalConfig`, and the CLI's commands and their helpers
/// import each other. This list must only shrink: the test fails when a
/// file not on it is in a cycle, and when a file on it no longer is.
const KNOWN_CYCLE_FILES: &[&str] = &[];

/// The text with comments, string and char literals blanked (newlines
/// kept, so line numbers hold), and `#[cfg(test)] mod … { … }` blocks
/// blanked: a test module's imports are not the file's.
fn code_without_tests(text: &str) -> String {
    let s: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    // Blanks keep the byte length, so offsets into the code are offsets
    // into the text.
    let blank = |out: &mut String, c: char| {
        if c == '\n' {
            out.push('\n');
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    };
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < s.len() && s[i] != '\n' {
                blank(&mut out, s[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, s[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"' | '#')) && !ident_before(&s, i) {
            let hashes = s[i + 1..].iter().take_while(|&&h| h == '#').count();
            if s.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            let body_start = i + 2 + hashes;
            let rest: String = s[body_start..].iter().collect();
            let len = rest.find(&close).map_or(rest.len(), |n| n + close.len());
            for &ch in &s[i..(body_start + rest[..len].chars().count()).min(s.len())] {
                blank(&mut out, ch);
            }
            i = body_start + rest[..len].chars().count();
        } else if c == '"' {
            blank(&mut out, c);
            i += 1;
            while i < s.len() && s[i] != '"' {
                let step = if s[i] == '\\' { 2 } else { 1 };
                for &ch in &s[i..(i + step).min(s.len())] {
                    blank(&mut out, ch);
                }
                i += step;
            }
            if i < s.len() {
                out.push(' ');
                i += 1;
            }
        } else if c == '\'' && (next == Some('\\') || s.get(i + 2) == Some(&'\'')) {
            // A char literal, not a lifetime.
            let end = s[i + 1..]
                .iter()
                .skip(1)
                .position(|&ch| ch == '\'')
                .map_or(s.len(), |p| i + 2 + p + 1);
            for &ch in &s[i..end.min(s.len())] {
                blank(&mut out, ch);
            }
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    blank_test_modules(&out)
}

fn ident_before(s: &[char], i: usize) -> bool {
    i > 0 && is_ident(s[i - 1])
}

/// Blanks each `#[cfg(test)] mod name { … }` (code already without
/// comments and strings, so braces balance).
fn blank_test_modules(code: &str) -> String {
    let text = code;
    let mut blanked: Vec<(usize, usize)> = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]").map(|n| n + from) {
        from = at + 1;
        let after = text[at + "#[cfg(test)]".len()..].trim_start();
        let is_mod = after.starts_with("mod ") || after.starts_with("pub mod ");
        let Some(open) = text[at..].find('{').map(|n| n + at) else {
            break;
        };
        if !is_mod || text[at..open].contains(';') {
            continue;
        }
        let mut depth = 0;
        let mut end = text.len();
        for (n, ch) in text[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + n + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        blanked.push((at, end));
        from = end;
    }
    text.char_indices()
        .flat_map(|(i, ch)| {
            let blank = ch != '\n' && blanked.iter().any(|&(a, b)| a <= i && i < b);
            let (c, n) = if blank { (' ', ch.len_utf8()) } else { (ch, 1) };
            std::iter::repeat_n(c, n)
        })
        .collect()
}

/// Every `crate::…` and `super::…` path in the code, grouped uses
/// expanded (`crate::{a, b::{c, d}}` is `a`, `b::c`, `b::d`), as segment
/// lists starting with `crate` or `super`.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let s: Vec<char> = code.chars().collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let starts_word = i == 0 || !(is_ident(s[i - 1]) || s[i - 1] == '$' || s[i - 1] == ':');
        let word: String = s[i..].iter().take_while(|&&c| is_ident(c)).collect();
        if starts_word && (word == "crate" || word == "super") {
            let mut j = i + word.len();
            let mut found = Vec::new();
            path_tail(&s, &mut j, vec![word.clone()], &mut found);
            if found.iter().any(|p| p.len() > 1) {
                paths.extend(found.into_iter().filter(|p| p.len() > 1));
            }
            i = j.max(i + 1);
        } else {
            i += word.len().max(1);
        }
    }
    paths
}

fn skip_ws(s: &[char], j: &mut usize) {
    while *j < s.len() && s[*j].is_whitespace() {
        *j += 1;
    }
}

/// After a segment: more `::segment`s or a `::{group}`; pushes each path.
fn path_tail(s: &[char], j: &mut usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        let mut k = *j;
        skip_ws(s, &mut k);
        if !(s.get(k) == Some(&':') && s.get(k + 1) == Some(&':')) {
            break;
        }
        k += 2;
        skip_ws(s, &mut k);
        if s.get(k) == Some(&'{') {
            *j = k + 1;
            path_group(s, j, &prefix, out);
            return;
        }
        let word: String = s[k..].iter().take_while(|&&c| is_ident(c)).collect();
        if word.is_empty() {
            break; // `*`, or a turbofish `::<T>`
        }
        if word != "self" {
            prefix.push(word.clone());
        }
        *j = k + word.len();
    }
    out.push(prefix);
}

/// Inside `{ … }`: each entry is a path of its own under `prefix`.
fn path_group(s: &[char], j: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    loop {
        skip_ws(s, j);
        match s.get(*j) {
            None => return,
            Some('}') => {
                *j += 1;
                return;
            }
            Some(',') => *j += 1,
            Some('{') => {
                *j += 1;
                path_group(s, j, prefix, out);
            }
            Some(&c) if is_ident(c) => {
                let word: String = s[*j..].iter().take_while(|&&c| is_ident(c)).collect();
                *j += word.len();
                if word == "as" {
                    // `x as y`: the alias names nothing to import.
                    skip_ws(s, j);
                    *j += s[*j..].iter().take_while(|&&c| is_ident(c)).count();
                    continue;
                }
                let mut path = prefix.to_vec();
                if word != "self" {
                    path.push(word);
                }
                path_tail(s, j, path, out);
            }
            Some(_) => *j += 1,
        }
    }
}

/// The module path a file is (`src/a/b.rs` and `src/a/b/mod.rs` are
/// `a::b`; `lib.rs` and `main.rs` are the root).
fn module_of(rel_in_src: &str) -> Vec<String> {
    let stem = rel_in_src.trim_end_matches(".rs");
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    }
    parts
}

/// The file a path names: the longest module prefix that is a file
/// (`a/b.rs` or `a/b/mod.rs`), else the crate root. `files` are relative
/// to the crate's `src/`.
fn resolve(files: &BTreeSet<String>, module: &[String], path: &[String]) -> Option<String> {
    let mut segments: Vec<String> = Vec::new();
    let mut rest = path;
    if rest.first().is_some_and(|s| s == "crate") {
        rest = &rest[1..];
    } else {
        segments = module.to_vec();
        while rest.first().is_some_and(|s| s == "super") {
            segments.pop()?;
            rest = &rest[1..];
        }
    }
    segments.extend(rest.iter().filter(|s| *s != "self").cloned());
    for n in (1..=segments.len()).rev() {
        let stem = segments[..n].join("/");
        for candidate in [format!("{stem}.rs"), format!("{stem}/mod.rs")] {
            if files.contains(&candidate) {
                return Some(candidate);
            }
        }
    }
    ["lib.rs", "main.rs"]
        .into_iter()
        .find(|root| files.contains(*root))
        .map(str::to_string)
}

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The file graph of one crate's sources (`rel` → text, relative to
/// `src/`), keyed by `prefix` + path. A file naming itself is no edge.
fn import_graph(prefix: &str, sources: &BTreeMap<String, String>) -> Graph {
    let files: BTreeSet<String> = sources.keys().cloned().collect();
    let mut graph = Graph::new();
    for (rel, text) in sources {
        let module = module_of(rel);
        let edges = graph.entry(format!("{prefix}{rel}")).or_default();
        for path in crate_paths(&code_without_tests(text)) {
            if let Some(to) = resolve(&files, &module, &path) {
                if &to != rel {
                    edges.insert(format!("{prefix}{to}"));
                }
            }
        }
    }
    graph
}

/// Each import cycle once, as `a.rs -> b.rs -> a.rs`: for every strongly
/// connected group of files, the shortest way round from its first file.
fn cycles(graph: &Graph) -> Vec<(BTreeSet<String>, String)> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(f) = todo.pop() {
            for to in graph.get(&f).into_iter().flatten() {
                if seen.insert(to.clone()) {
                    todo.push(to.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|f| (f, reach(f))).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut found = Vec::new();
    for (file, reached) in &reachable {
        if done.contains(*file) || !reached.contains(*file) {
            continue;
        }
        let group: BTreeSet<String> = reached
            .iter()
            .filter(|other| reachable[other].contains(*file))
            .cloned()
            .collect();
        done.extend(group.iter().cloned());
        found.push((group, shortest_round(graph, file)));
    }
    found
}

/// The shortest path from `start` back to itself, as `a -> b -> a`.
fn shortest_round(graph: &Graph, start: &str) -> String {
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    while let Some(f) = queue.pop_front() {
        for to in graph.get(&f).into_iter().flatten() {
            if to == start {
                let mut way = vec![start.to_string(), f.clone()];
                let mut at = f.clone();
                while let Some(prev) = came_from.get(&at) {
                    way.push(prev.clone());
                    at = prev.clone();
                }
                way.reverse();
                way.push(start.to_string());
                way.dedup();
                return way.join(" -> ");
            }
            if !came_from.contains_key(to) && to != start {
                came_from.insert(to.clone(), f.clone());
                queue.push_back(to.clone());
            }
        }
    }
    start.to_string()
}

#[test]
fn the_import_graph_sees_what_it_should() {
    let paths = |code: &str| -> Vec<String> {
        crate_paths(&code_without_tests(code))
            .into_iter()
            .map(|p| p.join("::"))
            .collect()
    };
    assert_eq!(
        paths("use crate::{a, b::{c, d as e}, f::self};"),
        ["crate::a", "crate::b::c", "crate::b::d", "crate::f"]
    );
    assert_eq!(
        paths("let x = crate::metrics::tick(super::y::Z);"),
        ["crate::metrics::tick", "super::y::Z"]
    );
    assert_eq!(paths("use super::super::x;"), ["super::super::x"]);
    for none in [
        "// crate::a in a comment",
        "let s = \"crate::a\";",
        "pub(crate) fn f() {}",
        "mod a;",
        "macro_rules! m { () => { $crate::a } }",
        "#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::a;\n}\n",
    ] {
        assert!(paths(none).is_empty(), "{none}: {:?}", paths(none));
    }
    assert_eq!(
        paths("fn f<'a>(c: char) { let q = '\"'; crate::a::b(c); }"),
        ["crate::a::b"]
    );

    // A tiny crate: a.rs → b/mod.rs → b/c.rs → a.rs is a cycle; d.rs is not
    // in it (it only imports); lib.rs is the root an item path falls to.
    let sources: BTreeMap<String, String> = [
        (
            "lib.rs",
            "//! Root.\nmod a;\nmod b;\nmod d;\npub struct Root;\n",
        ),
        ("a.rs", "use crate::b::Thing;\n"),
        (
            "b/mod.rs",
            "pub mod c;\npub use c::Thing;\nfn f() { self::c::g(); super::Root; }\n",
        ),
        ("b/c.rs", "use crate::{a::*, Root};\npub struct Thing;\n"),
        (
            "d.rs",
            "use crate::{a, b::c::Thing};\n#[cfg(test)]\nmod tests { use crate::d; }\n",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let graph = import_graph("x/src/", &sources);
    let edges = |f: &str| {
        graph[&format!("x/src/{f}")]
            .iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(edges("a.rs"), ["x/src/b/mod.rs"]);
    assert_eq!(
        edges("b/mod.rs"),
        ["x/src/lib.rs"],
        "`c::` is no crate path"
    );
    assert_eq!(edges("b/c.rs"), ["x/src/a.rs", "x/src/lib.rs"]);
    assert_eq!(edges("d.rs"), ["x/src/a.rs", "x/src/b/c.rs"]);
    assert!(cycles(&graph).is_empty(), "{:?}", cycles(&graph));

    let mut knotted = sources.clone();
    knotted.insert(
        "b/mod.rs".into(),
        "pub mod c;\nuse crate::b::c::Thing;\n".into(),
    );
    let found = cycles(&import_graph("x/src/", &knotted));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].1,
        "x/src/a.rs -> x/src/b/mod.rs -> x/src/b/c.rs -> x/src/a.rs"
    );
    assert_eq!(found[0].0.len(), 3);
}

#[test]
fn files_import_no_cycles() {
    let mut graph = Graph::new();
    for krate in IMPORT_CRATES {
        let src = format!("{krate}/src/");
        let sources: BTreeMap<String, String> = rust_files(&[krate])
            .into_iter()
            .filter_map(|f| {
                let rel = f.strip_prefix(&src)?.to_string();
                Some((rel, read(&f)))
            })
            .collect();
        graph.extend(import_graph(&src, &sources));
    }
    assert!(
        graph.contains_key("orchestrator/src/config.rs"),
        "the walk found no orchestrator sources"
    );
    let found = cycles(&graph);
    let mut problems = Vec::new();
    let new: Vec<&String> = found
        .iter()
        .filter(|(group, _)| {
            group
                .iter()
                .any(|f| !KNOWN_CYCLE_FILES.contains(&f.as_str()))
        })
        .map(|(_, round)| round)
        .collect();
    if !new.is_empty() {
        problems.push(format!(
            "files import each other in a circle: move what both need into a leaf \
             module that imports neither:\n  {}",
            new.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    let untangled: Vec<&str> = KNOWN_CYCLE_FILES
        .iter()
        .copied()
        .filter(|known| !found.iter().any(|(group, _)| group.contains(*known)))
        .collect();
    if !untangled.is_empty() {
        problems.push(format!(
            "these files are no longer in an import cycle (or are gone): remove them \
             from KNOWN_CYCLE_FILES in tests/tidy.rs:\n  {}",
            untangled.join("\n  ")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Files whose errors still print their source in their own message too.
/// The contract's `ClientError` (`Transport`, `Decode`) is shown as is by
/// older clients; every front door of ours prints it through a chain that
/// says a repeated cause once. This list must only shrink.
const KNOWN_SOURCE_TWICE: &[&str] = &["api/src/client.rs"];

/// Lines (1-based) of `#[error("…")]` attributes that interpolate a field
/// which is also the error's source (`#[from]`, `#[source]`, or a field
/// named `source`, which thiserror takes as one): printing the chain would
/// say that cause twice. `Display` says what failed, `source()` says why.
fn source_printed_twice(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if !line.trim_start().starts_with("#[error(") || line.contains("transparent") {
            continue;
        }
        let rest = lines[n..].join("\n");
        let Some((attribute, item)) = split_attribute(&rest) else {
            continue;
        };
        let named = named_in_message(attribute);
        if source_fields(item).iter().any(|f| named.contains(f)) {
            found.push(n + 1);
        }
    }
    found
}

/// `#[error(…)]` and the text after it (the variant or struct it is on).
fn split_attribute(text: &str) -> Option<(&str, &str)> {
    let code = code_without_tests(text);
    let mut depth = 0;
    for (i, c) in code.char_indices() {
        match c {
            '[' | '(' | '{' => depth += 1,
            ']' | ')' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&text[..=i], &text[i + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

/// The fields a message names: `{0}`, `{name}`, `{name:?}` in its format
/// string, and `.0` / `.name` in further arguments.
fn named_in_message(attribute: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut rest = attribute;
    while let Some(open) = rest.find('{') {
        let hole: String = rest[open + 1..]
            .chars()
            .take_while(|&c| is_ident(c))
            .collect();
        if !hole.is_empty() {
            named.insert(hole);
        }
        rest = &rest[open + 1..];
    }
    if let Some(end) = attribute.rfind('"') {
        let args = &attribute[end..];
        for (at, _) in args.match_indices('.') {
            let field: String = args[at + 1..]
                .chars()
                .take_while(|&c| is_ident(c))
                .collect();
            if !field.is_empty() {
                named.insert(field);
            }
        }
    }
    named
}

/// The source fields of the first variant or struct in `item`: tuple
/// fields by index, named fields by name.
fn source_fields(item: &str) -> Vec<String> {
    let code = code_without_tests(item);
    let Some(open) = code.find(['(', '{', ',', ';']) else {
        return Vec::new();
    };
    let tuple = match code[open..].chars().next() {
        Some('(') => true,
        Some('{') => false,
        _ => return Vec::new(), // a unit variant
    };
    // Split the fields at top-level commas, reading attributes from `item`
    // itself (code_only blanked nothing inside `#[…]` but strings).
    let mut fields = Vec::new();
    let mut depth = 0;
    let mut start = open + 1;
    for (i, c) in code[open..].char_indices().map(|(i, c)| (i + open, c)) {
        match c {
            '(' | '{' | '[' | '<' => depth += 1,
            ')' | '}' | ']' | '>' => {
                depth -= 1;
                if depth == 0 {
                    fields.push(&item[start..i]);
                    break;
                }
            }
            ',' if depth == 1 => {
                fields.push(&item[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.trim().is_empty())
        .filter_map(|(n, f)| {
            let is_source = f.contains("#[from]") || f.contains("#[source]");
            if tuple {
                return is_source.then(|| n.to_string());
            }
            let decl = f.rsplit(']').next().unwrap_or(f);
            let name = decl
                .split(':')
                .next()?
                .trim()
                .trim_start_matches("pub ")
                .trim();
            (is_source || name == "source").then(|| name.to_string())
        })
        .collect()
}

#[test]
fn the_error_rule_sees_what_it_should() {
    for twice in [
        "#[error(\"cannot read {path}: {source}\")]\nRead { path: PathBuf, source: io::Error },",
        "#[error(\"database: {0}\")]\nDatabase(#[from] sqlx::Error),",
        "#[error(\"not a URL: {0:?}\")]\nUrl(#[source] url::ParseError),",
        "#[error(\"{key}: {why}\")]\nCron {\n    key: String,\n    #[source]\n    why: CronError,\n},",
        "#[error(\"bad: {}\", .0)]\npub struct Bad(#[source] io::Error);",
        "#[error(\n    \"multi-line {1}\"\n)]\nTwo(String, #[from] io::Error),",
    ] {
        assert_eq!(source_printed_twice(twice), vec![1], "{twice}");
    }
    for once in [
        "#[error(\"cannot read {path}\")]\nRead { path: PathBuf, source: io::Error },",
        "#[error(\"{0}\")]\nRefused(String),",
        "#[error(transparent)]\nHost(#[from] HostError),",
        "#[error(\"timed out after {0:?}\")]\nTimeout(Duration),",
        "#[error(\"host {host}\")]\nDocker { host: String, #[source] source: DockerError },",
        "#[error(\"{0} lines\")]\nLines(usize, #[source] io::Error),",
        "#[error(\"gone\")]\nGone,\n#[error(\"{0}\")]\nOther(String),",
    ] {
        assert!(source_printed_twice(once).is_empty(), "{once}");
    }
}

#[test]
fn no_error_prints_its_source_twice() {
    let files = rust_files(IMPORT_CRATES);
    let twice: Vec<(String, Vec<usize>)> = files
        .into_iter()
        .filter(|f| f.contains("/src/"))
        .filter_map(|f| {
            let lines = source_printed_twice(&read(&f));
            (!lines.is_empty()).then_some((f, lines))
        })
        .collect();
    let mut problems = Vec::new();
    let new: Vec<String> = twice
        .iter()
        .filter(|(f, _)| !KNOWN_SOURCE_TWICE.contains(&f.as_str()))
        .flat_map(|(f, lines)| lines.iter().map(move |l| format!("{f}:{l}")))
        .collect();
    if !new.is_empty() {
        problems.push(format!(
            "these errors print their source in their message and again as the \
             source: say what failed, and let the chain say why:\n  {}",
            new.join("\n  ")
        ));
    }
    let cleaned: Vec<&str> = KNOWN_SOURCE_TWICE
        .iter()
        .copied()
        .filter(|known| !twice.iter().any(|(f, _)| f == known))
        .collect();
    if !cleaned.is_empty() {
        problems.push(format!(
            "these files no longer print a source twice (or are gone): remove them \
             from KNOWN_SOURCE_TWICE in tests/tidy.rs:\n  {}",
            cleaned.join("\n  ")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
