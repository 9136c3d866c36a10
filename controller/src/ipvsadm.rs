//! ipvsadm interop: the `ipvsadm -S -n` rule text, read completely and written back.
//!
//! `lvsctl ipvs save` prints a director's table in this form (so it can be diffed with, or
//! fed to, `ipvsadm -R`), and `lvsctl ipvs restore` reads it to bring a hand-made table
//! into a definition. Both go through [`SavedService`]: every option `ipvsadm -S` writes
//! has a field, so `parse(render(x)) == x` for every flag (tested below), and nothing a
//! user's dump says is dropped without a word.
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use lvs_proto::reply::{Forward, IpvsTable};
use lvs_proto::spec::ServiceKey;
use serde::Serialize;

/// IPVS service flag bits (`include/uapi/linux/ip_vs.h`), as the table reports them.
pub(crate) const F_PERSISTENT: u32 = 0x1;
const F_ONEPACKET: u32 = 0x4;
const F_SCHED1: u32 = 0x8;
const F_SCHED2: u32 = 0x10;
const F_SCHED3: u32 = 0x20;

/// One virtual service of an `ipvsadm -S` dump.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SavedService {
    /// `tcp`, `udp`, `sctp` or `fwmark`.
    pub protocol: String,
    /// `VIP:port`, or the mark.
    pub address: String,
    /// `-6` on a fwmark service.
    pub ipv6: bool,
    /// `-s`.
    pub scheduler: String,
    /// `-b`: scheduler flags (`flag-1`…`flag-3`, or their sh names `sh-fallback`, `sh-port`).
    pub sched_flags: Vec<String>,
    /// `-p`: persistence timeout in seconds.
    pub persistent: Option<u32>,
    /// `-M`: persistence netmask (dotted IPv4, or an IPv6 prefix length).
    pub netmask: Option<String>,
    /// `--pe`: persistence engine (e.g. `sip`).
    pub pe: Option<String>,
    /// `-o`: one-packet scheduling.
    pub one_packet: bool,
    /// `-a` lines of this service.
    pub reals: Vec<SavedReal>,
}

/// One real server (`-a`) of a dump.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SavedReal {
    /// `-r`: `RIP:port`.
    pub address: String,
    /// `-g` (route), `-i` (tunnel) or `-m` (masquerade).
    pub forwarding: String,
    /// `-w`.
    pub weight: u32,
    /// `-x`: upper connection threshold (0: none).
    pub upper: u32,
    /// `-y`: lower connection threshold (0: none).
    pub lower: u32,
    /// Tunnel options of an `-i` real server, as written (`--tun-type ipip`, `--tun-port N`,
    /// `--tun-nocsum`, …).
    pub tunnel: Vec<String>,
}

/// Read `ipvsadm -S -n` text. Every option is read; an unknown one is an error naming
/// its line.
// Long on purpose: one flat arm per ipvsadm option, in ipvsadm's own order, so the
// reader checks it against `ipvsadm(8)` in one place.
pub fn parse(text: &str) -> Result<Vec<SavedService>, String> {
    let mut out: Vec<SavedService> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let bad = |m: &str| format!("line {}: {m}: `{line}`", i + 1);
        let mut svc = SavedService { scheduler: "wlc".into(), ..Default::default() };
        let mut sel: Option<(&str, String)> = None;
        let mut real = SavedReal { forwarding: "-g".into(), weight: 1, ..Default::default() };
        // (a fresh one per line: tunnel options belong to their -a line only)
        let mut has_real = false;
        let mut j = 1;
        while j < w.len() {
            let val = |j: usize| w.get(j + 1).copied().ok_or_else(|| bad(&format!("{} needs a value", w[j])));
            let num = |j: usize, what: &str| -> Result<u32, String> {
                val(j)?.parse().map_err(|_| bad(&format!("bad {what}")))
            };
            let mut takes_value = true;
            match w[j] {
                "-t" | "--tcp-service" => sel = Some(("tcp", val(j)?.to_string())),
                "-u" | "--udp-service" => sel = Some(("udp", val(j)?.to_string())),
                "--sctp-service" => sel = Some(("sctp", val(j)?.to_string())),
                "-f" | "--fwmark-service" => sel = Some(("fwmark", val(j)?.to_string())),
                "-s" | "--scheduler" => svc.scheduler = val(j)?.to_string(),
                "-b" | "--sched-flags" => svc.sched_flags = val(j)?.split(',').map(String::from).collect(),
                "-p" | "--persistent" => svc.persistent = Some(num(j, "persistence timeout")?),
                "-M" | "--netmask" => svc.netmask = Some(val(j)?.to_string()),
                "--pe" => svc.pe = Some(val(j)?.to_string()),
                "-r" | "--real-server" => {
                    real.address = val(j)?.to_string();
                    has_real = true;
                }
                "-w" | "--weight" => real.weight = num(j, "weight")?,
                "-x" | "--u-threshold" => real.upper = num(j, "upper threshold")?,
                "-y" | "--l-threshold" => real.lower = num(j, "lower threshold")?,
                "-g" | "--gatewaying" | "-i" | "--ipip" | "-m" | "--masquerading" => {
                    real.forwarding = match w[j] {
                        "-i" | "--ipip" => "-i",
                        "-m" | "--masquerading" => "-m",
                        _ => "-g",
                    }
                    .into();
                    takes_value = false;
                }
                "--tun-type" | "--tun-port" => {
                    real.tunnel.extend([w[j].to_string(), val(j)?.to_string()]);
                }
                "--tun-nocsum" | "--tun-csum" | "--tun-remcsum" => {
                    real.tunnel.push(w[j].to_string());
                    takes_value = false;
                }
                "-o" | "--ops" => {
                    svc.one_packet = true;
                    takes_value = false;
                }
                "-6" | "--ipv6" => {
                    svc.ipv6 = true;
                    takes_value = false;
                }
                other => return Err(bad(&format!("unknown option {other}"))),
            }
            j += if takes_value { 2 } else { 1 };
        }
        let (proto, addr) = sel.ok_or_else(|| bad("no service (-t, -u, --sctp-service or -f)"))?;
        match w[0] {
            "-A" | "--add-service" => {
                svc.protocol = proto.into();
                svc.address = addr;
                out.push(svc);
            }
            "-a" | "--add-server" => {
                if !has_real {
                    return Err(bad("-a without -r"));
                }
                let s = out
                    .iter_mut()
                    .find(|s| s.protocol == proto && s.address == addr)
                    .ok_or_else(|| bad("real server of a service not added before"))?;
                s.reals.push(real);
            }
            _ => return Err(bad("expected -A or -a")),
        }
    }
    Ok(out)
}

/// The selector of a service (`-t VIP:port`, `-f 7 -6`, …).
fn selector(s: &SavedService) -> String {
    match s.protocol.as_str() {
        "udp" => format!("-u {}", s.address),
        "sctp" => format!("--sctp-service {}", s.address),
        "fwmark" if s.ipv6 => format!("-f {} -6", s.address),
        "fwmark" => format!("-f {}", s.address),
        _ => format!("-t {}", s.address),
    }
}

/// Write services as `ipvsadm -S -n` does, option for option.
pub fn render(services: &[SavedService]) -> String {
    let mut out = String::new();
    for s in services {
        let sel = selector(s);
        // ipvsadm's own order (held against its dump by the VM suite).
        let mut line = format!("-A {sel} -s {}", s.scheduler);
        if let Some(p) = s.persistent {
            let _ = write!(line, " -p {p}");
        }
        if let Some(m) = &s.netmask {
            let _ = write!(line, " -M {m}");
        }
        if let Some(pe) = &s.pe {
            let _ = write!(line, " --pe {pe}");
        }
        if s.one_packet {
            line.push_str(" -o");
        }
        if !s.sched_flags.is_empty() {
            let _ = write!(line, " -b {}", s.sched_flags.join(","));
        }
        let _ = writeln!(out, "{line}");
        for r in &s.reals {
            let mut line = format!("-a {sel} -r {} {} -w {}", r.address, r.forwarding, r.weight);
            // ipvsadm 1.31's -S leaves thresholds out; they are written here (ipvsadm -R
            // reads them) so that a save loses nothing.
            if r.upper > 0 {
                let _ = write!(line, " -x {}", r.upper);
            }
            if r.lower > 0 {
                let _ = write!(line, " -y {}", r.lower);
            }
            for t in &r.tunnel {
                let _ = write!(line, " {t}");
            }
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// A director's table (already in ipvsadm's order) as dump entries.
pub fn from_table(t: &IpvsTable) -> Vec<SavedService> {
    t.services
        .iter()
        .map(|svc| {
            let (protocol, address, ipv6) = match svc.key {
                ServiceKey::Addr { protocol, address } => {
                    (protocol.as_str().to_ascii_lowercase(), address.to_string(), address.is_ipv6())
                }
                ServiceKey::Fwmark { mark, ipv6 } => ("fwmark".to_string(), mark.to_string(), ipv6),
            };
            // ipvsadm names the scheduler flags after the scheduler that reads them.
            let names: [&str; 3] = match svc.scheduler.as_str() {
                "sh" => ["sh-fallback", "sh-port", "flag-3"],
                "mh" => ["mh-fallback", "mh-port", "flag-3"],
                _ => ["flag-1", "flag-2", "flag-3"],
            };
            let sched_flags: Vec<String> = [F_SCHED1, F_SCHED2, F_SCHED3]
                .into_iter()
                .zip(names)
                .filter(|(bit, _)| svc.flags & bit != 0)
                .map(|(_, n)| n.to_string())
                .collect();
            let persistent = (svc.flags & F_PERSISTENT != 0).then_some(svc.timeout_s);
            // ipvsadm writes an IPv4 mask dotted, an IPv6 one as its prefix length, each only
            // when it is not the host mask.
            let netmask = persistent.and_then(|_| match ipv6 {
                false if svc.netmask != 0 && svc.netmask != u32::MAX => {
                    Some(Ipv4Addr::from(svc.netmask).to_string())
                }
                true if svc.netmask != 128 => Some(svc.netmask.to_string()),
                _ => None,
            });
            SavedService {
                protocol,
                address,
                ipv6,
                scheduler: svc.scheduler.clone(),
                sched_flags,
                persistent,
                netmask,
                pe: None,
                one_packet: svc.flags & F_ONEPACKET != 0,
                reals: svc
                    .destinations
                    .iter()
                    .map(|d| SavedReal {
                        address: d.address.to_string(),
                        forwarding: match d.forward {
                            Forward::Masq => "-m",
                            Forward::Tunnel => "-i",
                            Forward::Route | Forward::Local => "-g",
                        }
                        .into(),
                        weight: d.weight,
                        upper: d.upper_threshold,
                        lower: d.lower_threshold,
                        // The kernel's default tunnel, as ipvsadm writes it.
                        tunnel: if d.forward == Forward::Tunnel {
                            vec!["--tun-type".into(), "ipip".into()]
                        } else {
                            Vec::new()
                        },
                    })
                    .collect(),
            }
        })
        .collect()
}

/// `[[services]]` of a definition, as serde writes them.
#[derive(Debug, Serialize)]
struct Services {
    services: Vec<ServiceOut>,
}

#[derive(Debug, Serialize)]
struct ServiceOut {
    name: String,
    protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    vip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    scheduler: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    persistence: Option<PersistenceOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    flags: Vec<String>,
    real_servers: Vec<RealOut>,
}

#[derive(Debug, Serialize)]
struct PersistenceOut {
    timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    netmask: Option<String>,
}

#[derive(Debug, Serialize)]
struct RealOut {
    node: String,
    weight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lower_threshold: Option<u32>,
}

/// `ipvsadm -S` text as `[[services]]` TOML for a definition. Real servers are named by
/// the node of `cluster` holding their address; what a definition cannot say (another
/// forwarding method than DR, a persistence engine, a real server no node has, a fwmark
/// service's VIP) is listed in comments above the TOML, never dropped silently.
// Long on purpose: each `-S` field meets its definition key here, with the note that
// says why one cannot be carried over, in the order a reader compares them.
pub fn to_definition(cluster: Option<&crate::model::Cluster>, text: &str) -> Result<String, String> {
    let services = parse(text)?;
    let mut notes = Vec::new();
    let mut out = Vec::new();
    for (i, s) in services.iter().enumerate() {
        let name = format!("svc{}", i + 1);
        let (vip, port, fwmark) = if s.protocol == "fwmark" {
            let mark = s.address.parse().map_err(|_| format!("service {}: bad fwmark", s.address))?;
            notes.push(format!("{name}: fwmark {mark}: set vip to the address the mark stands for"));
            (Some("FIXME".to_string()), None, Some(mark))
        } else {
            let a: SocketAddr = s.address.parse().map_err(|e| format!("service {}: {e}", s.address))?;
            (Some(a.ip().to_string()), Some(a.port()), None)
        };
        if let Some(pe) = &s.pe {
            notes.push(format!("{name}: persistence engine `{pe}` is not supported by lvs-dr; dropped"));
        }
        let mut flags: Vec<String> = s
            .sched_flags
            .iter()
            // The definition names the (shared) bits after sh; mh reads the same ones.
            .map(|f| match f.as_str() {
                "flag-1" | "mh-fallback" => "sh-fallback".to_string(),
                "flag-2" | "mh-port" => "sh-port".to_string(),
                other => other.to_string(),
            })
            .collect();
        if s.one_packet {
            flags.push("one-packet".into());
        }
        let mut reals = Vec::new();
        for r in &s.reals {
            let ip = r
                .address
                .parse::<SocketAddr>()
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|_| r.address.clone());
            if r.forwarding != "-g" {
                notes.push(format!(
                    "{name}: real server {} was not direct routing ({}); lvs-dr manages DR only",
                    r.address, r.forwarding
                ));
            }
            let node = cluster
                .and_then(|c| {
                    c.nodes
                        .iter()
                        .find(|n| n.interfaces.iter().any(|i| i.address.addr().to_string() == ip))
                        .map(|n| n.name.clone())
                })
                .unwrap_or_else(|| {
                    notes.push(format!("{name}: no node has {ip}: add a real_server node with that address"));
                    format!("FIXME-{}", ip.replace([':', '.'], "-"))
                });
            reals.push(RealOut {
                node,
                weight: r.weight,
                upper_threshold: (r.upper > 0).then_some(r.upper),
                lower_threshold: (r.lower > 0).then_some(r.lower),
            });
        }
        out.push(ServiceOut {
            name,
            protocol: s.protocol.clone(),
            vip,
            port,
            fwmark,
            scheduler: s.scheduler.clone(),
            persistence: s
                .persistent
                .map(|t| PersistenceOut { timeout: format!("{t}s"), netmask: s.netmask.clone() }),
            flags,
            real_servers: reals,
        });
    }
    let toml = toml::to_string(&Services { services: out }).map_err(|e| e.to_string())?;
    let mut text = String::from(
        "# Converted from `ipvsadm -S` by `lvsctl ipvs restore`; review, then paste into the definition.\n",
    );
    for n in &notes {
        let _ = writeln!(text, "# NOTE {n}");
    }
    text.push('\n');
    text.push_str(&toml);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option `ipvsadm -S` writes, on services and real servers.
    const EVERY_FLAG: &str = "\
-A -t 198.18.0.100:80 -s wrr
-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 3 -x 100 -y 10
-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 0
-A -t 198.18.0.100:443 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port
-a -t 198.18.0.100:443 -r 198.18.0.11:443 -g -w 1
-A -u 198.18.0.100:53 -s rr -o
-a -u 198.18.0.100:53 -r 198.18.0.12:53 -i -w 2 --tun-type gue --tun-port 6080 --tun-nocsum
-A -u 198.18.0.100:5060 -s rr -p 60 --pe sip
-a -u 198.18.0.100:5060 -r 198.18.0.12:5060 -m -w 1
-A --sctp-service 198.18.0.100:9 -s lc
-A -f 7 -s mh -b flag-1
-a -f 7 -r 198.18.0.11:0 -g -w 2
-A -f 8 -6 -s sed
-A -t [2001:db8::100]:80 -s wlc -p 120
-a -t [2001:db8::100]:80 -r [2001:db8::11]:80 -g -w 1
";

    #[test]
    fn every_flag_survives_parse_and_render() {
        let parsed = parse(EVERY_FLAG).unwrap();
        assert_eq!(render(&parsed), EVERY_FLAG);
        assert_eq!(parse(&render(&parsed)).unwrap(), parsed);
        let sh = &parsed[1];
        assert_eq!(sh.sched_flags, ["sh-fallback", "sh-port"]);
        assert_eq!((sh.persistent, sh.netmask.as_deref()), (Some(300), Some("255.255.255.0")));
        assert!(parsed[2].one_packet && parsed[3].pe.as_deref() == Some("sip"));
        assert_eq!((parsed[0].reals[0].upper, parsed[0].reals[0].lower), (100, 10));
        assert!(parsed[6].ipv6 && parsed[6].protocol == "fwmark");
    }

    #[test]
    fn restore_keeps_every_flag_or_says_why_not() {
        let t = to_definition(None, EVERY_FLAG).unwrap();
        for needle in [
            "flags = [\"sh-fallback\", \"sh-port\"]",
            "netmask = \"255.255.255.0\"",
            "flags = [\"one-packet\"]",
            "upper_threshold = 100",
            "lower_threshold = 10",
            "timeout = \"300s\"",
            "# NOTE svc4: persistence engine `sip` is not supported",
            "# NOTE svc3: real server 198.18.0.12:53 was not direct routing (-i)",
            "# NOTE svc6: fwmark 7: set vip",
        ] {
            assert!(t.contains(needle), "no `{needle}` in:\n{t}");
        }
        // What serde wrote parses back as TOML.
        let v: toml::Value = toml::from_str(&t).unwrap();
        assert_eq!(v["services"].as_array().unwrap().len(), 8);
    }

    #[test]
    fn an_unknown_option_names_its_line() {
        let e =
            parse("-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -Z\n").unwrap_err();
        assert!(e.starts_with("line 2: unknown option -Z"), "{e}");
    }
}
