//! `lvsctl import keepalived`: a keepalived.conf (one per director) as a definition
//! skeleton. Services, real servers, weights, schedulers, persistence, checkers, sorry
//! servers, quorum and (with a file per director) VRRP instances are carried over; every
//! option that is not is written beside what it belongs to as a comment with the reason,
//! never dropped silently. What keepalived.conf does not say (the router, the directors'
//! own addresses) comes from the command line.
pub mod checks;
pub mod conf;
pub mod firewall;
pub mod render;
pub mod services;
pub mod skeleton;
pub mod vrrp;

pub use skeleton::{Input, Options, OtherFamily};
use skeleton::{Note, Skeleton};

/// Why there is nothing to write.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file keepalived itself would not read.
    #[error("{file}: {source}")]
    Syntax {
        /// The file.
        file: String,
        /// Where and what.
        source: conf::SyntaxError,
    },
    /// The command line does not fit the files.
    #[error("{0}")]
    Usage(String),
}

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The definition.
    pub toml: String,
    /// Options not carried over (each a comment in `toml`).
    pub unmapped: usize,
    /// Services imported.
    pub services: usize,
}

/// Import `inputs` (file `i` is director `opts.directors[i]`'s).
pub fn keepalived(inputs: &[Input], opts: &Options) -> Result<Imported, ImportError> {
    if inputs.is_empty() || opts.directors.len() != inputs.len() {
        return Err(ImportError::Usage(format!(
            "{} file(s) and {} --director: pass one --director NAME=ADDRESS/PREFIX per keepalived.conf, in the same order \
             (keepalived.conf does not say the director's own address)",
            inputs.len(),
            opts.directors.len()
        )));
    }
    let mut parsed = Vec::new();
    for i in inputs {
        let stmts =
            conf::parse(&i.text).map_err(|source| ImportError::Syntax { file: i.name.clone(), source })?;
        parsed.push(stmts);
    }
    let mut sk = Skeleton { lan: Some(opts.directors[0].1.trunc()), ..Skeleton::default() };
    let first = &inputs[0].name;
    let mut per_director = Vec::new();
    for (n, (input, stmts)) in inputs.iter().zip(&parsed).enumerate() {
        let sync = vrrp::sync_daemon_instances(stmts);
        let mut instances = Vec::new();
        // Later files only add their VRRP priorities; their other blocks are the first's.
        let mut notes = Vec::new();
        for s in stmts {
            match s.key() {
                "virtual_server" if n == 0 => {
                    if let Some(svc) = services::virtual_server(s, &input.name, &mut sk.notes) {
                        sk.services.push(svc);
                    }
                }
                "vrrp_instance" => instances.extend(vrrp::instance(s, &input.name, &sync, &mut notes)),
                "virtual_server" => {}
                _ if n == 0 => vrrp::global(s, &input.name, &mut notes),
                _ => {}
            }
        }
        if n == 0 {
            sk.notes.extend(notes);
        }
        per_director.push((opts.directors[n].0.clone(), instances));
    }
    differing_services(inputs, &parsed, &mut sk.notes);
    sk.vrrp = vrrp::merge(per_director, &mut sk.notes, first);
    let used: Vec<_> = sk.services.iter().filter_map(|s| s.vip).collect();
    sk.extra_vips = sk.vrrp.iter().flat_map(|v| v.vips.clone()).filter(|v| !used.contains(v)).collect();
    sk.name = opts.name.clone().unwrap_or_else(|| cluster_name(&parsed[0]));
    match &opts.firewall {
        Some(f) => {
            let found = firewall::markings(&f.name, &f.text, &mut sk.notes);
            firewall::apply(&mut sk, &f.name, &found);
        }
        None => unmarked(&mut sk),
    }
    fwmark_vips(&mut sk);
    let unmapped = sk.notes.len() + sk.services.iter().map(|s| s.notes.len()).sum::<usize>();
    Ok(Imported { toml: render::render(&sk, opts), unmapped, services: sk.services.len() })
}

/// global_defs' router_id as a DNS label, else `imported`.
fn cluster_name(stmts: &[conf::Stmt]) -> String {
    let id = stmts
        .iter()
        .filter(|s| s.key() == "global_defs")
        .flat_map(|g| g.children())
        .find(|s| s.key() == "router_id")
        .and_then(|s| s.arg(0));
    skeleton::label(id.unwrap_or(""), "imported")
}

/// Without the firewall's rules, nothing says which packets carry a service's mark.
fn unmarked(sk: &mut Skeleton) {
    for s in sk.services.iter_mut().filter(|s| s.protocol == "fwmark") {
        s.notes.push(Note {
            file: s.file.clone(),
            line: 0,
            text: format!("virtual_server fwmark {}", s.fwmark.unwrap_or(0)),
            why: "keepalived.conf does not say which packets carry the mark: pass --firewall with the \
                  directors' iptables-save output to carry the marking rules over, or write \
                  marks = [{ protocol = \"tcp\", ports = [...] }] (the agents then own the rule)"
                .into(),
        });
    }
}

/// A fwmark service stands for an address; keepalived's block does not say which. The
/// first VIP the directors hold is assumed, and the comment says to check it.
fn fwmark_vips(sk: &mut Skeleton) {
    let mut held: Vec<_> = sk.services.iter().filter_map(|s| s.vip).collect();
    held.extend(sk.vrrp.iter().flat_map(|v| v.vips.clone()));
    let mut seen = std::collections::BTreeSet::new();
    held.retain(|v| seen.insert(*v));
    for s in sk.services.iter_mut().filter(|s| s.protocol == "fwmark" && s.vip.is_none()) {
        let why = match held.first() {
            Some(first) => {
                s.vip = Some(*first);
                let of = if held.len() == 1 { "the only VIP held" } else { "the first VIP held: check it" };
                format!("the address the mark stands for is not in keepalived.conf: {first}, {of}")
            }
            None => "the address the mark stands for is not in keepalived.conf: add vip = \"...\"".into(),
        };
        s.notes.push(Note {
            file: s.file.clone(),
            line: 0,
            text: format!("virtual_server fwmark {}", s.fwmark.unwrap_or(0)),
            why,
        });
    }
}

/// Later files whose virtual_servers differ from the first's: named, not merged.
fn differing_services(inputs: &[Input], parsed: &[Vec<conf::Stmt>], notes: &mut Vec<Note>) {
    let heads = |stmts: &[conf::Stmt]| -> Vec<String> {
        let mut h: Vec<String> =
            stmts.iter().filter(|s| s.key() == "virtual_server").map(conf::Stmt::text).collect();
        h.sort();
        h
    };
    let first = heads(&parsed[0]);
    for (i, p) in inputs.iter().zip(parsed).skip(1) {
        if heads(p) != first {
            notes.push(Note {
                file: i.name.clone(),
                line: 0,
                text: "virtual_server blocks".into(),
                why: format!("they differ from {}'s: the services are {}'s", inputs[0].name, inputs[0].name),
            });
        }
    }
}
