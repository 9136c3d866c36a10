//! What can stop the lab, each with what it was doing.
use std::path::PathBuf;

/// Why the lab could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command the lab runs (`ip`, `chronyd`, the agent) failed or could not start.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr, or why it did not start.
        reason: String,
    },
    /// A file in the lab directory.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The operating system's error, kept as the source of this one.
        source: std::io::Error,
    },
    /// The definition.
    #[error(transparent)]
    Load(#[from] lvs_controller::load::LoadError),
    /// The lab's certificates.
    #[error(transparent)]
    Pki(#[from] lvs_controller::pki::PkiError),
    /// A node the lab cannot build, or a machine it cannot run on.
    #[error("{0}")]
    Setup(String),
    /// Writing the lab's output.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// The lab's result.
pub type Result<T> = std::result::Result<T, LabError>;

/// A file error with its path.
pub fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LabError {
    let path = path.into();
    move |source| LabError::File { path, source }
}
