//! `[ipvs]`: settings of the directors' IPVS as a whole (`ipvsadm --set`).
use std::time::Duration;

use lvs_proto::spec::IpvsTimeouts;

use super::Validator;
use crate::definition::Definition;
use crate::diagnostics::KeyPath;

/// The longest timeout the kernel holds: seconds × HZ must fit an int (HZ up to 1000).
const MAX_TIMEOUT_S: u64 = 2_147_483;

impl Validator {
    /// `[ipvs] timeouts`, each a whole number of seconds the kernel can hold.
    pub(super) fn ipvs_timeouts(&mut self, def: &Definition) -> Option<IpvsTimeouts> {
        let t = def.ipvs.as_ref()?.timeouts.as_ref()?;
        let base = KeyPath::root().key("ipvs").key("timeouts");
        let mut one = |v: &Option<String>, key: &str| -> Option<u32> {
            let d: Duration = self.duration(v.as_deref()?, base.key(key))?;
            if d.subsec_nanos() != 0 || !(1..=MAX_TIMEOUT_S).contains(&d.as_secs()) {
                self.err(
                    "ipvs-timeout-range",
                    base.key(key),
                    format!("{key} timeout {d:?} is not a whole number of seconds in 1s..={MAX_TIMEOUT_S}s"),
                    "use whole seconds, e.g. \"15m\" for tcp, \"2m\" for tcp_fin, \"5m\" for udp",
                );
                return None;
            }
            u32::try_from(d.as_secs()).ok()
        };
        Some(IpvsTimeouts {
            tcp_s: one(&t.tcp, "tcp"),
            tcp_fin_s: one(&t.tcp_fin, "tcp_fin"),
            udp_s: one(&t.udp, "udp"),
        })
    }
}
