//! Reading a definition file: TOML syntax, schema, unknown keys, and locating key paths.
//!
//! The TOML is parsed once into a spanned tree; the same tree feeds serde and answers
//! "which line is `services[0].real_servers[1].weight` on?" for every later diagnostic.
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::definition::Definition;
use crate::diagnostics::{Diagnostic, KeyPath, Location, Segment};

/// A parsed definition file, with the spans needed to locate diagnostics.
pub struct Source<'a> {
    text: &'a str,
    tree: Option<Spanned<DeTable<'a>>>,
}

/// The outcome of [`Source::parse`].
pub struct Parsed<'a> {
    /// The source, for locating later diagnostics.
    pub source: Source<'a>,
    /// The definition, when the file is syntactically and structurally sound.
    pub definition: Option<Definition>,
    /// Syntax, schema and unknown-key findings.
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Source<'a> {
    /// Parse `text`: TOML syntax, then the schema, collecting every unknown key.
    pub fn parse(text: &'a str) -> Parsed<'a> {
        let tree = match DeTable::parse(text) {
            Ok(t) => t,
            Err(e) => {
                let mut d = Diagnostic::error(
                    "toml-syntax",
                    KeyPath::root(),
                    e.message().trim().to_owned(),
                    "fix the TOML syntax at the position shown",
                );
                d.location = e.span().map(|s| location_of(text, s.start));
                return Parsed {
                    source: Source { text, tree: None },
                    definition: None,
                    diagnostics: vec![d],
                };
            }
        };
        let mut diagnostics = Vec::new();
        let mut unknown = Vec::new();
        let de = toml::de::Deserializer::from(tree.clone());
        // The tracker remembers where serde was when a value had the wrong type, so the
        // message names `services[0].real_servers[0].weight` rather than the whole file.
        let mut track = serde_path_to_error::Track::new();
        let de = serde_path_to_error::Deserializer::new(de, &mut track);
        let definition = match serde_ignored::deserialize(de, |p| unknown.push(key_path(&p))) {
            Ok(d) => Some(d),
            Err(e) => {
                let e: toml::de::Error = e;
                let mut d = Diagnostic::error(
                    "schema",
                    tracked_path(&track.path()),
                    e.message().trim().to_owned(),
                    "see deploy/examples/seed.toml for the expected shape",
                );
                d.location = e.span().map(|s| location_of(text, s.start));
                diagnostics.push(d);
                None
            }
        };
        for path in unknown {
            let key = match path.0.last() {
                Some(Segment::Key(k)) => k.clone(),
                _ => path.to_string(),
            };
            diagnostics.push(Diagnostic::error(
                "unknown-key",
                path,
                format!("unknown key `{key}`"),
                "remove it or correct its spelling (keys are snake_case)",
            ));
        }
        let source = Source { text, tree: Some(tree) };
        for d in &mut diagnostics {
            if d.location.is_none() {
                d.location = source.locate(&d.path);
            }
        }
        Parsed { source, definition, diagnostics }
    }

    /// Line and column of the deepest part of `path` present in the file.
    pub fn locate(&self, path: &KeyPath) -> Option<Location> {
        let tree = self.tree.as_ref()?;
        span_of(tree, path).map(|s| location_of(self.text, s.start))
    }
}

/// Span of the key (or array element) at `path`, or of its deepest existing ancestor.
fn span_of(root: &Spanned<DeTable<'_>>, path: &KeyPath) -> Option<Range<usize>> {
    enum Node<'t, 'i> {
        Table(&'t DeTable<'i>),
        Value(&'t DeValue<'i>),
    }
    let mut node = Node::Table(root.get_ref());
    let mut span = None;
    for seg in &path.0 {
        let table = match &node {
            Node::Table(t) => Some(*t),
            Node::Value(DeValue::Table(t)) => Some(t),
            _ => None,
        };
        match (seg, table, &node) {
            (Segment::Key(k), Some(t), _) => {
                let Some((key, value)) = t.iter().find(|(key, _)| key.get_ref().as_ref() == k) else {
                    break;
                };
                span = Some(key.span());
                node = Node::Value(value.get_ref());
            }
            (Segment::Index(i), _, Node::Value(DeValue::Array(a))) => {
                let Some(item) = a.get(*i) else { break };
                span = Some(item.span());
                node = Node::Value(item.get_ref());
            }
            _ => break,
        }
    }
    span
}

/// 1-based line and column of a byte offset.
fn location_of(text: &str, offset: usize) -> Location {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Location { line, column }
}

fn tracked_path(p: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment as S;
    p.iter().fold(KeyPath::root(), |path, seg| match seg {
        S::Seq { index } => path.index(*index),
        S::Map { key } => path.key(key),
        S::Enum { variant } => path.key(variant),
        S::Unknown => path,
    })
}

fn key_path(p: &serde_ignored::Path<'_>) -> KeyPath {
    use serde_ignored::Path;
    match p {
        Path::Root => KeyPath::root(),
        Path::Seq { parent, index } => key_path(parent).index(*index),
        Path::Map { parent, key } => key_path(parent).key(key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            key_path(parent)
        }
    }
}
