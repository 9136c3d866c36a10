//! Human-readable views of planned state.
use std::fmt::Write;

use lvs_proto::spec::{
    AddressPurpose, CheckSpec, DestinationCheck, HealthCheckSpec, NodeSpec, OnFailure, ProbeKind,
    RoutePurpose, Step, TlsVerify, VirtualServiceSpec,
};

/// The whole plan: every node, its steps in apply order.
pub fn plan(specs: &[NodeSpec], agents: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        node(&mut out, spec, &agents(&spec.node));
    }
    out
}

fn node(out: &mut String, spec: &NodeSpec, agent: &str) {
    let _ = writeln!(out, "{} ({}, agent {agent}, generation {})", spec.node, spec.role, spec.generation);
    for (n, step) in spec.steps().into_iter().enumerate() {
        let n = n + 1;
        let line = match step {
            Step::Address(a) => {
                let label = a.label.as_deref().map(|l| format!(" label {l}")).unwrap_or_default();
                let why = match a.purpose {
                    AddressPurpose::Lan => "LAN address",
                    AddressPurpose::Vip => "VIP alias; the director answers ARP for it",
                    AddressPurpose::HiddenVip => "hidden VIP; accepts the director's frames, never announced",
                };
                format!("address  {} on {}{label}  ({why})", a.address, a.interface)
            }
            Step::Route(r) => {
                let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
                let dev = r.device.as_deref().map(|d| format!(" dev {d}")).unwrap_or_default();
                let why = match r.purpose {
                    RoutePurpose::DefaultGateway => {
                        "default gateway; replies go to the router, not the director"
                    }
                    RoutePurpose::VipHost => "host route to the VIP on lo",
                };
                format!("route    {}{via}{dev}  ({why})", r.destination)
            }
            Step::Sysctl(s) => format!("sysctl   {} = {}  ({})", s.key, s.value, s.reason),
            Step::VirtualService(v) => service(v),
            Step::Check(c) => format!("check    {}", check(c)),
        };
        let _ = writeln!(out, "  {n:>2}. {line}");
    }
    if let Some(t) = spec.ipvs_timeouts {
        let v = |x: Option<u32>| x.map_or("kernel's".to_string(), |s| format!("{s}s"));
        let _ = writeln!(
            out,
            "      ipvs     timeouts tcp {} tcp_fin {} udp {}  (ipvsadm --set)",
            v(t.tcp_s),
            v(t.tcp_fin_s),
            v(t.udp_s)
        );
    }
    for m in &spec.marks {
        let _ =
            writeln!(out, "      nft      {m}  (table inet lvs_dr, the agent's own; IPVS takes the mark)");
    }
    if let Some(v) = &spec.vrrp {
        vrrp(out, v);
    }
    if let Some(b) = &spec.bgp {
        bgp(out, b);
    }
    if let Some(a) = &spec.arp_watch {
        arp_watch(out, a);
    }
}

/// What the router asks in ARP or neighbour solicitation, and who may answer.
fn arp_watch(out: &mut String, a: &lvs_proto::spec::ArpWatchSpec) {
    for l in &a.lans {
        for v in &l.vips {
            let who = if v.holders.is_empty() {
                "nobody (reached by BGP next hop)".to_string()
            } else {
                v.holders.join(" or ")
            };
            let (word, how) =
                if l.source.is_ipv6() { ("nd ", "neighbour solicitation") } else { ("arp", "ARP") };
            let _ = writeln!(
                out,
                "      {word}      watch {} on {} every {} ms ({how}): may answer {}  (a real server answering is a leak)",
                v.address, l.interface, a.interval_ms, who
            );
        }
    }
}

/// The VRRP instance the director's engine runs, and the sync daemon beside it.
fn vrrp(out: &mut String, v: &lvs_proto::spec::VrrpSpec) {
    let peers: Vec<String> = v.unicast_peers.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "      vrrp     instance {} vrid {} priority {} advert {} ms on {} from {} to [{}]{}  (keepalived, the agent's child)",
        v.instance,
        v.vrid,
        v.priority,
        v.advert_ms,
        v.interface,
        v.unicast_source,
        peers.join(", "),
        if v.preempt { " preempt" } else { "" }
    );
    for a in &v.vips {
        let _ = writeln!(out, "      vrrp     vip {} on {}  (held while master)", a.address, a.interface);
    }
    if let Some(d) = &v.sync_daemon {
        let _ = writeln!(
            out,
            "      vrrp     sync daemon on {} sync id {}  (master on the VRRP master, backup elsewhere)",
            d.interface, d.sync_id
        );
    }
}

/// The BGP sessions of the node's routing daemon, and what a director announces.
fn bgp(out: &mut String, b: &lvs_proto::spec::BgpSpec) {
    let _ = writeln!(
        out,
        "      bgp      as {} router id {} hold {} s, bfd {} ms x {}  (BIRD, the agent's child)",
        b.local_asn, b.router_id, b.hold_s, b.bfd_interval_ms, b.bfd_multiplier
    );
    for p in &b.peers {
        let _ = writeln!(
            out,
            "      bgp      session {} {} as {} from {}",
            p.name, p.address, p.asn, p.local_address
        );
    }
    for a in &b.announce {
        let _ = writeln!(
            out,
            "      bgp      announce {a}  (while IPVS has its services and they are at quorum)"
        );
    }
    if b.install_routes {
        let _ = writeln!(
            out,
            "      bgp      install the directors' routes as one multipath (ECMP) route per VIP"
        );
    }
}

fn service(v: &VirtualServiceSpec) -> String {
    let mut s = format!("ipvs     {} {}", v.key, v.scheduler);
    if let Some(p) = v.persistence {
        let _ = write!(s, " persistent {}s", p.timeout_s);
    }
    for f in &v.flags {
        // The definition names the two scheduler bits after sh; mh reads them as its own.
        let name = match (v.scheduler.as_str(), f.as_str()) {
            ("mh", "sh-fallback") => "mh-fallback",
            ("mh", "sh-port") => "mh-port",
            (_, n) => n,
        };
        let _ = write!(s, " {name}");
    }
    let _ = write!(s, "  (service {})", v.name);
    for d in &v.destinations {
        let _ = write!(s, "\n               -> {} {} weight {}", d.address, d.forwarding.as_str(), d.weight);
        if d.upper_threshold > 0 || d.lower_threshold > 0 {
            let _ = write!(s, " thresholds {}..{}", d.lower_threshold, d.upper_threshold);
        }
        let _ = write!(s, "  ({})", d.node);
        match &d.check {
            DestinationCheck::Service => {}
            DestinationCheck::Own(h) => {
                let _ = write!(s, "\n                  its own check: {}", health(h));
            }
            DestinationCheck::Off => {
                let _ = write!(s, "\n                  not checked");
            }
        }
    }
    if let Some(h) = &v.health_check {
        let _ = write!(s, "\n               health check: {}", health(h));
    }
    if v.quorum > 1 || v.hysteresis > 0 {
        let _ = write!(s, "\n               quorum {} (hysteresis {})", v.quorum, v.hysteresis);
    }
    if let Some(d) = &v.sorry {
        let _ = write!(s, "\n               sorry server {} ({}) below quorum", d.address, d.node);
    }
    if !v.notify.is_empty() {
        let _ = write!(s, "\n               notify: {}", v.notify.join(" "));
    }
    s
}

fn health(h: &HealthCheckSpec) -> String {
    let probe = probe(h);
    let action = match h.on_failure {
        OnFailure::Weight0 => "weight 0",
        OnFailure::Remove => "remove",
    };
    let mut out = format!(
        "{probe} every {}ms timeout {}ms, rise {} fall {}, on failure {action}",
        h.interval_ms, h.timeout_ms, h.rise, h.fall
    );
    if let Some(r) = h.retry_interval_ms {
        let _ = write!(out, ", retry after {r}ms");
    }
    out
}

/// What a probe does, in words: `HTTPS GET /health expect 200 SNI www ...`.
pub fn probe(h: &HealthCheckSpec) -> String {
    let mut p = match &h.probe {
        ProbeKind::Http {
            path,
            expect_status,
            expect_body,
            host,
            expect_digest,
            tls,
            reuse_connection,
            urls,
        } => {
            let scheme = if tls.is_some() { "HTTPS" } else { "HTTP" };
            let mut p = format!("{scheme} GET {path} expect {expect_status}");
            if let Some(b) = expect_body {
                let _ = write!(p, " body contains {b:?}");
            }
            if let Some(d) = expect_digest {
                let _ = write!(p, " body md5 {d}");
            }
            if let Some(h) = host {
                let _ = write!(p, " Host {h}");
            }
            if let Some(t) = tls {
                if let Some(n) = &t.sni {
                    let _ = write!(p, " SNI {n}");
                }
                let _ = match &t.verify {
                    TlsVerify::System => write!(p, " verified by the system CAs"),
                    TlsVerify::CaFile(f) => write!(p, " verified by {f}"),
                    TlsVerify::Skip => write!(p, " UNVERIFIED"),
                };
            }
            for u in urls {
                let _ = write!(p, ", then GET {} expect {}", u.path, u.expect_status);
                if let Some(b) = &u.expect_body {
                    let _ = write!(p, " body contains {b:?}");
                }
                if let Some(d) = &u.expect_digest {
                    let _ = write!(p, " body md5 {d}");
                }
                if let Some(h) = &u.host {
                    let _ = write!(p, " Host {h}");
                }
            }
            if !reuse_connection {
                p.push_str(", a new connection every probe");
            }
            p
        }
        ProbeKind::Tcp => "TCP connect".into(),
        ProbeKind::Exec { command } => format!("exec {}", command.join(" ")),
    };
    match (h.connect_ip, h.connect_port) {
        (Some(ip), Some(port)) => {
            let _ = write!(p, " at {}", std::net::SocketAddr::new(ip, port));
        }
        (Some(ip), None) => {
            let _ = write!(p, " at {ip}");
        }
        (None, Some(port)) => {
            let _ = write!(p, " on port {port}");
        }
        (None, None) => {}
    }
    p
}

/// One line describing a check.
pub fn check(c: &CheckSpec) -> String {
    match c {
        CheckSpec::KernelIpvs { schedulers } => {
            format!("kernel has IPVS and the schedulers {}", schedulers.join(", "))
        }
        CheckSpec::ClockOffset { server, max_offset_ms } => {
            format!("clock within {max_offset_ms}ms of NTP server {server}")
        }
        CheckSpec::NtpServing { address } => format!("NTP server answers on {address}"),
        CheckSpec::HttpLocal { port, path } => {
            format!("local httpd answers GET http://127.0.0.1:{port}{path}")
        }
        CheckSpec::GatewayIsNot { forbidden } => {
            let f: Vec<String> = forbidden.iter().map(ToString::to_string).collect();
            format!("default gateway is not a director address ({})", f.join(", "))
        }
        CheckSpec::FirewallAllows { service } => {
            format!("no firewall rule drops {service} (reported, never flushed)")
        }
    }
}

/// A wire service key as `ipvsadm` names it: `TCP 198.18.0.100:80`, `FWM 3`.
pub fn key_text(k: &lvs_proto::pb::ServiceKey) -> String {
    lvs_proto::wire::service_key("service", k).map(|k| k.to_string()).unwrap_or_else(|e| format!("<{e}>"))
}
