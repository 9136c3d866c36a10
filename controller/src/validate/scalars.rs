//! Scalars: addresses, prefixes, ports and durations, each parsed once into its type
//! with a `bad-*` diagnostic on failure.
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::Validator;
use crate::diagnostics::KeyPath;

impl Validator {
    pub(super) fn ip(&mut self, s: &str, path: KeyPath) -> Option<IpAddr> {
        match s.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    "bad-address",
                    path,
                    format!("`{s}` is not an IP address"),
                    "write an address such as 192.168.40.11 (no prefix here)",
                );
                None
            }
        }
    }

    pub(super) fn cidr(&mut self, s: &str, path: KeyPath) -> Option<IpNet> {
        match s.parse::<IpNet>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(
                    "bad-cidr",
                    path,
                    format!("`{s}` is not an address with a prefix length"),
                    "write address/prefix, e.g. 192.168.40.11/24",
                );
                None
            }
        }
    }

    pub(super) fn port(&mut self, p: i64, path: KeyPath) -> Option<u16> {
        match u16::try_from(p) {
            Ok(p) if p != 0 => Some(p),
            _ => {
                self.err(
                    "bad-port",
                    path,
                    format!("port {p} is outside 1..=65535"),
                    "use a TCP/UDP port number, e.g. 80",
                );
                None
            }
        }
    }

    pub(super) fn duration(&mut self, s: &str, path: KeyPath) -> Option<Duration> {
        match humantime::parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    "bad-duration",
                    path,
                    format!("`{s}` is not a duration ({e})"),
                    "write e.g. \"1s\", \"500ms\" or \"5m\"",
                );
                None
            }
        }
    }
}
