//! The router's ARP watch as its agent reports it: who answered for each VIP, and whether
//! that is a leak.
use serde::Serialize;

/// The watch as of its last round.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ArpWatchStatus {
    /// Each watched VIP.
    pub vips: Vec<VipArp>,
    /// Rounds done since the agent started.
    pub rounds: u64,
    /// When the last round ended, ms since the epoch (0: none yet).
    pub last_round_unix_ms: u64,
    /// Why the last round could not ask.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ArpWatchStatus {
    /// The VIPs with a leak now.
    pub fn leaks(&self) -> impl Iterator<Item = &VipArp> {
        self.vips.iter().filter(|v| v.leak.is_some())
    }
}

/// Who answered ARP for one VIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VipArp {
    /// The VIP.
    pub address: String,
    /// Each MAC that answered, with its node when known.
    pub answers: Vec<ArpAnswer>,
    /// Why this is a leak; `None`: it is not one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak: Option<String>,
    /// The nodes that may answer.
    pub holders: Vec<String>,
}

impl VipArp {
    /// The answers that make the leak: those of nodes that may not answer (and of MACs no
    /// node has); when only holders answered but more than one did, all of them.
    pub fn leakers(&self) -> Vec<&ArpAnswer> {
        let intruders: Vec<&ArpAnswer> = self
            .answers
            .iter()
            .filter(|a| a.node.as_ref().is_none_or(|n| !self.holders.contains(n)))
            .collect();
        match (intruders.is_empty(), self.answers.len()) {
            (false, _) => intruders,
            (true, n) if n > 1 => self.answers.iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// One MAC that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArpAnswer {
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The node that answers for its own address with this MAC; `None`: no node of the
    /// definition does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl std::fmt::Display for ArpAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            Some(n) => write!(f, "{n} ({})", self.mac),
            None => write!(f, "an unknown host ({})", self.mac),
        }
    }
}
