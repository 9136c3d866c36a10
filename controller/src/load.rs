//! Load a definition file end to end: read, parse, validate, locate every finding.
use std::path::Path;

use crate::diagnostics::{Diagnostic, Report};
use crate::model::Cluster;
use crate::source::Source;
use crate::validate;

/// Why a definition could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read definition {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The definition breaks rules; the report lists every finding.
    #[error("{0}")]
    Invalid(Report),
}

/// A valid cluster with the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The cluster.
    pub cluster: Cluster,
    /// Warnings (no errors).
    pub report: Report,
}

/// Read and validate `path`.
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| LoadError::Read { file: file.clone(), source })?;
    load_str(&file, &text)
}

/// Validate definition text; `file` names it in messages.
pub fn load_str(file: &str, text: &str) -> Result<Loaded, LoadError> {
    let parsed = Source::parse(text);
    let mut diagnostics = parsed.diagnostics;
    let mut cluster = None;
    if let Some(def) = &parsed.definition {
        match validate::validate(def) {
            Ok((c, warnings)) => {
                diagnostics.extend(warnings);
                cluster = Some(c);
            }
            Err(found) => diagnostics.extend(found),
        }
    }
    for d in &mut diagnostics {
        if d.location.is_none() {
            d.location = parsed.source.locate(&d.path);
        }
    }
    sort(&mut diagnostics);
    let report = Report { file: file.to_owned(), diagnostics };
    match cluster {
        Some(cluster) if report.error_count() == 0 => Ok(Loaded { cluster, report }),
        _ => Err(LoadError::Invalid(report)),
    }
}

fn sort(d: &mut [Diagnostic]) {
    d.sort_by_key(|d| d.location.map(|l| (l.line, l.column)).unwrap_or((usize::MAX, 0)));
}
