//! The checks every wire decoder shares: the error that names a field, and the helpers that
//! parse, require and shape-check one. Kept apart from the decoders ([`super`],
//! [`super::health`], [`super::reply`]) so that each of them uses it and none uses another.
use std::str::FromStr;

use crate::pb;
use crate::spec::{Protocol, ServiceKey};

/// A field of a wire message that does not make a valid spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct WireError {
    /// Dotted path of the field, e.g. `virtual_services[0].destinations[1].address`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

pub(crate) fn err<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, WireError> {
    Err(WireError { field: field.into(), reason: reason.into() })
}

pub(crate) fn parse<T: FromStr>(field: &str, s: &str) -> Result<T, WireError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| WireError { field: field.into(), reason: format!("`{s}`: {e}") })
}

pub(crate) fn required<'a, T>(field: &str, v: &'a Option<T>) -> Result<&'a T, WireError> {
    v.as_ref().ok_or_else(|| WireError { field: field.into(), reason: "missing".into() })
}

/// A wire service key as a domain key.
pub fn service_key(field: &str, k: &pb::ServiceKey) -> Result<ServiceKey, WireError> {
    match required(field, &k.kind)? {
        pb::service_key::Kind::Addr(a) => Ok(ServiceKey::Addr {
            protocol: match pb::Protocol::try_from(a.protocol) {
                Ok(pb::Protocol::Tcp) => Protocol::Tcp,
                Ok(pb::Protocol::Udp) => Protocol::Udp,
                Ok(pb::Protocol::Sctp) => Protocol::Sctp,
                _ => return err(format!("{field}.protocol"), format!("unknown protocol {}", a.protocol)),
            },
            address: parse(&format!("{field}.address"), &a.address)?,
        }),
        pb::service_key::Kind::Fwmark(f) => {
            if f.mark == 0 {
                return err(format!("{field}.mark"), "fwmark 0 matches no packet");
            }
            Ok(ServiceKey::Fwmark { mark: f.mark, ipv6: f.ipv6 })
        }
    }
}

/// `s`, when it has the shape `problem` checks ([`crate::names`]); else the field and why.
pub(crate) fn shaped(
    field: &str,
    s: &str,
    problem: impl Fn(&str) -> Option<String>,
) -> Result<String, WireError> {
    match problem(s) {
        None => Ok(s.to_string()),
        Some(why) => err(field, why),
    }
}

/// [`shaped`] for any value.
pub(crate) fn shaped_with<T: ?Sized>(
    field: &str,
    v: &T,
    problem: impl Fn(&T) -> Option<String>,
) -> Result<(), WireError> {
    match problem(v) {
        None => Ok(()),
        Some(why) => err(field, why),
    }
}
