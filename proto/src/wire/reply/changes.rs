//! Changes to and from the wire.
use std::net::SocketAddr;

use ipnet::IpNet;

use crate::reply::{AddressRef, Change, IpvsChange, RouteRef};
use crate::wire::fields::{WireError, err, parse, required, service_key, shaped};
use crate::{names, pb};

pub(super) fn each<'a, W: 'a, D>(
    field: &str,
    items: impl IntoIterator<Item = &'a W>,
    f: impl Fn(&str, &'a W) -> Result<D, WireError>,
) -> Result<Vec<D>, WireError> {
    items.into_iter().enumerate().map(|(i, w)| f(&format!("{field}[{i}]"), w)).collect()
}

// ------------------------------------------------------------------ changes

impl From<&AddressRef> for pb::AddressRef {
    fn from(a: &AddressRef) -> Self {
        pb::AddressRef {
            interface: a.interface.clone(),
            address: a.address.to_string(),
            label: a.label.clone(),
        }
    }
}

pub(super) fn address_ref(f: &str, a: &pb::AddressRef) -> Result<AddressRef, WireError> {
    Ok(AddressRef {
        interface: a.interface.clone(),
        address: parse::<IpNet>(&format!("{f}.address"), &a.address)?,
        label: a.label.clone(),
    })
}

impl From<&RouteRef> for pb::RouteRef {
    fn from(r: &RouteRef) -> Self {
        pb::RouteRef {
            destination: r.destination.to_string(),
            gateway: r.gateway.map(|g| g.to_string()),
            device: r.device.clone(),
        }
    }
}

pub(super) fn route_ref(f: &str, r: &pb::RouteRef) -> Result<RouteRef, WireError> {
    Ok(RouteRef {
        destination: parse(&format!("{f}.destination"), &r.destination)?,
        gateway: r.gateway.as_deref().map(|g| parse(&format!("{f}.gateway"), g)).transpose()?,
        device: r.device.clone(),
    })
}

impl From<&IpvsChange> for pb::IpvsChange {
    fn from(c: &IpvsChange) -> Self {
        use pb::ipvs_change::Op;
        let mut w = pb::IpvsChange { service: c.service().map(Into::into), ..Default::default() };
        let op = match c {
            IpvsChange::AddService { scheduler, .. } => {
                w.scheduler = scheduler.clone();
                Op::AddService
            }
            IpvsChange::EditService { scheduler, .. } => {
                w.scheduler = scheduler.clone();
                Op::EditService
            }
            IpvsChange::DelService { .. } => Op::DelService,
            IpvsChange::AddDestination { destination, weight, .. } => {
                w.destination = destination.to_string();
                w.weight = Some(*weight);
                Op::AddDestination
            }
            IpvsChange::EditDestination { destination, weight, .. } => {
                w.destination = destination.to_string();
                w.weight = Some(*weight);
                Op::EditDestination
            }
            IpvsChange::DelDestination { destination, .. } => {
                w.destination = destination.to_string();
                Op::DelDestination
            }
            IpvsChange::SetTimeouts => Op::SetTimeouts,
            IpvsChange::Zero { .. } => Op::Zero,
            IpvsChange::Flush => Op::Flush,
            IpvsChange::StartDaemon { interface } => {
                w.detail = interface.clone();
                Op::StartDaemon
            }
            IpvsChange::StopDaemon { state } => {
                w.detail = state.clone();
                Op::StopDaemon
            }
        };
        w.op = op as i32;
        w
    }
}

pub(super) fn ipvs_change(f: &str, c: &pb::IpvsChange) -> Result<IpvsChange, WireError> {
    use pb::ipvs_change::Op;
    let service = || service_key(&format!("{f}.service"), required(&format!("{f}.service"), &c.service)?);
    let destination = || parse::<SocketAddr>(&format!("{f}.destination"), &c.destination);
    let weight =
        || c.weight.ok_or_else(|| WireError { field: format!("{f}.weight"), reason: "missing".into() });
    Ok(match Op::try_from(c.op) {
        Ok(Op::AddService) => IpvsChange::AddService { service: service()?, scheduler: c.scheduler.clone() },
        Ok(Op::EditService) => {
            IpvsChange::EditService { service: service()?, scheduler: c.scheduler.clone() }
        }
        Ok(Op::DelService) => IpvsChange::DelService { service: service()? },
        Ok(Op::AddDestination) => {
            IpvsChange::AddDestination { service: service()?, destination: destination()?, weight: weight()? }
        }
        Ok(Op::EditDestination) => IpvsChange::EditDestination {
            service: service()?,
            destination: destination()?,
            weight: weight()?,
        },
        Ok(Op::DelDestination) => {
            IpvsChange::DelDestination { service: service()?, destination: destination()? }
        }
        Ok(Op::SetTimeouts) => IpvsChange::SetTimeouts,
        Ok(Op::Zero) => IpvsChange::Zero { service: c.service.as_ref().map(|_| service()).transpose()? },
        Ok(Op::Flush) => IpvsChange::Flush,
        Ok(Op::StartDaemon) => IpvsChange::StartDaemon { interface: c.detail.clone() },
        Ok(Op::StopDaemon) => IpvsChange::StopDaemon { state: c.detail.clone() },
        Ok(Op::Unspecified) | Err(_) => {
            return err(format!("{f}.op"), format!("unknown IPVS operation {}", c.op));
        }
    })
}

impl From<&Change> for pb::Change {
    fn from(c: &Change) -> Self {
        use pb::change::Kind;
        let kind = match c {
            Change::AddAddress(a) => Kind::AddAddress(a.into()),
            Change::DelAddress(a) => Kind::DelAddress(a.into()),
            Change::AddRoute { route, replace } => {
                Kind::AddRoute(pb::RouteChange { route: Some(route.into()), replace: *replace })
            }
            Change::DelRoute(r) => Kind::DelRoute(r.into()),
            Change::SetSysctl { key, from, to } => {
                Kind::SetSysctl(pb::SysctlChange { key: key.clone(), from: from.clone(), to: to.clone() })
            }
            Change::Ipvs(op) => Kind::Ipvs(op.into()),
            Change::SetMarks { rules, found } => {
                Kind::SetMarks(pb::MarksChange { rules: *rules, found: found.clone() })
            }
            Change::DelMarks { found } => Kind::DelMarks(pb::MarksChange { rules: 0, found: found.clone() }),
        };
        pb::Change { kind: Some(kind) }
    }
}

/// A wire change as a domain change.
pub fn change(f: &str, c: &pb::Change) -> Result<Change, WireError> {
    use pb::change::Kind;
    Ok(match required(f, &c.kind)? {
        Kind::AddAddress(a) => Change::AddAddress(address_ref(&format!("{f}.add_address"), a)?),
        Kind::DelAddress(a) => Change::DelAddress(address_ref(&format!("{f}.del_address"), a)?),
        Kind::AddRoute(r) => {
            let g = format!("{f}.add_route.route");
            Change::AddRoute { route: route_ref(&g, required(&g, &r.route)?)?, replace: r.replace }
        }
        Kind::DelRoute(r) => Change::DelRoute(route_ref(&format!("{f}.del_route"), r)?),
        Kind::SetSysctl(s) => {
            Change::SetSysctl { key: s.key.clone(), from: s.from.clone(), to: s.to.clone() }
        }
        Kind::Ipvs(op) => Change::Ipvs(ipvs_change(&format!("{f}.ipvs"), op)?),
        Kind::SetMarks(m) => Change::SetMarks {
            rules: m.rules,
            found: shaped(&format!("{f}.set_marks.found"), &m.found, |t| names::text_problem(t, 512))?,
        },
        Kind::DelMarks(m) => Change::DelMarks {
            found: shaped(&format!("{f}.del_marks.found"), &m.found, |t| names::text_problem(t, 512))?,
        },
    })
}

pub(super) fn changes(f: &str, cs: &[pb::Change]) -> Result<Vec<Change>, WireError> {
    each(f, cs, change)
}
