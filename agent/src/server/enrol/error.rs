//! Why enrolment refused a call or could not be served, each with the gRPC status it answers.
use crate::server::credentials::CredentialError;
use std::path::PathBuf;
use tonic::Status;

/// Enrolment failures.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// No code to check against.
    #[error(
        "no pairing code on this node (used, or never made): run `lvs-agent pairing-code --new` on the node"
    )]
    NoCode,
    /// Past its expiry.
    #[error("the pairing code expired {0} s ago: run `lvs-agent pairing-code --new` on the node")]
    Expired(u64),
    /// The secret does not match.
    #[error("wrong pairing code ({0} wrong attempt(s) so far)")]
    Wrong(u32),
    /// Too many wrong secrets from this address lately.
    #[error("too many wrong pairing codes from {0}: try again in {1} ms")]
    Wait(std::net::IpAddr, u128),
    /// The pairing file.
    #[error("{path}: {reason}")]
    File {
        /// `pairing.json`.
        path: PathBuf,
        /// What could not be read or parsed in it.
        reason: String,
    },
    /// The key or the certificate.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

impl From<EnrolError> for Status {
    fn from(e: EnrolError) -> Self {
        match &e {
            EnrolError::NoCode | EnrolError::Expired(_) | EnrolError::Wrong(_) => {
                Status::permission_denied(e.to_string())
            }
            EnrolError::Wait(..) => Status::resource_exhausted(e.to_string()),
            EnrolError::Credential(CredentialError::Refused(_)) => Status::invalid_argument(e.to_string()),
            _ => Status::internal(e.to_string()),
        }
    }
}

/// Why enrolment could not be served.
#[derive(Debug, thiserror::Error)]
pub enum EnrolTransportError {
    /// The key or the pairing file.
    #[error(transparent)]
    Enrol(#[from] EnrolError),
    /// Making the key or the temporary certificate.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// TLS set-up.
    #[error("enrolment TLS: {0}")]
    Tls(String),
    /// The gRPC server.
    #[error("serving enrolment: {0}")]
    Serve(#[from] tonic::transport::Error),
}
