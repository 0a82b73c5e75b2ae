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
