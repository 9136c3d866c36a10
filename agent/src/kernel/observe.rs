//! One consistent read of everything a spec talks about.
use std::collections::BTreeMap;

use lvs_proto::NodeSpec;

use crate::kernel::system::{Address, IpvsService, Route, SysResult, System};

/// What the node looks like now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Interface names.
    pub links: Vec<String>,
    /// All addresses.
    pub addresses: Vec<Address>,
    /// Main-table routes.
    pub routes: Vec<Route>,
    /// Values of the sysctls the spec names (`None`: no such key).
    pub sysctls: BTreeMap<String, Option<String>>,
    /// The IPVS table (`None`: no IPVS in this kernel).
    pub ipvs: Option<Vec<IpvsService>>,
    /// IPVS connection timeouts, read only when the spec sets some.
    pub ipvs_timeouts: Option<lvs_ipvs::Timeouts>,
    /// The running IPVS sync daemons, read whenever the IPVS table is.
    pub sync_daemons: Option<Vec<lvs_ipvs::Daemon>>,
    /// The marking table (`None`: not there, or not read).
    pub marks: Option<crate::marks::MarkTable>,
}

/// Read the node. IPVS is read only when the spec has services or the agent owns some,
/// so real servers and routers never need the module; the marking table only when
/// `marks` (the spec has marks, or the agent owns the table), so only such a director
/// ever runs `nft` for it.
pub async fn observe<S: System>(
    sys: &S,
    spec: &NodeSpec,
    owns_services: bool,
    marks: bool,
) -> SysResult<Observed> {
    let mut sysctls = BTreeMap::new();
    for s in &spec.sysctls {
        sysctls.insert(s.key.clone(), sys.sysctl(&s.key).await?);
    }
    let ipvs = if spec.virtual_services.is_empty() && !owns_services { None } else { sys.ipvs().await? };
    let sync_daemons = match &ipvs {
        Some(_) => Some(sys.ipvs_daemons().await?),
        None => None,
    };
    let ipvs_timeouts = match spec.ipvs_timeouts {
        Some(_) => sys.ipvs_info().await?.map(|(_, t)| t),
        None => None,
    };
    let marks = if marks { sys.mark_table().await? } else { None };
    Ok(Observed {
        marks,
        links: sys.links().await?,
        addresses: sys.addresses().await?,
        routes: sys.routes().await?,
        sysctls,
        ipvs,
        ipvs_timeouts,
        sync_daemons,
    })
}
