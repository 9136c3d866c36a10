//! keepalived.conf rendered from a VRRP spec: every string in it has passed the wire's strict charset, and nothing but what the spec says is written (no scripts, no includes).
use lvs_proto::spec::VrrpSpec;
use std::fmt::Write as _;
use std::path::Path;

/// keepalived's configuration for `spec`, its notify FIFO at `fifo`.
pub fn render(spec: &VrrpSpec, fifo: &Path) -> String {
    let mut c = String::new();
    let advert = format!("{:.2}", f64::from(spec.advert_ms) / 1000.0);
    let _ = writeln!(c, "# Written by lvs-agent from its spec; rewritten on every apply: do not edit.");
    let _ = writeln!(c, "global_defs {{");
    let _ = writeln!(c, "    router_id lvs-agent");
    // VRRPv3: centisecond adverts (v2 has whole seconds only).
    let _ = writeln!(c, "    vrrp_version 3");
    let _ = writeln!(c, "    vrrp_notify_fifo \"{}\"", fifo.display());
    // A gratuitous ARP every 10 s while master, so a router or switch that missed the
    // takeover burst (or throttled it) still moves to this director.
    let _ = writeln!(c, "    vrrp_garp_master_refresh 10");
    let _ = writeln!(c, "    vrrp_garp_master_refresh_repeat 1");
    let _ = writeln!(c, "}}");
    let _ = writeln!(c, "vrrp_instance {} {{", spec.instance);
    // Every director starts as a backup: the highest priority alive becomes master after
    // the master-down timer; `nopreempt` needs this initial state.
    let _ = writeln!(c, "    state BACKUP");
    let _ = writeln!(c, "    interface {}", spec.interface);
    let _ = writeln!(c, "    virtual_router_id {}", spec.vrid);
    let _ = writeln!(c, "    priority {}", spec.priority);
    let _ = writeln!(c, "    advert_int {advert}");
    if !spec.preempt {
        let _ = writeln!(c, "    nopreempt");
    }
    let _ = writeln!(c, "    unicast_src_ip {}", spec.unicast_source);
    let _ = writeln!(c, "    unicast_peer {{");
    for p in &spec.unicast_peers {
        let _ = writeln!(c, "        {p}");
    }
    let _ = writeln!(c, "    }}");
    // The adverts carry the VIPs of their own family only; a dual-stack director's other
    // family goes in `virtual_ipaddress_excluded`, which keepalived adds and removes with
    // the same state changes (IPv6 without DAD) and announces the same way (unsolicited
    // neighbour adverts for IPv6), without putting them in the adverts.
    let v6 = spec.unicast_source.is_ipv6();
    for (block, same) in [("virtual_ipaddress", true), ("virtual_ipaddress_excluded", false)] {
        let vips: Vec<_> = spec.vips.iter().filter(|v| (v.address.addr().is_ipv6() == v6) == same).collect();
        if vips.is_empty() {
            continue;
        }
        let _ = writeln!(c, "    {block} {{");
        for v in vips {
            let label = v
                .label
                .as_ref()
                .filter(|_| v.address.addr().is_ipv4())
                .map(|l| format!(" label {l}"))
                .unwrap_or_default();
            let _ = writeln!(c, "        {} dev {}{label}", v.address, v.interface);
        }
        let _ = writeln!(c, "    }}");
    }
    let _ = writeln!(c, "}}");
    c
}

/// keepalived's command line: VRRP only, in the foreground, logging to the console (the
/// agent copies it into its own log), with its files in `dir`.
pub(crate) fn args(config: &Path, dir: &Path) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = [
        "--vrrp",
        "--dont-fork",
        // A stopping master keeps its VIPs until the engine restarts as a backup (which
        // drops them): during a hand-over it goes on forwarding what still reaches it
        // until the router has the new master's gratuitous ARP. A final stop releases
        // them itself.
        "--dont-release-vrrp",
        "--log-console",
        "--no-syslog",
        "--use-file",
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    a.push(config.into());
    a.extend(["--pid".into(), dir.join("keepalived.pid").into_os_string()]);
    a.extend(["--vrrp_pid".into(), dir.join("vrrp.pid").into_os_string()]);
    a
}
