//! An in-memory [`System`] that records every call. For unit tests of planning and
//! diffing only: it proves the agent's logic, never that the kernel does what we think.
use std::collections::BTreeMap;
use std::sync::Mutex;

use lvs_ipvs::{DestinationEntry, Op, ServiceKey, Stats};

use crate::kernel::system::{Address, IpvsService, Route, SysResult, System, SystemError};

/// The fake node.
#[derive(Debug, Default)]
pub struct FakeSystem {
    /// Interface names `links()` reports: `lo` and those given to [`FakeSystem::new`].
    pub links: Mutex<Vec<String>>,
    /// Addresses on the fake interfaces, in the order they were added.
    pub addresses: Mutex<Vec<Address>>,
    /// The fake main routing table.
    pub routes: Mutex<Vec<Route>>,
    /// Sysctl keys (dotted form) and their values as `/proc/sys` would show them.
    pub sysctls: Mutex<BTreeMap<String, String>>,
    /// IPVS table (`None`: no IPVS).
    pub ipvs: Mutex<Option<Vec<IpvsService>>>,
    /// Every mutating call, in order.
    pub calls: Mutex<Vec<String>>,
    /// Fail the call whose text contains this: a mutating call (`add address lo`) or a
    /// read (`list addresses`, `list routes`, `list interfaces`, `read the IPVS table`).
    pub fail_on: Mutex<Option<String>>,
    /// How long every mutating call takes (tokio time: pause it in tests).
    pub delay: Mutex<std::time::Duration>,
    /// Size of every IPVS batch applied, in order (how many kernel round trips a change took).
    pub ipvs_batches: Mutex<Vec<usize>>,
    /// IPVS connection timeouts (the kernel's defaults until set).
    pub ipvs_timeouts: Mutex<Option<lvs_ipvs::Timeouts>>,
    /// Running sync daemons.
    pub daemons: Mutex<Vec<lvs_ipvs::Daemon>>,
    /// What `nft -j list ruleset` prints (`None`: no nft on this host).
    pub nft: Mutex<Option<String>>,
    /// The marking table (`None`: not there).
    pub marks: Mutex<Option<crate::marks::MarkTable>>,
}

impl FakeSystem {
    /// A node with these interfaces, `lo` included, the usual sysctls at 0 and IPVS (with
    /// its sysctls) if asked.
    pub fn new(links: &[&str], with_ipvs: bool) -> Self {
        let s = Self::default();
        let mut l: Vec<String> = vec!["lo".into()];
        l.extend(links.iter().map(|x| x.to_string()));
        let mut sys = BTreeMap::new();
        sys.insert("net.ipv4.ip_forward".to_string(), "0".to_string());
        for i in l.iter().map(String::as_str).chain(["all", "default"]) {
            sys.insert(format!("net.ipv4.conf.{i}.arp_ignore"), "0".into());
            sys.insert(format!("net.ipv4.conf.{i}.arp_announce"), "0".into());
        }
        if with_ipvs {
            // The kernel's defaults, as `/proc/sys` shows them (tab-separated).
            sys.insert("net.ipv4.vs.sync_threshold".into(), "3\t50".into());
            sys.insert("net.ipv4.vs.sync_refresh_period".into(), "0".into());
            sys.insert("net.ipv4.vs.conn_reuse_mode".into(), "1".into());
            sys.insert("net.ipv4.vs.expire_nodest_conn".into(), "0".into());
            sys.insert("net.ipv4.vs.expire_quiescent_template".into(), "0".into());
        }
        *s.links.lock().unwrap() = l;
        *s.sysctls.lock().unwrap() = sys;
        *s.ipvs.lock().unwrap() = with_ipvs.then(Vec::new);
        s
    }

    /// A sync daemon started or stopped, refused as the kernel refuses it.
    fn daemon_op(&self, op: &Op) -> Result<(), &'static str> {
        let mut ds = self.daemons.lock().unwrap();
        match op {
            Op::StartDaemon(d) if ds.iter().any(|x| x.state == d.state) => {
                Err("a daemon of that state runs already")
            }
            Op::StartDaemon(d) => {
                ds.push(d.clone());
                Ok(())
            }
            Op::StopDaemon(s) => {
                let before = ds.len();
                ds.retain(|x| x.state != *s);
                if ds.len() == before { Err("no such daemon") } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    fn read(&self, what: &str) -> SysResult<()> {
        match self.fail_on.lock().unwrap().as_deref() {
            Some(f) if what.contains(f) => Err(SystemError::new(what, "injected failure")),
            _ => Ok(()),
        }
    }

    async fn pause(&self) {
        let d = *self.delay.lock().unwrap();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    fn record(&self, call: String) -> SysResult<()> {
        if let Some(f) = self.fail_on.lock().unwrap().as_deref()
            && call.contains(f)
        {
            return Err(SystemError::new(call, "injected failure"));
        }
        self.calls.lock().unwrap().push(call);
        Ok(())
    }
}

impl System for FakeSystem {
    async fn links(&self) -> SysResult<Vec<String>> {
        self.read("list interfaces")?;
        Ok(self.links.lock().unwrap().clone())
    }
    async fn addresses(&self) -> SysResult<Vec<Address>> {
        self.read("list addresses")?;
        Ok(self.addresses.lock().unwrap().clone())
    }
    async fn add_address(&self, a: &Address) -> SysResult<()> {
        self.pause().await;
        self.record(format!("add address {} {}", a.interface, a.address))?;
        self.addresses.lock().unwrap().push(a.clone());
        Ok(())
    }
    async fn del_address(&self, a: &Address) -> SysResult<()> {
        self.pause().await;
        self.record(format!("del address {} {}", a.interface, a.address))?;
        self.addresses.lock().unwrap().retain(|x| x != a);
        Ok(())
    }
    async fn routes(&self) -> SysResult<Vec<Route>> {
        self.read("list routes")?;
        Ok(self.routes.lock().unwrap().clone())
    }
    async fn add_route(&self, r: &Route, replace: bool) -> SysResult<()> {
        self.pause().await;
        self.record(format!("add route {}", crate::reconcile::action::route_text(r)))?;
        let mut routes = self.routes.lock().unwrap();
        if replace {
            routes.retain(|x| x.destination != r.destination);
        }
        routes.push(r.clone());
        Ok(())
    }
    async fn del_route(&self, r: &Route) -> SysResult<()> {
        self.pause().await;
        self.record(format!("del route {}", crate::reconcile::action::route_text(r)))?;
        self.routes.lock().unwrap().retain(|x| x != r);
        Ok(())
    }
    async fn sysctl(&self, key: &str) -> SysResult<Option<String>> {
        Ok(self.sysctls.lock().unwrap().get(key).cloned())
    }
    async fn set_sysctl(&self, key: &str, value: &str) -> SysResult<()> {
        self.pause().await;
        self.record(format!("sysctl {key}={value}"))?;
        self.sysctls.lock().unwrap().insert(key.into(), value.into());
        Ok(())
    }
    async fn ipvs(&self) -> SysResult<Option<Vec<IpvsService>>> {
        self.read("read the IPVS table")?;
        Ok(self.ipvs.lock().unwrap().clone())
    }
    async fn ipvs_info(&self) -> SysResult<Option<(lvs_ipvs::Info, lvs_ipvs::Timeouts)>> {
        let present = self.ipvs.lock().unwrap().is_some();
        Ok(present.then_some({
            (
                lvs_ipvs::Info { version: 0x010201, conn_tab_size: 4096 },
                self.ipvs_timeouts.lock().unwrap().unwrap_or(lvs_ipvs::Timeouts {
                    tcp: 900,
                    tcp_fin: 120,
                    udp: 300,
                }),
            )
        }))
    }
    async fn nft_ruleset(&self) -> SysResult<Option<String>> {
        self.read("read the nftables ruleset")?;
        Ok(self.nft.lock().unwrap().clone())
    }
    async fn mark_table(&self) -> SysResult<Option<crate::marks::MarkTable>> {
        self.read("read nftables table inet lvs_dr")?;
        Ok(self.marks.lock().unwrap().clone())
    }
    async fn load_marks(&self, rules: &[lvs_proto::spec::MarkRule]) -> SysResult<()> {
        self.pause().await;
        self.record(format!("load marks {}", rules.len()))?;
        let rules =
            rules.iter().map(|r| crate::marks::FoundRule { rule: r.clone(), packets: 0, bytes: 0 }).collect();
        *self.marks.lock().unwrap() = Some(crate::marks::MarkTable { rules, strange: Vec::new() });
        Ok(())
    }
    async fn remove_marks(&self) -> SysResult<()> {
        self.pause().await;
        self.record("remove marks".into())?;
        *self.marks.lock().unwrap() = None;
        Ok(())
    }
    async fn ipvs_daemons(&self) -> SysResult<Vec<lvs_ipvs::Daemon>> {
        self.read("list IPVS sync daemons")?;
        Ok(self.daemons.lock().unwrap().clone())
    }
    async fn ipvs_connections(&self, _limit: usize) -> SysResult<(Vec<lvs_ipvs::conn::Connection>, bool)> {
        self.read("read IPVS connections")?;
        Ok((Vec::new(), false))
    }
    async fn ipvs_count_connections(
        &self,
        dests: &[std::net::SocketAddr],
        _live: lvs_ipvs::conn::Liveness,
    ) -> SysResult<Vec<lvs_ipvs::conn::DestCount>> {
        self.read("count IPVS connections")?;
        Ok(vec![lvs_ipvs::conn::DestCount::default(); dests.len()])
    }
    async fn ipvs_apply(&self, ops: &[Op]) -> SysResult<Vec<SysResult<()>>> {
        self.pause().await;
        self.ipvs_batches.lock().unwrap().push(ops.len());
        let mut out = Vec::new();
        for op in ops {
            if let Err(e) = self.record(format!("ipvs {}", op.describe())) {
                out.push(Err(e));
                continue;
            }
            let mut guard = self.ipvs.lock().unwrap();
            let table = guard.as_mut().ok_or_else(|| SystemError::new("ipvs", "no IPVS"))?;
            let find = |t: &mut Vec<IpvsService>, k: &ServiceKey| t.iter().position(|s| s.service.key == *k);
            let r = match op {
                Op::AddService(s) if find(table, &s.key).is_some() => Err("exists"),
                Op::AddService(s) => {
                    table.push(IpvsService {
                        service: s.clone(),
                        stats: Stats::default(),
                        destinations: vec![],
                    });
                    Ok(())
                }
                Op::EditService(s) => {
                    find(table, &s.key).map(|i| table[i].service = s.clone()).ok_or("no service")
                }
                Op::DelService(k) => find(table, k).map(|i| drop(table.remove(i))).ok_or("no service"),
                Op::AddDest(k, d) | Op::EditDest(k, d) => match find(table, k) {
                    None => Err("no service"),
                    Some(i) => {
                        let ds = &mut table[i].destinations;
                        ds.retain(|x| x.dest.addr != d.addr);
                        ds.push(DestinationEntry {
                            dest: *d,
                            active_conns: 0,
                            inactive_conns: 0,
                            persist_conns: 0,
                            stats: Stats::default(),
                        });
                        Ok(())
                    }
                },
                Op::DelDest(k, a) => match find(table, k) {
                    None => Err("no service"),
                    Some(i) => {
                        table[i].destinations.retain(|x| x.dest.addr != *a);
                        Ok(())
                    }
                },
                Op::SetTimeouts(t) => {
                    // As the kernel: 0 leaves that one as it is.
                    let mut cur = self.ipvs_timeouts.lock().unwrap();
                    let old = cur.unwrap_or(lvs_ipvs::Timeouts { tcp: 900, tcp_fin: 120, udp: 300 });
                    let pick = |new: u32, old: u32| if new > 0 { new } else { old };
                    *cur = Some(lvs_ipvs::Timeouts {
                        tcp: pick(t.tcp, old.tcp),
                        tcp_fin: pick(t.tcp_fin, old.tcp_fin),
                        udp: pick(t.udp, old.udp),
                    });
                    Ok(())
                }
                Op::StartDaemon(_) | Op::StopDaemon(_) => self.daemon_op(op),
                _ => Ok(()),
            };
            out.push(r.map_err(|e| SystemError::new(op.describe(), e)));
        }
        Ok(out)
    }
}
