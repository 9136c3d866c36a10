//! The marking rules of a keepalived director's firewall, read from an `iptables-save`
//! (or `ip6tables-save`) dump: keepalived.conf names a `virtual_server fwmark 7` but never
//! which packets carry mark 7; the `-t mangle … -j MARK` rules do. A rule that marks by
//! destination address, protocol and destination ports becomes the service's `marks` (and
//! gives it its VIP); a rule that depends on anything else (a source, an interface, a
//! negation, state) is named with the reason and left to the user.
use std::collections::BTreeMap;
use std::net::IpAddr;

use super::skeleton::{Note, Skeleton};

/// One marking rule read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marking {
    /// Its line in the dump.
    pub line: usize,
    /// The mark it sets.
    pub mark: u32,
    /// The destination address.
    pub vip: IpAddr,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Ports as the definition writes them (`80`, `"9000-9010"`); empty: every port.
    pub ports: Vec<String>,
}

/// Words of one line, a double-quoted string (a `--comment`) kept as one word.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `0x7/0xffffffff`, `7`: the mark, when the mask (if any) is the whole word.
fn mark_value(s: &str) -> Option<u32> {
    let num = |t: &str| match t.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    };
    match s.split_once('/') {
        Some((v, m)) if num(m) == Some(u32::MAX) => num(v),
        Some(_) => None,
        None => num(s),
    }
}

/// `80`, `9000:9010` as the definition writes them.
fn port_text(p: &str) -> Option<String> {
    let n = |t: &str| t.parse::<u16>().ok().filter(|v| *v > 0);
    match p.split_once(':') {
        Some((a, b)) => Some(format!("\"{}-{}\"", n(a)?, n(b)?)),
        None => n(p).map(|v| v.to_string()),
    }
}

/// One `-A` line of the mangle table as a marking, or why it is not one.
/// (`line` is left 0: the caller knows it.)
fn rule(w: &[String]) -> Result<Option<Marking>, String> {
    let (mut mark, mut vip, mut proto, mut ports, mut target) = (None, None, None, Vec::new(), None);
    let mut i = 2; // past `-A CHAIN`
    let arg = |i: usize| w.get(i + 1).cloned().ok_or_else(|| format!("`{}` without a value", w[i]));
    while i < w.len() {
        match w[i].as_str() {
            "-d" | "--destination" => {
                let a = arg(i)?;
                let net: ipnet::IpNet = a
                    .parse()
                    .or_else(|_| a.parse::<IpAddr>().map(Into::into))
                    .map_err(|_| format!("`-d {a}`"))?;
                if net.prefix_len() != net.max_prefix_len() {
                    return Err(format!("`-d {a}` marks a whole network, not one VIP"));
                }
                vip = Some(net.addr());
            }
            "-p" | "--protocol" => proto = Some(arg(i)?),
            "-m" => {
                let m = arg(i)?;
                if !["tcp", "udp", "sctp", "multiport", "comment"].contains(&m.as_str()) {
                    return Err(format!(
                        "`-m {m}`: the mark depends on more than address, protocol and port"
                    ));
                }
            }
            "--comment" => {}
            "--dport" | "--destination-port" => {
                ports.push(port_text(&arg(i)?).ok_or("a port that is not one")?)
            }
            "--dports" | "--destination-ports" => {
                for p in arg(i)?.split(',') {
                    ports.push(port_text(p).ok_or("a port that is not one")?);
                }
            }
            "-j" => target = Some(arg(i)?),
            "--set-mark" | "--set-xmark" => {
                let v = arg(i)?;
                mark = Some(mark_value(&v).ok_or(format!("`{} {v}` sets some bits only", w[i]))?);
            }
            other => {
                return Err(format!("`{other}`: the mark depends on more than address, protocol and port"));
            }
        }
        // Every option read here takes one value.
        i += 2;
    }
    if target.as_deref() != Some("MARK") {
        return Ok(None);
    }
    let proto = proto.ok_or("no `-p`: every protocol")?;
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("`-p {proto}` has no ports to mark"));
    }
    let vip = vip.ok_or("no `-d`: every destination, not one VIP")?;
    Ok(mark.map(|mark| Marking { line: 0, mark, vip, protocol: proto, ports }))
}

/// The marking rules of `text` (file `file`); every `-j MARK` rule not carried over is a note.
pub fn markings(file: &str, text: &str, notes: &mut Vec<Note>) -> Vec<Marking> {
    let mut table = "";
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(t) = line.strip_prefix('*') {
            table = if t == "mangle" { "mangle" } else { "" };
            continue;
        }
        let w = words(line);
        if table != "mangle" || w.len() < 2 || w[0] != "-A" || !w.iter().any(|x| x == "MARK") {
            continue;
        }
        let note = |why: String| Note { file: file.into(), line: n + 1, text: line.into(), why };
        if w[1] != "PREROUTING" {
            notes.push(note(format!(
                "chain {}: only PREROUTING marks are carried over (they reach IPVS)",
                w[1]
            )));
            continue;
        }
        match rule(&w) {
            Ok(Some(m)) => out.push(Marking { line: n + 1, ..m }),
            Ok(None) => {}
            Err(why) => notes.push(note(format!("{why}: not carried over, keep this rule yourself"))),
        }
    }
    out
}

/// Each fwmark service gets the marks (and the VIP) its rules say; a mark no service has,
/// or a service no rule marks for, is a note.
pub fn apply(sk: &mut Skeleton, file: &str, found: &[Marking]) {
    for s in sk.services.iter_mut().filter(|s| s.protocol == "fwmark") {
        let Some(mark) = s.fwmark else { continue };
        let mine: Vec<&Marking> = found.iter().filter(|m| m.mark == mark).collect();
        let Some(first) = mine.first() else {
            s.notes.push(Note {
                file: file.into(),
                line: 0,
                text: format!("virtual_server fwmark {mark}"),
                why: format!(
                    "no PREROUTING rule in {file} sets mark {mark}: write marks = [...] or keep your own rule"
                ),
            });
            continue;
        };
        let vip = *s.vip.get_or_insert(first.vip);
        let mut by_proto: BTreeMap<String, Vec<&Marking>> = BTreeMap::new();
        for m in &mine {
            if m.vip == vip {
                by_proto.entry(m.protocol.clone()).or_default().push(m);
                continue;
            }
            s.notes.push(Note {
                file: file.into(),
                line: m.line,
                text: format!("mark {mark} for {}", m.vip),
                why: format!("the service stands for {vip}: another VIP needs a service of its own"),
            });
        }
        // A rule of a protocol without ports marks every port of it.
        let by_proto: BTreeMap<String, Vec<String>> = by_proto
            .into_iter()
            .map(|(p, rules)| {
                let all = rules.iter().any(|m| m.ports.is_empty());
                (p, if all { Vec::new() } else { rules.iter().flat_map(|m| m.ports.clone()).collect() })
            })
            .collect();
        s.marks = by_proto.into_iter().collect();
    }
    for m in found.iter().filter(|m| !sk.services.iter().any(|s| s.fwmark == Some(m.mark))) {
        sk.notes.push(Note {
            file: file.into(),
            line: m.line,
            text: format!("mark {} for {}", m.mark, m.vip),
            why: "no virtual_server fwmark uses this mark".into(),
        });
    }
}
