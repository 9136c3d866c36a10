//! The pairing code of enrolment: what an unenrolled agent shows its admin and the admin
//! types into `lvsctl node enroll`. It carries two things, so that neither side has to
//! trust the network in between:
//!
//! - a **pin**: the first 80 bits of SHA-256 over the agent key's SubjectPublicKeyInfo.
//!   The controller accepts only a TLS server holding that key, and signs only a CSR for
//!   it: a man in the middle without the node's key is refused.
//! - a **secret** of 80 random bits, which the controller sends inside that pinned TLS
//!   session to prove it was given the code: nobody else can make the agent accept a CA.
//!
//! Written as 32 base32 letters in groups of four (`ABCD-EFGH-…`); dashes, spaces and
//! case are ignored when read back.
use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};

/// Bytes of the key pin.
pub const PIN_LEN: usize = 10;
/// Bytes of the secret.
pub const SECRET_LEN: usize = 10;

/// A decoded pairing code.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingCode {
    /// Pin of the agent's public key.
    pub pin: [u8; PIN_LEN],
    /// The shared secret.
    pub secret: [u8; SECRET_LEN],
}

// The secret stays out of logs and panics.
impl std::fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PairingCode {{ pin: {:02x?}, secret: <hidden> }}", self.pin)
    }
}

/// The pin of a DER SubjectPublicKeyInfo.
pub fn pin_of(spki_der: &[u8]) -> [u8; PIN_LEN] {
    let h = Sha256::digest(spki_der);
    let mut pin = [0; PIN_LEN];
    pin.copy_from_slice(&h[..PIN_LEN]);
    pin
}

/// Why a typed code cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pairing code: {0} (expected 32 letters and digits 2-7, as `lvs-agent pairing-code` prints them)")]
pub struct CodeError(String);

impl PairingCode {
    /// The code as the admin reads it.
    pub fn text(&self) -> String {
        let mut raw = Vec::with_capacity(PIN_LEN + SECRET_LEN);
        raw.extend_from_slice(&self.pin);
        raw.extend_from_slice(&self.secret);
        let s = BASE32_NOPAD.encode(&raw);
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Read a code back (dashes, spaces, case ignored).
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let clean: String =
            s.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
        if clean.len() != 32 {
            return Err(CodeError(format!("{} characters", clean.len())));
        }
        let raw = BASE32_NOPAD.decode(clean.as_bytes()).map_err(|e| CodeError(e.to_string()))?;
        let mut pin = [0; PIN_LEN];
        let mut secret = [0; SECRET_LEN];
        pin.copy_from_slice(&raw[..PIN_LEN]);
        secret.copy_from_slice(&raw[PIN_LEN..]);
        Ok(Self { pin, secret })
    }

    /// Whether `given` is this code's secret, in time independent of where they differ.
    pub fn secret_matches(&self, given: &[u8]) -> bool {
        given.len() == SECRET_LEN && given.iter().zip(self.secret).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_reads_back_whatever_its_case_and_dashes() {
        let c = PairingCode { pin: pin_of(b"spki"), secret: [7; SECRET_LEN] };
        let t = c.text();
        assert_eq!(t.len(), 39, "{t}");
        assert_eq!(PairingCode::parse(&t).unwrap(), c);
        assert_eq!(PairingCode::parse(&t.to_lowercase().replace('-', " ")).unwrap(), c);
        assert!(PairingCode::parse(&t[..30]).unwrap_err().to_string().contains("characters"));
        assert!(PairingCode::parse(&"1".repeat(32)).is_err(), "1 is not base32");
        assert!(c.secret_matches(&[7; SECRET_LEN]));
        assert!(!c.secret_matches(&[7; SECRET_LEN - 1]));
        assert!(!format!("{c:?}").contains("07, 07"), "the secret stays out of Debug");
    }
}
