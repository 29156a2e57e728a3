//! The core's top-level modules import only downward: each sits in a
//! layer and may use only modules of lower layers. This reads the sources
//! (`crate::name` paths outside test code) and fails on any import that
//! goes sideways or up, naming the file. ARCHITECTURE.md shows the same
//! layers.

use std::collections::BTreeSet;
use std::path::Path;

/// Lowest first. Modules of one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &[
        "time",
        "ids",
        "queue",
        // `switchboard_service::stanza`, re-exported in lib.rs.
        "stanza",
        "metrics",
        "debug_log",
        "throttle",
        "auth_delay",
        "memory",
        "lifecycle",
        "sasl",
    ],
    &["metered", "fast"],
    &["tls"],
    &["stream"],
    &["settings", "sessions"],
    &["routing"],
    &["accounts", "notices"],
    &["modules"],
    &["im"],
    &["admin", "services", "features"],
    &["net"],
    &["server"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The `crate::x` names used by non-test code in `text`.
fn imports(text: &str) -> BTreeSet<String> {
    // Test code may use anything: drop everything from the first
    // `#[cfg(test)]` item on.
    let code = text.split("\n#[cfg(test)]").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or_default();
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or_default();
                for part in inner.split(',') {
                    let name = part.trim().split("::").next().unwrap_or_default();
                    if !name.is_empty() {
                        out.insert(name.to_string());
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        }
    }
    out
}

fn visit(dir: &Path, src: &Path, problems: &mut Vec<String>, seen: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, src, problems, seen);
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let test_only =
            name == "tests.rs" || name.ends_with("_tests.rs") || name == "test_support.rs";
        if !name.ends_with(".rs") || test_only {
            continue;
        }
        let rel = path.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        seen.insert(top.clone());
        let Some(mine) = layer_of(&top) else {
            problems.push(format!(
                "{}: module `{top}` is in no layer of tests/layers.rs",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        for used in imports(&text) {
            if used == top || used == "self" || used == "super" {
                continue;
            }
            match layer_of(&used) {
                Some(theirs) if theirs < mine => {}
                Some(_) => problems.push(format!(
                    "{}: `{top}` uses `crate::{used}`, which is not in a lower layer",
                    rel.display()
                )),
                None => {}
            }
        }
    }
}

#[test]
fn core_modules_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    // Re-exports of other crates' modules have no file here.
    let mut seen: BTreeSet<String> = ["stanza".to_string()].into();
    visit(&src, &src, &mut problems, &mut seen);
    assert!(
        problems.is_empty(),
        "imports against the layering:\n{}",
        problems.join("\n")
    );
    // Every layer names real modules only, so the list stays honest.
    for layer in LAYERS {
        for m in *layer {
            assert!(
                seen.contains(*m),
                "tests/layers.rs names `{m}`, which does not exist"
            );
        }
    }
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths() {
    let text = "use crate::{a::B, c};\nfn f() { crate::d::e(); } // crate::f\n#[cfg(test)]\nmod t { use crate::g; }";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["a", "c", "d"]);
}
