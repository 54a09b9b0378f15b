//! The layering rule of `crates/api` (ARCHITECTURE.md, "Architecture Invariant" under
//! `crates/api`), checked on the source: imports point down, so `service/` never names
//! `routes`, axum or HTTP types, and outside `routes/` only the router (`lib.rs`) and the
//! OpenAPI document (`openapi.rs`) name `routes`.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The file's code lines (comments left out) that contain any of `needles`.
fn offending_lines(path: &Path, needles: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .filter(|(_, line)| needles.iter().any(|n| line.contains(n)))
        .map(|(i, line)| format!("{}:{}: {}", path.display(), i + 1, line.trim()))
        .collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn service_never_imports_routes_or_http() {
    let needles = ["routes::", "axum", "http::", "StatusCode", "HeaderMap"];
    let found: Vec<String> = rust_files(&src().join("service"))
        .iter()
        .flat_map(|file| offending_lines(file, &needles))
        .collect();
    assert!(
        found.is_empty(),
        "service/ reaches up:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_router_and_openapi_import_routes() {
    let src = src();
    let allowed = [src.join("lib.rs"), src.join("openapi.rs")];
    let found: Vec<String> = rust_files(&src)
        .iter()
        .filter(|file| !file.starts_with(src.join("routes")) && !allowed.contains(file))
        .flat_map(|file| offending_lines(file, &["routes::"]))
        .collect();
    assert!(
        found.is_empty(),
        "outside routes/ reaches up:\n{}",
        found.join("\n")
    );
}
