//! The layer rule (ARCHITECTURE.md, "Architecture Invariants"): imports point one way,
//! `http → service → {products, store, engine} → ledger`. Cargo already refuses a circle
//! between crates; these tests pin the direction, read from the manifests and sources
//! themselves:
//! - no crate depends on a farthing crate of a higher layer;
//! - below `http`, no source names axum, hyper, tower or HTTP types;
//! - `http` depends on the service, the pure product rules and the ledger's types, never on the
//!   store or the engine;
//! - inside `http`, only the router (`lib.rs`) and the OpenAPI document (`openapi.rs`) name
//!   `routes`.

use std::path::{Path, PathBuf};

/// The workspace's crates from the bottom layer up; a crate may depend only on crates of a
/// strictly lower layer (or of its own layer, listed in `SAME_LAYER`).
const LAYERS: &[&[&str]] = &[
    &["farthing-ledger"],
    &[
        "farthing-engine",
        "farthing-products",
        "farthing-vouchers",
        "farthing-pcn-sim",
    ],
    &["farthing-store"],
    &["farthing-service"],
    &["farthing-http"],
    &["farthing"],
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&name))
}

/// The `farthing*` crates a manifest's `[dependencies]` name (dev-dependencies left out).
fn farthing_dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut in_dependencies = false;
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && line.starts_with("farthing") {
            let name = line.split(['=', '.', ' ']).next().unwrap();
            found.push(name.to_string());
        }
    }
    found
}

fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("name = "))
        .expect("a package name");
    line.trim_start_matches("name = ")
        .trim_matches('"')
        .to_string()
}

fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_crate_has_a_layer_and_depends_only_downwards() {
    let mut wrong = Vec::new();
    for dir in crate_dirs() {
        let manifest = dir.join("Cargo.toml");
        let name = package_name(&manifest);
        let own = layer_of(&name).unwrap_or_else(|| panic!("{name} has no layer in LAYERS"));
        for dependency in farthing_dependencies(&manifest) {
            let theirs = layer_of(&dependency)
                .unwrap_or_else(|| panic!("{dependency} has no layer in LAYERS"));
            if theirs >= own {
                wrong.push(format!(
                    "{name} (layer {own}) -> {dependency} (layer {theirs})"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies point up or sideways:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_service_layer_sits_on_store_products_and_engine_only() {
    let service = workspace().join("service/Cargo.toml");
    let mut dependencies = farthing_dependencies(&service);
    dependencies.sort();
    assert_eq!(
        dependencies,
        [
            "farthing-engine",
            "farthing-ledger",
            "farthing-products",
            "farthing-store"
        ]
    );
}

#[test]
fn http_reaches_the_store_and_engine_only_through_the_service() {
    let http = workspace().join("http/Cargo.toml");
    let mut dependencies = farthing_dependencies(&http);
    dependencies.sort();
    assert_eq!(
        dependencies,
        ["farthing-ledger", "farthing-products", "farthing-service"]
    );
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
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

#[test]
fn below_http_nothing_names_http_types() {
    let needles = [
        "axum",
        "hyper",
        "tower",
        "http::",
        "StatusCode",
        "HeaderMap",
        "farthing_http",
    ];
    let found: Vec<String> = [
        "ledger", "engine", "products", "vouchers", "store", "service",
    ]
    .iter()
    .flat_map(|krate| rust_files(&workspace().join(krate).join("src")))
    .flat_map(|file| offending_lines(&file, &needles))
    .collect();
    assert!(
        found.is_empty(),
        "a lower layer reaches up:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_router_and_openapi_import_routes() {
    let src = workspace().join("http/src");
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
