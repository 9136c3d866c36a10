//! Health checks of destinations and the node's own observations.
use std::net::{IpAddr, SocketAddr};

use super::key::ServiceKey;
use serde::{Deserialize, Serialize};

/// How a health check probes a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProbeKind {
    /// HTTP GET (HTTPS with `tls`).
    Http {
        /// Request path.
        path: String,
        /// The status codes that pass.
        expect_status: StatusSet,
        /// Text the body must contain, if any.
        expect_body: Option<String>,
        /// Host header, if not the destination address.
        host: Option<String>,
        /// MD5 of the body (lowercase hex), as keepalived's `digest` has it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_digest: Option<String>,
        /// HTTPS: the TLS handshake's settings (keepalived `SSL_GET`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<TlsProbe>,
        /// Further pages fetched after `path`, in order (keepalived's further `url { }`
        /// blocks): the probe passes when every page does.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        urls: Vec<HttpUrl>,
        /// Keep the connection open between probes when the server does (HTTP keep-alive):
        /// a probe is then a request and an answer, without a connect, a handshake and a
        /// close. The agent still connects afresh after a failure and periodically.
        #[serde(default)]
        reuse_connection: bool,
    },
    /// TCP connect.
    Tcp,
    /// An executable run on the director (keepalived `MISC_CHECK`): exit status 0 is
    /// healthy. Its arguments are passed as they are, never through a shell; the
    /// destination comes in the environment (`LVS_RS_ADDRESS`, `LVS_RS_PORT`, ...).
    Exec {
        /// Absolute path of the executable, then its arguments.
        command: Vec<String>,
    },
}

/// One more page an HTTP check fetches, with what it must return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpUrl {
    /// Request path.
    pub path: String,
    /// The status codes that pass.
    pub expect_status: StatusSet,
    /// Text the body must contain, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// MD5 of the body (lowercase hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_digest: Option<String>,
    /// Host header; none: the check's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The status codes an HTTP check accepts: codes and inclusive ranges, each within
/// 100..=599 (keepalived's `status_code 200 201-204`). Stored and shown as a number when it
/// is one code, as `[[min, max], ...]` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StatusRepr", into = "StatusRepr")]
pub struct StatusSet(Vec<(u16, u16)>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StatusRepr {
    One(u16),
    Ranges(Vec<(u16, u16)>),
}

impl From<StatusSet> for StatusRepr {
    fn from(s: StatusSet) -> Self {
        match s.single() {
            Some(c) => StatusRepr::One(c),
            None => StatusRepr::Ranges(s.0),
        }
    }
}

impl TryFrom<StatusRepr> for StatusSet {
    type Error = String;
    fn try_from(r: StatusRepr) -> Result<Self, String> {
        match r {
            StatusRepr::One(c) => StatusSet::from_ranges(vec![(c, c)]),
            StatusRepr::Ranges(v) => StatusSet::from_ranges(v),
        }
    }
}

impl StatusSet {
    /// The lowest and highest status an HTTP server may send.
    pub const VALID: std::ops::RangeInclusive<u16> = 100..=599;

    /// Exactly `code`.
    pub fn one(code: u16) -> Self {
        StatusSet(vec![(code, code)])
    }

    /// Codes and ranges, checked: at least one, each `min <= max`, within [`Self::VALID`].
    pub fn from_ranges(ranges: Vec<(u16, u16)>) -> Result<Self, String> {
        if ranges.is_empty() {
            return Err("no status code".into());
        }
        for &(lo, hi) in &ranges {
            let show = if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") };
            if !Self::VALID.contains(&lo) || !Self::VALID.contains(&hi) {
                return Err(format!("{show} is not an HTTP status (100-599)"));
            }
            if lo > hi {
                return Err(format!("{show} is a range from high to low"));
            }
        }
        Ok(StatusSet(ranges))
    }

    /// `"200"`, `"200-299 301"`, `"200-299, 301"`: codes and ranges separated by spaces or
    /// commas, as keepalived writes its `status_code`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let code = |t: &str| t.trim().parse::<u16>().map_err(|_| format!("`{t}` is not a status code"));
        let ranges = text
            .split([',', ' '])
            .filter(|t| !t.is_empty())
            .map(|t| match t.split_once('-') {
                Some((lo, hi)) => Ok((code(lo)?, code(hi)?)),
                None => code(t).map(|c| (c, c)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_ranges(ranges)
    }

    /// Whether `status` passes.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// The one code, when the set is exactly one.
    pub fn single(&self) -> Option<u16> {
        match self.0.as_slice() {
            [(lo, hi)] if lo == hi => Some(*lo),
            _ => None,
        }
    }

    /// The codes and ranges, as given.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }
}

impl std::fmt::Display for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if lo == hi { write!(f, "{sep}{lo}")? } else { write!(f, "{sep}{lo}-{hi}")? }
        }
        Ok(())
    }
}

/// How an HTTPS check handshakes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsProbe {
    /// Server name sent (SNI) and verified; none: the certificate must name the address.
    pub sni: Option<String>,
    /// What the real server's certificate is verified against.
    pub verify: TlsVerify,
}

/// What an HTTPS check trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsVerify {
    /// The director's system trust store.
    System,
    /// A PEM file of CA certificates on the director.
    CaFile(String),
    /// Nothing: any certificate is accepted. Only when the definition says so.
    Skip,
}

/// What happens to a destination that fails its check `fall` times in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Weight 0: existing connections finish, no new ones.
    Weight0,
    /// Remove the destination from the service.
    Remove,
}

/// A health check of every destination of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckSpec {
    /// How to probe.
    pub probe: ProbeKind,
    /// Time between probes of one destination, in milliseconds.
    pub interval_ms: u64,
    /// Time a probe may take, in milliseconds (< interval).
    pub timeout_ms: u64,
    /// Successes in a row that restore a quarantined destination.
    pub rise: u32,
    /// Failures in a row that quarantine a destination.
    pub fall: u32,
    /// What quarantine means.
    pub on_failure: OnFailure,
    /// Probe this address instead of the destination's (keepalived `connect_ip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<IpAddr>,
    /// Probe this port instead of the destination's (keepalived `connect_port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    /// After a failure, the next probe comes this soon instead of one interval later
    /// (keepalived `delay_before_retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval_ms: Option<u64>,
}

impl HealthCheckSpec {
    /// Where a probe of destination `dest` connects.
    pub fn target(&self, dest: SocketAddr) -> SocketAddr {
        SocketAddr::new(self.connect_ip.unwrap_or(dest.ip()), self.connect_port.unwrap_or(dest.port()))
    }
}

/// An observation the agent makes and reports. Checks never change the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CheckSpec {
    /// The kernel has IPVS and these schedulers (the article's `modprobe -l | grep ipvs`).
    KernelIpvs {
        /// Schedulers the node's services use.
        schedulers: Vec<String>,
    },
    /// The clock is within `max_offset_ms` of the NTP source (the article's step 1).
    ClockOffset {
        /// NTP server address.
        server: IpAddr,
        /// Largest allowed offset.
        max_offset_ms: u64,
    },
    /// This node runs the NTP server the cluster syncs to, and it answers.
    NtpServing {
        /// Address clients query.
        address: IpAddr,
    },
    /// A local HTTP server answers on the service port (the article's `curl http://localhost`).
    HttpLocal {
        /// Port on 127.0.0.1 the server should answer on.
        port: u16,
        /// The path requested; a 2xx or 3xx passes.
        path: String,
    },
    /// The default gateway is none of these (a DR real server must not route through the DIP).
    GatewayIsNot {
        /// Forbidden next hops (the directors' addresses).
        forbidden: Vec<IpAddr>,
    },
    /// No firewall rule drops traffic to the service (reported, never flushed).
    FirewallAllows {
        /// The service.
        service: ServiceKey,
    },
}
