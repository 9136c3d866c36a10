//! The real [`System`]: rtnetlink for addresses and routes, `/proc/sys` for sysctls,
//! IPVS generic netlink (lvs-ipvs) for the IPVS table. Nothing runs `ip`, `sysctl` or
//! `ipvsadm`. Works in the network namespace the process lives in.
use std::net::IpAddr;

use ipnet::IpNet;
use lvs_ipvs::{Ipvs, Op};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope, RouteType};
use rtnetlink::RouteMessageBuilder;
use tokio::sync::Mutex;
use tracing::warn;

use super::rtnl::CALL_DEADLINE;
use super::rtnl::MAIN_TABLE;
use super::rtnl::Rtnl;
use crate::kernel::system::{Address, IpvsService, Route, SysResult, System, SystemError};

/// The kernel of this network namespace.
pub struct NetSystem {
    rtnl: Rtnl,
    ipvs: Mutex<Option<Ipvs>>,
    /// Fault injection for the crash tests: SIGKILL this process before the change that
    /// would exceed this many (`LVS_AGENT_FAULT_KILL_AFTER`). Never set in production.
    kill_after: Option<std::sync::atomic::AtomicU32>,
}

/// Environment variable of the crash tests' fault hook (see [`NetSystem`]).
pub const FAULT_KILL_AFTER: &str = "LVS_AGENT_FAULT_KILL_AFTER";

impl NetSystem {
    /// Open an rtnetlink connection (its task runs on the current tokio runtime).
    pub fn new() -> std::io::Result<Self> {
        let kill_after = std::env::var(FAULT_KILL_AFTER).ok().and_then(|v| v.parse().ok());
        if let Some(n) = kill_after {
            warn!(changes = n, "fault injection: this agent kills itself before change {}", n + 1);
        }
        Ok(Self {
            rtnl: Rtnl::new()?,
            ipvs: Mutex::new(None),
            kill_after: kill_after.map(std::sync::atomic::AtomicU32::new),
        })
    }

    /// The crash tests' hook: called before every change to the kernel.
    fn before_change(&self) {
        let Some(left) = &self.kill_after else { return };
        if left
            .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| {
                n.checked_sub(1)
            })
            .is_err()
        {
            // SAFETY: kill and getpid have no preconditions; this ends the process as
            // `kill -9` would, mid-apply, which is the point.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }

    async fn link_index(&self, name: &str) -> SysResult<u32> {
        self.link_names()
            .await?
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(i, _)| i)
            .ok_or_else(|| SystemError::new(format!("find interface {name}"), "no such interface"))
    }

    async fn link_names(&self) -> SysResult<Vec<(u32, String)>> {
        let msgs =
            self.rtnl.dump("list interfaces", RouteNetlinkMessage::GetLink(LinkMessage::default())).await?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .filter_map(|l| {
                let name = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })?;
                Some((l.header.index, name))
            })
            .collect())
    }

    async fn address_messages(&self) -> SysResult<Vec<(AddressMessage, Address)>> {
        let names = self.link_names().await?;
        let msgs = self
            .rtnl
            .dump("list addresses", RouteNetlinkMessage::GetAddress(AddressMessage::default()))
            .await?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => Some(a),
                _ => None,
            })
            .filter_map(|m| {
                let ifname = names.iter().find(|(i, _)| *i == m.header.index)?.1.clone();
                let mut ip = None;
                let mut label = None;
                for a in &m.attributes {
                    match a {
                        AddressAttribute::Local(x) => ip = Some(*x),
                        AddressAttribute::Address(x) if ip.is_none() => ip = Some(*x),
                        AddressAttribute::Label(l) => label = Some(l.clone()),
                        _ => {}
                    }
                }
                let address = IpNet::new(ip?, m.header.prefix_len).ok()?;
                let label = label.filter(|l| *l != ifname);
                Some((m, Address { interface: ifname, address, label }))
            })
            .collect())
    }

    async fn route_messages(&self) -> SysResult<Vec<(RouteMessage, Route)>> {
        let names = self.link_names().await?;
        let mut out = Vec::new();
        for req in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let msgs = self.rtnl.dump("list routes", RouteNetlinkMessage::GetRoute(req)).await?;
            for m in msgs.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            }) {
                if m.header.table != MAIN_TABLE || m.header.kind != RouteType::Unicast {
                    continue;
                }
                let mut dst = None;
                let mut gw = None;
                let mut oif = None;
                for a in &m.attributes {
                    match a {
                        RouteAttribute::Destination(d) => dst = route_ip(d),
                        RouteAttribute::Gateway(g) => gw = route_ip(g),
                        RouteAttribute::Oif(i) => oif = Some(*i),
                        _ => {}
                    }
                }
                let v6 = m.header.address_family == netlink_packet_route::AddressFamily::Inet6;
                let unspecified: IpAddr = if v6 {
                    std::net::Ipv6Addr::UNSPECIFIED.into()
                } else {
                    std::net::Ipv4Addr::UNSPECIFIED.into()
                };
                let Ok(destination) =
                    IpNet::new(dst.unwrap_or(unspecified), m.header.destination_prefix_length)
                else {
                    continue;
                };
                let device = oif.and_then(|i| names.iter().find(|(x, _)| *x == i)).map(|(_, n)| n.clone());
                // A route through a gateway is identified by the gateway, as in the spec.
                let device = if gw.is_some() { None } else { device };
                out.push((m, Route { destination, gateway: gw, device }));
            }
        }
        Ok(out)
    }

    /// Run `f` on the IPVS socket (connected on first use) within [`CALL_DEADLINE`]; a
    /// socket that does not answer is dropped so the next call opens a fresh one.
    async fn with_ipvs<T>(
        &self,
        f: impl AsyncFnOnce(&mut Ipvs) -> lvs_ipvs::Result<T>,
    ) -> Result<Option<T>, lvs_ipvs::Error> {
        // The wait for the socket is under the deadline too: a burst of reads cannot hold
        // a reconcile or a quarantine behind it for longer than one call may take.
        let Ok(mut guard) = tokio::time::timeout(CALL_DEADLINE, self.ipvs.lock()).await else {
            return Err(lvs_ipvs::Error::Timeout {
                op: "waiting for the IPVS socket".into(),
                timeout: CALL_DEADLINE,
            });
        };
        if guard.is_none() {
            match Ipvs::connect().await {
                Ok(i) => *guard = Some(i),
                Err(lvs_ipvs::Error::NoIpvs) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        match tokio::time::timeout(CALL_DEADLINE, f(guard.as_mut().expect("connected"))).await {
            Ok(r) => r.map(Some),
            Err(_) => {
                warn!("IPVS generic-netlink socket did not answer; replaced");
                *guard = None;
                Err(lvs_ipvs::Error::Timeout { op: "IPVS request".into(), timeout: CALL_DEADLINE })
            }
        }
    }
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(x) => Some(IpAddr::V4(*x)),
        RouteAddress::Inet6(x) => Some(IpAddr::V6(*x)),
        _ => None,
    }
}

fn op_address(verb: &str, a: &Address) -> String {
    format!("{verb} address {} on {}", a.address, a.interface)
}

impl System for NetSystem {
    async fn links(&self) -> SysResult<Vec<String>> {
        Ok(self.link_names().await?.into_iter().map(|(_, n)| n).collect())
    }

    async fn addresses(&self) -> SysResult<Vec<Address>> {
        Ok(self.address_messages().await?.into_iter().map(|(_, a)| a).collect())
    }

    async fn add_address(&self, a: &Address) -> SysResult<()> {
        self.before_change();
        let op = op_address("add", a);
        let index = self.link_index(&a.interface).await?;
        let mut req = self.rtnl.handle().address().add(index, a.address.addr(), a.address.prefix_len());
        super::address_add::complete(req.message_mut(), a);
        self.rtnl.change(op, req.execute()).await
    }

    async fn del_address(&self, a: &Address) -> SysResult<()> {
        self.before_change();
        let op = op_address("remove", a);
        let Some((msg, _)) = self.address_messages().await?.into_iter().find(|(_, x)| x == a) else {
            return Ok(()); // already gone: the goal is met
        };
        self.rtnl.change(op, self.rtnl.handle().address().del(msg).execute()).await
    }

    async fn routes(&self) -> SysResult<Vec<Route>> {
        Ok(self.route_messages().await?.into_iter().map(|(_, r)| r).collect())
    }

    async fn add_route(&self, r: &Route, replace: bool) -> SysResult<()> {
        self.before_change();
        let op = format!("add route {}", crate::reconcile::action::route_text(r));
        let oif = match &r.device {
            Some(d) => Some(self.link_index(d).await?),
            None => None,
        };
        let msg = match (r.destination, r.gateway) {
            (IpNet::V4(n), gw) => {
                let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                    .destination_prefix(n.addr(), n.prefix_len());
                match gw {
                    Some(IpAddr::V4(g)) => b = b.gateway(g),
                    Some(IpAddr::V6(_)) => {
                        return Err(SystemError::new(op, "IPv6 gateway for an IPv4 route"));
                    }
                    None => b = b.scope(RouteScope::Link),
                }
                if let Some(i) = oif {
                    b = b.output_interface(i);
                }
                b.build()
            }
            (IpNet::V6(n), gw) => {
                let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                    .destination_prefix(n.addr(), n.prefix_len());
                if let Some(IpAddr::V6(g)) = gw {
                    b = b.gateway(g);
                }
                if let Some(i) = oif {
                    b = b.output_interface(i);
                }
                b.build()
            }
        };
        let mut req = self.rtnl.handle().route().add(msg);
        if replace {
            req = req.replace();
        }
        self.rtnl.change(op, req.execute()).await
    }

    async fn del_route(&self, r: &Route) -> SysResult<()> {
        self.before_change();
        let op = format!("remove route {}", crate::reconcile::action::route_text(r));
        let Some((msg, _)) = self.route_messages().await?.into_iter().find(|(_, x)| x == r) else {
            return Ok(());
        };
        self.rtnl.change(op, self.rtnl.handle().route().del(msg).execute()).await
    }

    async fn sysctl(&self, key: &str) -> SysResult<Option<String>> {
        match tokio::fs::read_to_string(proc_path(key)).await {
            Ok(v) => Ok(Some(v.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SystemError::new(format!("read {key}"), e)),
        }
    }

    async fn set_sysctl(&self, key: &str, value: &str) -> SysResult<()> {
        self.before_change();
        tokio::fs::write(proc_path(key), value)
            .await
            .map_err(|e| SystemError::new(format!("set {key} = {value}"), e))
    }

    async fn ipvs(&self) -> SysResult<Option<Vec<IpvsService>>> {
        self.with_ipvs(async |ipvs: &mut Ipvs| {
            let mut out = Vec::new();
            for s in ipvs.services().await? {
                let destinations = ipvs.destinations(&s.service.key).await?;
                out.push(IpvsService { service: s.service, stats: s.stats, destinations });
            }
            Ok(out)
        })
        .await
        .map_err(|e| SystemError::new("read the IPVS table", e))
    }

    async fn ipvs_info(&self) -> SysResult<Option<(lvs_ipvs::Info, lvs_ipvs::Timeouts)>> {
        self.with_ipvs(async |ipvs: &mut Ipvs| Ok((ipvs.info().await?, ipvs.timeouts().await?)))
            .await
            .map_err(|e| SystemError::new("read IPVS info", e))
    }

    async fn nft_ruleset(&self) -> SysResult<Option<String>> {
        crate::firewall::read::nft_ruleset()
            .await
            .map_err(|e| SystemError::new("read the nftables ruleset", e))
    }

    async fn mark_table(&self) -> SysResult<Option<crate::marks::MarkTable>> {
        crate::marks::program::read().await
    }

    async fn load_marks(&self, rules: &[lvs_proto::spec::MarkRule]) -> SysResult<()> {
        self.before_change();
        crate::marks::program::load(rules).await
    }

    async fn remove_marks(&self) -> SysResult<()> {
        self.before_change();
        crate::marks::program::remove().await
    }

    async fn ipvs_daemons(&self) -> SysResult<Vec<lvs_ipvs::Daemon>> {
        self.with_ipvs(async |ipvs: &mut Ipvs| ipvs.daemons().await)
            .await
            .map(Option::unwrap_or_default)
            .map_err(|e| SystemError::new("read IPVS sync daemons", e))
    }

    async fn ipvs_connections(&self, limit: usize) -> SysResult<(Vec<lvs_ipvs::conn::Connection>, bool)> {
        // A blocking thread, as for counting: the table can be large, and reading it must
        // never hold a runtime worker the reconciler and the checks need.
        tokio::task::spawn_blocking(move || lvs_ipvs::conn::read(limit))
            .await
            .map_err(|e| SystemError::new("read /proc/net/ip_vs_conn", std::io::Error::other(e)))?
            .map_err(|e| SystemError::new("read /proc/net/ip_vs_conn", e))
    }

    async fn ipvs_count_connections(
        &self,
        dests: &[std::net::SocketAddr],
        live: lvs_ipvs::conn::Liveness,
    ) -> SysResult<Vec<lvs_ipvs::conn::DestCount>> {
        // A large table takes a while to read: off the runtime's worker threads. The
        // blocking thread must read this network namespace's table: the agent's threads
        // all live in the one it was started in, and /proc/thread-self follows that.
        let dests = dests.to_vec();
        tokio::task::spawn_blocking(move || lvs_ipvs::conn::count_table(&dests, live))
            .await
            .map_err(|e| SystemError::new("count IPVS connections", e))?
            .map_err(|e| SystemError::new("read /proc/net/ip_vs_conn", e))
    }

    async fn ipvs_apply(&self, ops: &[Op]) -> SysResult<Vec<SysResult<()>>> {
        self.before_change();
        let r = self
            .with_ipvs(async |ipvs: &mut Ipvs| ipvs.apply(ops).await)
            .await
            .map_err(|e| SystemError::new("change the IPVS table", e))?;
        let r = r.ok_or_else(|| SystemError::new("change the IPVS table", lvs_ipvs::Error::NoIpvs))?;
        Ok(r.into_iter().zip(ops).map(|(x, op)| x.map_err(|e| SystemError::new(op.describe(), e))).collect())
    }
}

/// `/proc/sys/net/ipv4/conf/eth1/arp_ignore` for `net.ipv4.conf.eth1.arp_ignore`.
/// Interface names may contain dots (`eth0.100`): sysctl writes those as `/`, so the
/// interface part is kept whole.
pub fn proc_path(key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() > 5 && parts[..3] == ["net", "ipv4", "conf"] {
        let ifname = parts[3..parts.len() - 1].join(".");
        return format!("/proc/sys/net/ipv4/conf/{ifname}/{}", parts[parts.len() - 1]);
    }
    format!("/proc/sys/{}", key.replace('.', "/"))
}
