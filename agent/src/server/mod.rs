//! The agent's management port: the `listener` (TCP accept, the mutual-TLS handshake and
//! the caps that keep a flood out), `authz` (who may call what), the gRPC service that
//! hands every call to the [`crate::node::Agent`], enrolment by pairing code before the
//! node has a certificate, the node's credentials and their rotation, the revocation list,
//! and the turns heavy reads take.
pub(crate) mod authz;
pub(crate) mod caller;
pub(crate) mod credentials;
pub mod enrol;
pub(crate) mod grpc;
pub(crate) mod heavy_reads;
pub(crate) mod listener;
pub(crate) mod revoked;
pub(crate) mod tls;

pub use credentials::{CredentialError, Credentials, check_signed, csr_pem};
pub use listener::{Limits, MAX_MESSAGE, serve};
pub use revoked::{LIST_FILE as REVOKED_FILE, Revoked};
pub use tls::server_config;
