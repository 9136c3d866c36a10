//! The shape of the code, held by tests (issue 11): no library function longer than
//! [`MAX_FN_LINES`] unless a comment right above it says why ("Long on purpose: …"), and no
//! cycle of imports between the files of a crate (a file that uses another file's items
//! never gets used back by it, directly or through others).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a function may be without a reason.
const MAX_FN_LINES: usize = 80;

/// The library crates' source folders.
const CRATES: [&str; 6] = ["proto/src", "ipvs/src", "controller/src", "agent/src", "lab/src", "lvsctl/src"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The file's code before its unit tests.
fn code(p: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(p).unwrap();
    text.lines().take_while(|l| !l.trim_start().starts_with("#[cfg(test)]")).map(String::from).collect()
}

/// `(name, first line, length)` of every function with a body.
fn functions(lines: &[String]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim_start();
        let l = l.strip_prefix("pub ").or_else(|| l.strip_prefix("pub(crate) ")).unwrap_or(l);
        let l = l.strip_prefix("pub(super) ").unwrap_or(l);
        let l = l.strip_prefix("async ").unwrap_or(l);
        let Some(rest) = l.strip_prefix("fn ") else {
            i += 1;
            continue;
        };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let (mut depth, mut opened, mut j) = (0i32, false, i);
        while j < lines.len() {
            if !opened && lines[j].trim_end().ends_with(';') {
                break; // a declaration (trait method without a body)
            }
            for c in lines[j].chars() {
                match c {
                    '{' => (depth, opened) = (depth + 1, true),
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth == 0 {
                out.push((name.clone(), i, j - i + 1));
                break;
            }
            j += 1;
        }
        i = j.max(i) + 1;
    }
    out
}

#[test]
fn no_library_function_is_long_without_saying_why() {
    let mut long = Vec::new();
    for c in CRATES {
        let mut files = Vec::new();
        rust_files(&root().join(c), &mut files);
        for f in files {
            let lines = code(&f);
            for (name, start, len) in functions(&lines) {
                let reason = lines[..start].iter().rev().take(4).any(|l| l.contains("Long on purpose"));
                if len > MAX_FN_LINES && !reason {
                    long.push(format!("{}:{} fn {name}: {len} lines", f.display(), start + 1));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these or say why above them (\"Long on purpose: …\"):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_sees_a_long_function() {
    let mut lines = vec!["pub async fn big() {".to_string()];
    lines.extend((0..MAX_FN_LINES).map(|i| format!("    let x{i} = {{ {i} }};")));
    lines.push("}".into());
    lines.push("fn decl(&self);".into());
    lines.push("fn small() { }".into());
    let f = functions(&lines);
    assert_eq!(f[0], ("big".to_string(), 0, MAX_FN_LINES + 2));
    assert_eq!(f[1].0, "small");
}

/// The module path of a source file (`controller/src/ops/specs.rs` → `ops::specs`).
fn module_of(src: &Path, f: &Path) -> String {
    let rel = f.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts.join("::")
}

/// The modules a file refers to: `crate::a::b::Item` and `super::x` paths, resolved to
/// the longest module that exists.
fn references(
    module: &str,
    is_mod_file: bool,
    lines: &[String],
    known: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let parent: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    // `super` of `a/b.rs` is `a`; of `a/b/mod.rs` it is `a` too (mod.rs is `a::b`).
    let sup = if parent.is_empty() { Vec::new() } else { parent[..parent.len() - 1].to_vec() };
    let _ = is_mod_file;
    for l in lines {
        let l = l.trim();
        if l.starts_with("//") {
            continue;
        }
        for (prefix, base) in [("crate::", Vec::new()), ("super::", sup.clone())] {
            let mut rest = l;
            while let Some(i) = rest.find(prefix) {
                let before = rest[..i].chars().last();
                rest = &rest[i + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let path: Vec<&str> = rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or("")
                    .split("::")
                    .collect();
                let mut full: Vec<&str> = base.clone();
                full.extend(path.iter().filter(|s| !s.is_empty()));
                // `use super::{a, b}`: the braces name items or modules of `base`.
                let braces = rest.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
                if let Some(inner) = braces.strip_prefix('{') {
                    let inner = inner.split('}').next().unwrap_or("");
                    for item in inner.split(',') {
                        let item = item.trim().split("::").next().unwrap_or("").trim();
                        let mut with: Vec<&str> = full.clone();
                        with.push(item);
                        out.extend(resolve(&with, known));
                    }
                }
                out.extend(resolve(&full, known));
            }
        }
    }
    out.remove(module);
    out
}

fn resolve(path: &[&str], known: &BTreeSet<String>) -> Option<String> {
    (0..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| known.contains(m))
}

/// A cycle in `graph`, as the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|x| x == m).unwrap();
                    let mut c = stack[from..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str())
            && let Some(c) = visit(n, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// Every crate's file-level import graph.
fn graphs() -> Vec<(&'static str, BTreeMap<String, BTreeSet<String>>)> {
    CRATES
        .iter()
        .map(|c| {
            let src = root().join(c);
            let mut files = Vec::new();
            rust_files(&src, &mut files);
            files.retain(|f| !f.ends_with("main.rs") && !f.starts_with(src.join("bin")));
            let known: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
            let graph = files
                .iter()
                .map(|f| {
                    let m = module_of(&src, f);
                    let is_mod = f.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs");
                    (m.clone(), references(&m, is_mod, &code(f), &known))
                })
                .collect();
            (*c, graph)
        })
        .collect()
}

#[test]
fn no_two_files_of_a_crate_import_each_other() {
    for (c, g) in graphs() {
        // The crate root only declares modules: leave it out, or every file would close a
        // cycle through it.
        let g: BTreeMap<String, BTreeSet<String>> = g
            .into_iter()
            .filter(|(m, _)| !m.is_empty())
            .map(|(m, refs)| (m, refs.into_iter().filter(|r| !r.is_empty()).collect()))
            .collect();
        if let Some(cyc) = cycle(&g) {
            panic!("{c}: import cycle {}", cyc.join(" → "));
        }
    }
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.insert("c".to_string(), BTreeSet::new());
    assert!(cycle(&g).is_none());
    // And the parser finds `crate::` and `super::{…}` references.
    let known: BTreeSet<String> =
        ["ops", "ops::specs", "fleet", "commands"].into_iter().map(String::from).collect();
    let lines = vec!["use crate::fleet::NodeError;".to_string(), "use super::{specs, Ctx};".to_string()];
    let r = references("ops::weights", false, &lines, &known);
    assert_eq!(r, BTreeSet::from(["fleet".to_string(), "ops".to_string(), "ops::specs".to_string()]));
}
