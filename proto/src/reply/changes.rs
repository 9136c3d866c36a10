//! One change an agent makes or would make: addresses, routes, sysctls, IPVS.
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::Serialize;

use super::text::as_text;
use super::text::opt_as_text;
use crate::spec::ServiceKey;

// ------------------------------------------------------------------ changes

/// An address as a change names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AddressRef {
    /// The interface the address is on.
    pub interface: String,
    /// Address and prefix.
    pub address: IpNet,
    /// Label (`lo:0`), when it has one other than the interface's name.
    pub label: Option<String>,
}

/// A route as a change names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RouteRef {
    /// Destination prefix.
    pub destination: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output device.
    pub device: Option<String>,
}

impl fmt::Display for RouteRef {
    /// `0.0.0.0/0 via 198.18.0.1 dev eth0`, as `ip route` words it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(d) = &self.device {
            write!(f, " dev {d}")?;
        }
        Ok(())
    }
}

/// One change to the IPVS table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum IpvsChange {
    /// A new virtual service.
    AddService {
        /// The service's key (protocol VIP:port or fwmark).
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
        /// Its scheduler.
        scheduler: String,
    },
    /// A virtual service's scheduler, flags or persistence changed.
    EditService {
        /// The service's key (protocol VIP:port or fwmark).
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
        /// Its scheduler.
        scheduler: String,
    },
    /// A virtual service removed.
    DelService {
        /// The service's key (protocol VIP:port or fwmark).
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
    },
    /// A new destination.
    AddDestination {
        /// Of which service.
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
        /// RIP:port.
        destination: SocketAddr,
        /// Its weight.
        weight: u32,
    },
    /// A destination's weight, forwarding or thresholds changed.
    EditDestination {
        /// Of which service.
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
        /// RIP:port.
        destination: SocketAddr,
        /// Its new weight.
        weight: u32,
    },
    /// A destination removed.
    DelDestination {
        /// Of which service.
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
        /// RIP:port.
        destination: SocketAddr,
    },
    /// Connection timeouts set.
    SetTimeouts,
    /// Counters zeroed (of one service, or all).
    Zero {
        /// Which service; all when absent.
        #[serde(serialize_with = "opt_as_text")]
        service: Option<ServiceKey>,
    },
    /// The whole table flushed.
    Flush,
    /// A connection-sync daemon started on an interface.
    StartDaemon {
        /// The multicast interface.
        interface: String,
    },
    /// A connection-sync daemon stopped.
    StopDaemon {
        /// `master` or `backup`.
        state: String,
    },
}

impl IpvsChange {
    /// The service it concerns, if one.
    pub fn service(&self) -> Option<&ServiceKey> {
        match self {
            IpvsChange::AddService { service, .. }
            | IpvsChange::EditService { service, .. }
            | IpvsChange::DelService { service }
            | IpvsChange::AddDestination { service, .. }
            | IpvsChange::EditDestination { service, .. }
            | IpvsChange::DelDestination { service, .. } => Some(service),
            IpvsChange::Zero { service } => service.as_ref(),
            _ => None,
        }
    }
}

impl fmt::Display for IpvsChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpvsChange::AddService { service, .. } => write!(f, "add service {service}"),
            IpvsChange::EditService { service, .. } => write!(f, "edit service {service}"),
            IpvsChange::DelService { service } => write!(f, "delete service {service}"),
            IpvsChange::AddDestination { service, destination, .. } => {
                write!(f, "add destination {destination} to {service}")
            }
            IpvsChange::EditDestination { service, destination, .. } => {
                write!(f, "edit destination {destination} of {service}")
            }
            IpvsChange::DelDestination { service, destination } => {
                write!(f, "delete destination {destination} from {service}")
            }
            IpvsChange::SetTimeouts => f.write_str("set timeouts"),
            IpvsChange::Zero { service: Some(k) } => write!(f, "zero counters of {k}"),
            IpvsChange::Zero { service: None } => f.write_str("zero all counters"),
            IpvsChange::Flush => f.write_str("flush the IPVS table"),
            IpvsChange::StartDaemon { interface } => write!(f, "start sync daemon on {interface}"),
            IpvsChange::StopDaemon { state } => write!(f, "stop {state} sync daemon"),
        }
    }
}

/// One change to a node: what a plan proposes, an apply reports, and drift is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Add an address.
    AddAddress(AddressRef),
    /// Remove an address.
    DelAddress(AddressRef),
    /// Add (or, with `replace`, swap) a route.
    AddRoute {
        /// The route.
        route: RouteRef,
        /// Replace an existing route to the same destination.
        replace: bool,
    },
    /// Remove a route.
    DelRoute(RouteRef),
    /// Write a sysctl.
    SetSysctl {
        /// Dotted key, as in `sysctl -w`.
        key: String,
        /// Value found.
        from: String,
        /// Value wanted.
        to: String,
    },
    /// Change the IPVS table.
    Ipvs(IpvsChange),
    /// Load the director's marking table (`inet lvs_dr`) whole.
    SetMarks {
        /// Rules it holds afterwards.
        rules: u32,
        /// What stood in its place.
        found: String,
    },
    /// Remove the marking table.
    DelMarks {
        /// What it held.
        found: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = |a: &AddressRef| a.label.as_deref().map(|l| format!(" label {l}")).unwrap_or_default();
        match self {
            Change::AddAddress(a) => write!(f, "add address {} on {}{}", a.address, a.interface, label(a)),
            Change::DelAddress(a) => {
                write!(f, "remove address {} from {}{}", a.address, a.interface, label(a))
            }
            Change::AddRoute { route, replace } => {
                write!(f, "{} route {route}", if *replace { "replace" } else { "add" })
            }
            Change::DelRoute(r) => write!(f, "remove route {r}"),
            Change::SetSysctl { key, from, to } => write!(f, "set {key} = {to} (was {from})"),
            Change::Ipvs(op) => write!(f, "ipvs: {op}"),
            Change::SetMarks { rules, found } => {
                let s = if *rules == 1 { "" } else { "s" };
                write!(f, "nftables: load table inet lvs_dr with {rules} marking rule{s} (found: {found})")
            }
            Change::DelMarks { found } => write!(f, "nftables: remove table inet lvs_dr (it held {found})"),
        }
    }
}
