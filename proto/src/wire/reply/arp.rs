//! [`ArpWatchStatus`] to and from the wire.
use crate::pb;
use crate::reply::{ArpAnswer, ArpWatchStatus, VipArp};
use crate::wire::fields::{WireError, err};

/// Most VIPs a reply may carry (a lying agent cannot grow our memory).
const MAX_VIPS: usize = 64 * 256;
/// Most answers kept per VIP (the agent keeps 16).
const MAX_ANSWERS: usize = 16;

impl From<&ArpWatchStatus> for pb::ArpWatchStatus {
    fn from(a: &ArpWatchStatus) -> Self {
        pb::ArpWatchStatus {
            vips: a
                .vips
                .iter()
                .map(|v| pb::VipArp {
                    address: v.address.clone(),
                    answers: v
                        .answers
                        .iter()
                        .map(|x| pb::ArpAnswer {
                            mac: x.mac.clone(),
                            node: x.node.clone().unwrap_or_default(),
                        })
                        .collect(),
                    leak: v.leak.clone().unwrap_or_default(),
                    holders: v.holders.clone(),
                })
                .collect(),
            rounds: a.rounds,
            last_round_unix_ms: a.last_round_unix_ms,
            error: a.error.clone().unwrap_or_default(),
        }
    }
}

impl TryFrom<&pb::ArpWatchStatus> for ArpWatchStatus {
    type Error = WireError;

    fn try_from(a: &pb::ArpWatchStatus) -> Result<Self, WireError> {
        if a.vips.len() > MAX_VIPS {
            return err("arp_watch.vips", format!("{} VIPs: at most {MAX_VIPS}", a.vips.len()));
        }
        let mut vips = Vec::with_capacity(a.vips.len());
        for (i, v) in a.vips.iter().enumerate() {
            if v.answers.len() > MAX_ANSWERS || v.holders.len() > crate::spec::MAX_ARP_HOLDERS {
                return err(format!("arp_watch.vips[{i}]"), "too many answers or holders");
            }
            vips.push(VipArp {
                address: v.address.clone(),
                answers: v
                    .answers
                    .iter()
                    .map(|x| ArpAnswer {
                        mac: x.mac.clone(),
                        node: Some(x.node.clone()).filter(|n| !n.is_empty()),
                    })
                    .collect(),
                leak: Some(v.leak.clone()).filter(|l| !l.is_empty()),
                holders: v.holders.clone(),
            });
        }
        Ok(ArpWatchStatus {
            vips,
            rounds: a.rounds,
            last_round_unix_ms: a.last_round_unix_ms,
            error: Some(a.error.clone()).filter(|e| !e.is_empty()),
        })
    }
}
