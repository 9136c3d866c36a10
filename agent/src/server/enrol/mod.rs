//! Enrolment: how an agent gets its certificate without its key ever leaving the node.
//!
//! An agent whose certificate files are missing makes its key (`tls.key`, 0600), keeps a
//! one-time secret in `<state_dir>/pairing.json` (0600, valid [`DEFAULT_TTL`]) and serves
//! only the `Enrolment` service, over TLS with a temporary self-signed certificate for
//! that key. Its pairing code (`lvs-agent pairing-code`, root only; the journal gets only the pin) is the key's pin and
//! the secret ([`lvs_proto::pairing`]). `lvsctl node enroll NODE --code …` accepts only a
//! server holding the pinned key, proves the secret, takes the CSR, signs it with the
//! names from the definition and installs the certificate and CA; the agent checks them
//! ([`crate::server::credentials::check_signed`]), consumes the code and switches to mutual TLS.
//!
//! Refused: a wrong secret (after [`MAX_FAILURES`] the code is burned), an expired code,
//! a used code (the agent no longer serves enrolment), and a server without the pinned
//! key (refused by the controller before it sends the secret).
mod error;
mod pairing;
mod service;
mod standing;

pub use error::*;
pub use pairing::*;
pub use service::*;
pub use standing::*;
