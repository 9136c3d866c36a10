//! The shape of the code, held by tests (issue 11): no library function longer than
//! [`MAX_FN_LINES`] unless a comment right above it says why ("Long on purpose: …"), and no
//! cycle of imports between the files of a crate (a file that uses another file's items
//! never gets used back by it, directly or through others), no agent file over
//! [`MAX_AGENT_FILE_LINES`] lines and no `lvs-proto` file with more than
//! [`MAX_PROTO_CODE_LINES`] lines of code before its tests.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a function may be without a reason.
const MAX_FN_LINES: usize = 80;

/// The longest an agent source file may be, its unit tests included: a newcomer reads one
/// file for one responsibility.
const MAX_AGENT_FILE_LINES: usize = 400;

/// The longest the code of a `lvs-proto` file may be before its unit tests: the contract's
/// data types, split by topic.
const MAX_PROTO_CODE_LINES: usize = 600;

/// The library crates' source folders.
const CRATES: [&str; 6] = ["proto/src", "ipvs/src", "controller/src", "agent/src", "lab/src", "lvsctl/src"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every Rust file of the library crates ([`CRATES`]) with its text.
fn library_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for c in CRATES {
        rust_files(&root().join(c), &mut files);
    }
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
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

/// A file parsed, with its unit tests (`#[cfg(test)]` items) left out.
struct Source {
    /// Its lines, for the comments syn does not keep ("Long on purpose").
    lines: Vec<String>,
    /// Its items, tests left out.
    items: Vec<syn::Item>,
}

fn parse(text: &str) -> Source {
    let file = syn::parse_file(text).unwrap_or_else(|e| panic!("does not parse: {e}"));
    let is_test = |attrs: &[syn::Attribute]| {
        attrs.iter().any(|a| {
            a.path().is_ident("cfg")
                && a.meta.require_list().is_ok_and(|l| l.tokens.to_string().contains("test"))
        })
    };
    let items = file.items.into_iter().filter(|i| !is_test(item_attrs(i))).collect();
    Source { lines: text.lines().map(String::from).collect(), items }
}

fn item_attrs(i: &syn::Item) -> &[syn::Attribute] {
    match i {
        syn::Item::Fn(x) => &x.attrs,
        syn::Item::Mod(x) => &x.attrs,
        syn::Item::Impl(x) => &x.attrs,
        syn::Item::Use(x) => &x.attrs,
        syn::Item::Trait(x) => &x.attrs,
        syn::Item::Const(x) => &x.attrs,
        syn::Item::Static(x) => &x.attrs,
        syn::Item::Struct(x) => &x.attrs,
        syn::Item::Enum(x) => &x.attrs,
        _ => &[],
    }
}

/// `(name, first line (0-based), length in lines)` of every function with a body: free
/// functions, methods, trait methods with a default body, nested ones; `const`, `unsafe`,
/// `async` and `extern` alike. From the `fn` line to its closing brace.
fn functions(src: &Source) -> Vec<(String, usize, usize)> {
    struct Fns(Vec<(String, usize, usize)>);
    impl Fns {
        fn add(&mut self, sig: &syn::Signature, body: &syn::Block) {
            let start = sig.fn_token.span.start().line;
            let end = body.brace_token.span.close().end().line;
            self.0.push((sig.ident.to_string(), start - 1, end - start + 1));
        }
    }
    impl<'a> syn::visit::Visit<'a> for Fns {
        fn visit_item_fn(&mut self, f: &'a syn::ItemFn) {
            self.add(&f.sig, &f.block);
            syn::visit::visit_item_fn(self, f);
        }
        fn visit_impl_item_fn(&mut self, f: &'a syn::ImplItemFn) {
            self.add(&f.sig, &f.block);
            syn::visit::visit_impl_item_fn(self, f);
        }
        fn visit_trait_item_fn(&mut self, f: &'a syn::TraitItemFn) {
            if let Some(b) = &f.default {
                self.add(&f.sig, b);
            }
            syn::visit::visit_trait_item_fn(self, f);
        }
    }
    let mut v = Fns(Vec::new());
    for i in &src.items {
        syn::visit::Visit::visit_item(&mut v, i);
    }
    v.0
}

/// Lines of `text` before its first `#[cfg(test)]` item (all of them when it has none), as
/// syn sees the items: a `#[cfg(test)]` inside a string or a comment does not count.
fn code_lines(text: &str) -> usize {
    let file = syn::parse_file(text).unwrap_or_else(|e| panic!("does not parse: {e}"));
    let is_test = |attrs: &[syn::Attribute]| {
        attrs.iter().any(|a| {
            a.path().is_ident("cfg")
                && a.meta.require_list().is_ok_and(|l| l.tokens.to_string().contains("test"))
        })
    };
    file.items.iter().find(|i| is_test(item_attrs(i))).and_then(|i| item_attrs(i).first()).map_or(
        text.lines().count(),
        |a| {
            use syn::spanned::Spanned;
            a.span().start().line - 1
        },
    )
}

#[test]
fn no_agent_file_and_no_proto_file_is_over_its_limit() {
    let mut over = Vec::new();
    let mut files = Vec::new();
    rust_files(&root().join("agent/src"), &mut files);
    for f in &files {
        let n = std::fs::read_to_string(f).unwrap().lines().count();
        if n > MAX_AGENT_FILE_LINES {
            over.push(format!("{}: {n} lines (agent files: at most {MAX_AGENT_FILE_LINES})", f.display()));
        }
    }
    let mut files = Vec::new();
    rust_files(&root().join("proto/src"), &mut files);
    for f in &files {
        let n = code_lines(&std::fs::read_to_string(f).unwrap());
        if n > MAX_PROTO_CODE_LINES {
            over.push(format!(
                "{}: {n} lines before its tests (proto files: at most {MAX_PROTO_CODE_LINES})",
                f.display()
            ));
        }
    }
    assert!(over.is_empty(), "split these by responsibility:\n{}", over.join("\n"));
}

#[test]
fn the_size_check_counts_code_up_to_the_tests_only() {
    let code =
        "pub fn a() {}\n\n/// #[cfg(test)] in a doc comment\npub fn b() { let _ = \"#[cfg(test)]\"; }\n";
    assert_eq!(code_lines(code), 4);
    let with_tests = format!("{code}\n#[cfg(test)]\nmod tests {{\n    fn t() {{}}\n}}\n");
    assert_eq!(code_lines(&with_tests), 5, "the blank line before the tests counts, the tests do not");
}

#[test]
fn no_library_function_is_long_without_saying_why() {
    let mut long = Vec::new();
    for (f, text) in library_sources() {
        let src = parse(&text);
        for (name, start, len) in functions(&src) {
            let reason = src.lines[..start].iter().rev().take(6).any(|l| l.contains("Long on purpose"));
            if len > MAX_FN_LINES && !reason {
                long.push(format!("{}:{} fn {name}: {len} lines", f.display(), start + 1));
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
fn the_length_check_sees_every_kind_of_long_function() {
    let body: String = (0..MAX_FN_LINES).map(|i| format!("    let x{i} = {i};\n")).collect();
    let text = format!(
        "pub async fn big() {{\n{body}}}\n\
         pub const fn konst() -> u32 {{\n{body}    0\n}}\n\
         unsafe fn raw() {{\n{body}}}\n\
         trait T {{ fn decl(&self); fn provided(&self) {{\n{body}    }}\n}}\n\
         impl S {{ fn method(&self) {{\n{body}    }}\n}}\n\
         fn braces() {{ let s = \"}}}}}}\"; }}\n\
         fn after() {{\n{body}}}\n\
         #[cfg(test)]\nmod tests {{ fn test_only() {{\n{body}}} }}\n"
    );
    let f = functions(&parse(&text));
    let names: Vec<&str> = f.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["big", "konst", "raw", "provided", "method", "braces", "after"]);
    assert_eq!(f[0], ("big".to_string(), 0, MAX_FN_LINES + 2));
    assert!(f.iter().filter(|(n, _, _)| *n != "braces").all(|(_, _, len)| *len > MAX_FN_LINES), "{f:?}");
    // Braces inside a string neither end `braces` early nor swallow `after`.
    let braces = f.iter().find(|(n, _, _)| n == "braces").unwrap();
    assert_eq!(braces.2, 1);
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

/// The modules of the crate a file refers to, by any path: `use` trees (nested groups
/// included) and paths in code, starting with `crate::`, `super::`, `self::`, or the name of
/// a child module (`use names::X`, `checks::run()`). Each resolves to the longest module
/// that exists.
fn references(module: &str, src: &Source, known: &BTreeSet<String>) -> BTreeSet<String> {
    struct Refs<'k> {
        here: Vec<String>,
        known: &'k BTreeSet<String>,
        out: BTreeSet<String>,
    }
    impl Refs<'_> {
        /// `segments` as written, resolved against this file's module.
        fn path(&mut self, segments: &[String]) {
            let Some(first) = segments.first() else { return };
            let mut full: Vec<String> = match first.as_str() {
                "crate" => Vec::new(),
                "self" => self.here.clone(),
                "super" => {
                    let mut base = self.here.clone();
                    let mut rest = segments;
                    while rest.first().is_some_and(|s| s == "super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.extend(rest.iter().cloned());
                    return self.resolve(base);
                }
                child => {
                    let mut m = self.here.clone();
                    m.push(child.to_string());
                    if !self.known.contains(&m.join("::")) {
                        return; // a local item, an external crate, std
                    }
                    self.here.clone()
                }
            };
            full.extend(
                segments.iter().skip(usize::from(matches!(first.as_str(), "crate" | "self"))).cloned(),
            );
            self.resolve(full);
        }
        fn resolve(&mut self, full: Vec<String>) {
            if let Some(m) =
                (0..=full.len()).rev().map(|n| full[..n].join("::")).find(|m| self.known.contains(m))
            {
                self.out.insert(m);
            }
        }
        /// Every path a `use` tree spells, groups expanded.
        fn tree(&mut self, prefix: &mut Vec<String>, t: &syn::UseTree) {
            match t {
                syn::UseTree::Path(p) => {
                    prefix.push(p.ident.to_string());
                    self.tree(prefix, &p.tree);
                    prefix.pop();
                }
                syn::UseTree::Name(n) => self.leaf(prefix, n.ident.to_string()),
                syn::UseTree::Rename(r) => self.leaf(prefix, r.ident.to_string()),
                syn::UseTree::Glob(_) => self.path(&prefix.clone()),
                syn::UseTree::Group(g) => g.items.iter().for_each(|i| self.tree(prefix, i)),
            }
        }
        fn leaf(&mut self, prefix: &[String], name: String) {
            let mut p = prefix.to_vec();
            if name != "self" {
                p.push(name);
            }
            self.path(&p);
        }
    }
    impl<'a> syn::visit::Visit<'a> for Refs<'_> {
        fn visit_item_use(&mut self, u: &'a syn::ItemUse) {
            self.tree(&mut Vec::new(), &u.tree);
        }
        fn visit_path(&mut self, p: &'a syn::Path) {
            let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
            if segs.len() > 1 {
                self.path(&segs);
            }
            syn::visit::visit_path(self, p);
        }
        fn visit_macro(&mut self, m: &'a syn::Macro) {
            // Paths inside a macro call's tokens (`format!("{}", crate::x::y())`) are seen as
            // token runs `ident :: ident ...`.
            let toks: Vec<proc_macro2::TokenTree> = m.tokens.clone().into_iter().collect();
            paths_in_tokens(&toks, &mut |segs| self.path(segs));
            syn::visit::visit_macro(self, m);
        }
    }
    let here: Vec<String> = module.split("::").filter(|s| !s.is_empty()).map(String::from).collect();
    let mut v = Refs { here, known, out: BTreeSet::new() };
    for i in &src.items {
        syn::visit::Visit::visit_item(&mut v, i);
    }
    v.out.remove(module);
    v.out
}

/// Runs of `ident :: ident ...` in a token stream, nested groups included.
fn paths_in_tokens(toks: &[proc_macro2::TokenTree], f: &mut dyn FnMut(&[String])) {
    use proc_macro2::TokenTree as T;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            T::Group(g) => {
                let inner: Vec<T> = g.stream().into_iter().collect();
                paths_in_tokens(&inner, f);
                i += 1;
            }
            T::Ident(id) => {
                let mut segs = vec![id.to_string()];
                let mut j = i + 1;
                while j + 2 < toks.len() + 1 {
                    match (&toks.get(j), &toks.get(j + 1), &toks.get(j + 2)) {
                        (Some(T::Punct(a)), Some(T::Punct(b)), Some(T::Ident(n)))
                            if a.as_char() == ':' && b.as_char() == ':' =>
                        {
                            segs.push(n.to_string());
                            j += 3;
                        }
                        _ => break,
                    }
                }
                if segs.len() > 1 {
                    f(&segs);
                }
                i = j;
            }
            _ => i += 1,
        }
    }
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
                    (m.clone(), references(&m, &parse(&std::fs::read_to_string(f).unwrap()), &known))
                })
                .collect();
            (*c, graph)
        })
        .collect()
}

#[test]
fn no_two_files_of_a_crate_import_each_other() {
    let mut found = Vec::new();
    for (c, g) in graphs() {
        // The crate root only declares modules: leave it out, or every file would close a
        // cycle through it.
        let mut g: BTreeMap<String, BTreeSet<String>> = g
            .into_iter()
            .filter(|(m, _)| !m.is_empty())
            .map(|(m, refs)| (m, refs.into_iter().filter(|r| !r.is_empty()).collect()))
            .collect();
        // Every cycle, not just the first: each one found is cut at its last edge.
        while let Some(cyc) = cycle(&g) {
            found.push(format!("{c}: import cycle {}", cyc.join(" → ")));
            let (from, to) = (&cyc[cyc.len() - 2], &cyc[cyc.len() - 1]);
            g.get_mut(from).unwrap().remove(to);
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
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
}

/// Each way a file can name another module of its crate is seen.
#[test]
fn the_import_check_sees_every_form_of_reference() {
    let known: BTreeSet<String> = [
        "",
        "ops",
        "ops::specs",
        "ops::weights",
        "ops::weights::math",
        "fleet",
        "commands",
        "table",
        "view",
        "pki",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let refs = |module: &str, text: &str| -> Vec<String> {
        references(module, &parse(text), &known).into_iter().collect()
    };
    // crate:: and super::, with a group.
    assert_eq!(
        refs("ops::weights", "use crate::fleet::NodeError;\nuse super::{specs, Ctx};"),
        ["fleet", "ops", "ops::specs"]
    );
    // A child module by its bare name, in a use and in code.
    assert_eq!(refs("ops::weights", "use math::ratio;"), ["ops::weights::math"]);
    assert_eq!(refs("ops::weights", "fn f() { math::ratio(1); }"), ["ops::weights::math"]);
    // self::child.
    assert_eq!(refs("ops::weights", "use self::math::ratio;"), ["ops::weights::math"]);
    // A use group over several lines, nested.
    assert_eq!(
        refs(
            "commands",
            "use crate::{\n    fleet::Fleet,\n    ops::{\n        specs::reserve,\n        weights,\n    },\n};"
        ),
        ["fleet", "ops::specs", "ops::weights"]
    );
    // A path in code and one inside a macro call.
    assert_eq!(refs("commands", "fn f() { let t = crate::table::new(); }"), ["table"]);
    assert_eq!(refs("commands", "fn f() { println!(\"{}\", crate::view::show()); }"), ["view"]);
    // super::super.
    assert_eq!(refs("ops::weights::math", "use super::super::specs::X;"), ["ops::specs"]);
    // Strings, comments, external crates and test modules are not references.
    assert!(
        refs("commands", "// use crate::pki;\nfn f() { let _ = \"crate::pki::x\"; std::mem::drop(1); }")
            .is_empty()
    );
    assert!(refs("commands", "#[cfg(test)]\nmod tests { use crate::pki::Pki; }").is_empty());
}

/// The cycle the line-matching checker missed: a parent module that uses its children by
/// bare name, and children that use the parent through `super::`.
#[test]
fn the_import_check_sees_a_parent_child_cycle() {
    let known: BTreeSet<String> = ["validate", "validate::names"].into_iter().map(String::from).collect();
    let mut g = BTreeMap::new();
    g.insert(
        "validate".to_string(),
        references("validate", &parse("mod names;\npub use names::MAX;"), &known),
    );
    g.insert(
        "validate::names".to_string(),
        references("validate::names", &parse("use super::Validator;"), &known),
    );
    assert_eq!(cycle(&g).unwrap(), ["validate", "validate::names", "validate"]);
}

/// The one-word doc comments of `text`, as `line: comment`: a `///` block of one line that
/// is a single plain word (`/// Why.`, `/// Node.`), which says no more than the item's name.
/// A single code token says something the name does not (`/// RIP:port.` gives the form, a
/// TOML table's name in backticks gives where it is written) and passes.
fn one_word_docs(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let is_doc = |i: usize| lines.get(i).is_some_and(|l| l.trim_start().starts_with("///"));
    (0..lines.len())
        .filter(|&i| is_doc(i) && !(i > 0 && is_doc(i - 1)) && !is_doc(i + 1))
        .filter(|&i| {
            let words = lines[i].trim_start().trim_start_matches('/').trim();
            let plain =
                |w: &str| w.trim_end_matches('.').chars().all(|c| c.is_alphabetic() || c == '-' || c == '\'');
            !words.is_empty() && words.split_whitespace().count() == 1 && plain(words)
        })
        .map(|i| format!("{}: {}", i + 1, lines[i].trim()))
        .collect()
}

#[test]
fn the_one_word_check_sees_a_one_word_comment_and_only_that() {
    let src = "/// Why.\nsource: E,\n/// The file it reads.\npath: P,\n/// A long\n/// two-line one.\nx: u8,\n/// RIP:port.\nd: A,\n";
    assert_eq!(one_word_docs(src), vec!["1: /// Why.".to_string()]);
}

#[test]
fn no_doc_comment_is_one_word() {
    let mut bare = Vec::new();
    for (f, text) in library_sources() {
        bare.extend(one_word_docs(&text).into_iter().map(|l| format!("{}:{l}", f.display())));
    }
    assert!(bare.is_empty(), "say what the name does not, or make the item private:\n{}", bare.join("\n"));
}
