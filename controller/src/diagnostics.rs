//! Findings about a definition: what is wrong, where, which rule, and how to fix it.
use std::fmt;

/// One segment of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Where a value sits in the definition, e.g. `services[0].real_servers[1].weight`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    /// The empty path (the whole file).
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path with a key appended.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_owned()));
        p
    }

    /// This path with an index appended.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(file)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Works, but probably not what was meant.
    Warning,
    /// The definition is refused.
    Error,
}

/// A line and column, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// One finding (in JSON: `path` as the dotted text, e.g. `services[0].vip`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Short stable rule name, e.g. `dr-port-mapping`.
    pub rule: &'static str,
    /// Key path of the offending value.
    #[serde(serialize_with = "lvs_proto::reply::as_text")]
    pub path: KeyPath,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// Line and column in the file, when known.
    pub location: Option<Location>,
}

impl Diagnostic {
    /// A new error.
    pub fn error(
        rule: &'static str,
        path: KeyPath,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        debug_assert!(crate::rules::rule(rule).is_some(), "rule `{rule}` is not in rules::RULES");
        Self {
            severity: Severity::Error,
            rule,
            path,
            message: message.into(),
            fix: fix.into(),
            location: None,
        }
    }

    /// A new warning.
    pub fn warning(
        rule: &'static str,
        path: KeyPath,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self { severity: Severity::Warning, ..Self::error(rule, path, message, fix) }
    }
}

/// All findings about one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// The file as the user named it.
    pub file: String,
    /// Findings, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            let sev = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            match d.location {
                Some(l) => write!(f, "{}:{}:{}: ", self.file, l.line, l.column)?,
                None => write!(f, "{}: ", self.file)?,
            }
            writeln!(f, "{sev}[{}]: {}: {}", d.rule, d.path, d.message)?;
            if !d.fix.is_empty() {
                writeln!(f, "  fix: {}", d.fix)?;
            }
        }
        let errors = self.error_count();
        let warnings = self.diagnostics.len() - errors;
        if errors > 0 {
            write!(f, "{}: {errors} error(s), {warnings} warning(s); nothing was changed", self.file)
        } else {
            write!(f, "{}: valid ({warnings} warning(s))", self.file)
        }
    }
}
