//! The import written as a definition file: every table in the order `lab.toml` has them,
//! each service preceded by the keepalived options it could not carry, as comments.
use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use toml::Value;

use super::checks;
use super::services;
use super::skeleton::{Note, Options, Pairs, Service, Skeleton};

/// The node name of a real server at `ip`.
pub fn rs_name(ip: IpAddr) -> String {
    format!("rs-{}", ip.to_string().replace(['.', ':'], "-"))
}

fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn inline(p: &Pairs) -> String {
    let body: Vec<String> = p.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", body.join(", "))
}

fn comments(out: &mut String, notes: &[Note]) {
    let mut seen = BTreeSet::new();
    for n in notes {
        if !seen.insert((n.line, &n.text, &n.why)) {
            continue;
        }
        let at = if n.line > 0 { format!("{}:{}", n.file, n.line) } else { n.file.clone() };
        let _ = writeln!(out, "# {at}: `{}`: {}", n.text.replace('\n', " "), n.why);
    }
}

/// The definition text.
pub fn render(sk: &Skeleton, opts: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported from keepalived.conf by `lvsctl import keepalived` ({}).\n\
         # Review it, then run `lvsctl -f THIS_FILE validate`. Every keepalived option that\n\
         # is not carried over is listed as a comment where it belongs, with the reason.",
        env!("CARGO_PKG_VERSION")
    );
    if !sk.notes.is_empty() {
        out.push('\n');
        comments(&mut out, &sk.notes);
    }
    let cidrs: Vec<String> = lans(sk, opts).iter().map(|l| l.to_string()).collect();
    let _ = writeln!(
        out,
        "\n[cluster]\nname = {}\ngeneration = 1\n\n[time]\nntp_server = {}\n\n[[lans]]\nname = \"cluster\"\ncidr = {}",
        quoted(&sk.name),
        quoted(&opts.router.to_string()),
        one_or_many(&cidrs)
    );
    nodes(&mut out, sk, opts);
    for s in &sk.services {
        service(&mut out, s);
    }
    for v in &sk.vrrp {
        let directors: Vec<String> =
            v.directors.iter().map(|(d, p)| format!("{{ node = {}, priority = {p} }}", quoted(d))).collect();
        let _ = writeln!(
            out,
            "\n[[vrrp]]\nname = {}\nvrid = {}\nadvert = {}\npreempt = {}\nsync_daemon = {}\ndirectors = [{}]",
            quoted(&v.name),
            v.vrid,
            checks::duration(v.advert_ms as f64 / 1000.0),
            v.preempt,
            v.sync_daemon,
            directors.join(", ")
        );
    }
    out
}

/// The LAN's subnets: the first director's, and on a dual-stack LAN the other family's.
fn lans(sk: &Skeleton, opts: &Options) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = sk.lan.into_iter().collect();
    let other = opts.other_family.as_ref().and_then(|o| o.directors.first()).map(|(_, a)| a.trunc());
    out.extend(other.filter(|o| out.iter().all(|l| l.addr().is_ipv6() != o.addr().is_ipv6())));
    out
}

/// A TOML value: one quoted string, or a list of them.
fn one_or_many(values: &[String]) -> String {
    match values {
        [one] => quoted(one),
        many => format!("[{}]", many.iter().map(|v| quoted(v)).collect::<Vec<_>>().join(", ")),
    }
}

/// The router, the directors (holding every VIP) and one node per real server.
fn nodes(out: &mut String, sk: &Skeleton, opts: &Options) {
    let lans = lans(sk, opts);
    let port = opts.agent_port;
    // Each address with the prefix of its family's subnet (the first's when the LAN has
    // none of that family: validation then names the address).
    let with_prefix = |ip: IpAddr| {
        let len = lans
            .iter()
            .find(|l| l.addr().is_ipv6() == ip.is_ipv6())
            .or(lans.first())
            .map_or(24, |l| l.prefix_len());
        format!("{ip}/{len}")
    };
    let iface = |name: &str, ips: &[IpAddr]| {
        let addrs: Vec<String> = ips.iter().map(|ip| with_prefix(*ip)).collect();
        format!("[{{ name = {}, lan = \"cluster\", address = {} }}]", quoted(name), one_or_many(&addrs))
    };
    let other = opts.other_family.clone().unwrap_or_default();
    let routers: Vec<IpAddr> = std::iter::once(opts.router).chain(other.router).collect();
    let _ = writeln!(
        out,
        "\n[[nodes]]\nname = \"router\"\nrole = \"router\"\nagent = {}\ninterfaces = {}",
        quoted(&SocketAddr::new(opts.router, port).to_string()),
        iface("eth0", &routers)
    );
    let dir_if = opts
        .interface
        .clone()
        .or_else(|| sk.vrrp.iter().find_map(|v| v.interface.clone()))
        .unwrap_or_else(|| "eth0".into());
    let mut vips: Vec<IpAddr> = sk.services.iter().filter_map(|s| s.vip).collect();
    vips.extend(&sk.extra_vips);
    let mut seen = BTreeSet::new();
    vips.retain(|v| seen.insert(*v));
    let vip_list: Vec<String> = vips
        .iter()
        .map(|v| {
            let host = if v.is_ipv4() { 32 } else { 128 };
            format!("{{ address = {}, interface = {} }}", quoted(&format!("{v}/{host}")), quoted(&dir_if))
        })
        .collect();
    for (name, addr) in &opts.directors {
        let mine: Vec<IpAddr> = std::iter::once(addr.addr())
            .chain(other.directors.iter().filter(|(n, _)| n == name).map(|(_, a)| a.addr()))
            .collect();
        let _ = writeln!(
            out,
            "\n[[nodes]]\nname = {}\nrole = \"director\"\nagent = {}\ninterfaces = {}\nvips = [{}]",
            quoted(name),
            quoted(&SocketAddr::new(addr.addr(), port).to_string()),
            iface(&dir_if, &mine),
            vip_list.join(", ")
        );
    }
    let mut rss = BTreeSet::new();
    for s in &sk.services {
        rss.extend(s.real_servers.iter().map(|r| r.ip));
        rss.extend(s.sorry);
    }
    for ip in rss {
        // keepalived.conf does not say which IPv4 and IPv6 real servers are one host: one
        // node per address, its gateway the router's address of its family.
        let gw = routers.iter().find(|r| r.is_ipv6() == ip.is_ipv6()).unwrap_or(&opts.router);
        let _ = writeln!(
            out,
            "\n[[nodes]]\nname = {}\nrole = \"real_server\"\nagent = {}\ninterfaces = {}\ngateway = {}",
            quoted(&rs_name(ip)),
            quoted(&SocketAddr::new(ip, port).to_string()),
            iface(&opts.rs_interface, &[ip]),
            quoted(&gw.to_string())
        );
    }
}

/// One `[[services]]` table, its notes first.
fn service(out: &mut String, s: &Service) {
    out.push_str("\n[[services]]\n");
    let (check, overrides) = services::shared_check(s);
    let mut notes = s.notes.clone();
    let mut check = check;
    if let Some(c) = check.as_mut() {
        let inhibit = s.real_servers.iter().filter(|r| r.inhibit).count();
        let on_failure = if inhibit > 0 && inhibit == s.real_servers.len() { "weight0" } else { "remove" };
        if inhibit > 0 && inhibit < s.real_servers.len() {
            notes.push(Note {
                file: s.file.clone(),
                line: 0,
                text: "inhibit_on_failure".into(),
                why: "set on some real servers only: on_failure is per service here, so failed real servers are removed".into(),
            });
        }
        c.push(("on_failure", Value::String(on_failure.into())));
    }
    comments(out, &notes);
    let _ = writeln!(out, "name = {}\nprotocol = {}", quoted(&s.name), quoted(&s.protocol));
    if let Some(v) = s.vip {
        let _ = writeln!(out, "vip = {}", quoted(&v.to_string()));
    }
    if let Some(p) = s.port {
        let _ = writeln!(out, "port = {p}");
    }
    if let Some(m) = s.fwmark {
        let _ = writeln!(out, "fwmark = {m}");
    }
    if !s.marks.is_empty() {
        let m: Vec<String> = s
            .marks
            .iter()
            .map(|(p, ports)| match ports.is_empty() {
                true => format!("{{ protocol = {} }}", quoted(p)),
                false => format!("{{ protocol = {}, ports = [{}] }}", quoted(p), ports.join(", ")),
            })
            .collect();
        let _ = writeln!(out, "marks = [{}]", m.join(", "));
    }
    let _ = writeln!(out, "scheduler = {}", quoted(&s.scheduler));
    if let Some((t, mask)) = &s.persistence {
        let mask = mask.as_ref().map(|m| format!(", netmask = {}", quoted(m))).unwrap_or_default();
        let _ = writeln!(out, "persistence = {{ timeout = \"{t}s\"{mask} }}");
    }
    if !s.flags.is_empty() {
        let f: Vec<String> = s.flags.iter().map(|f| quoted(f)).collect();
        let _ = writeln!(out, "flags = [{}]", f.join(", "));
    }
    if let Some(q) = s.quorum {
        let _ = writeln!(out, "quorum = {q}");
    }
    if let Some(h) = s.hysteresis {
        let _ = writeln!(out, "hysteresis = {h}");
    }
    if let Some(c) = &check {
        let _ = writeln!(out, "check = {}", inline(c));
    }
    if let Some(ip) = s.sorry {
        let _ = writeln!(out, "sorry_server = {{ node = {} }}", quoted(&rs_name(ip)));
    }
    out.push_str("real_servers = [\n");
    for (r, own) in s.real_servers.iter().zip(overrides) {
        let mut line = format!("  {{ node = {}, weight = {}", quoted(&rs_name(r.ip)), r.weight);
        if let Some(u) = r.upper {
            let _ = write!(line, ", upper_threshold = {u}");
        }
        if let Some(l) = r.lower {
            let _ = write!(line, ", lower_threshold = {l}");
        }
        if let Some(o) = own {
            let _ = write!(line, ", check = {}", inline(&o));
        }
        let _ = writeln!(out, "{line} }},");
    }
    out.push_str("]\n");
}
