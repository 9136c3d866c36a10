//! keepalived's checkers as checks: `HTTP_GET`, `SSL_GET`, `TCP_CHECK`, `MISC_CHECK`.
//!
//! keepalived marks a real server down after `retry` failed retries (so `retry + 1`
//! failures in a row) and up after one success; it waits `delay_before_retry` after a
//! failure instead of `delay_loop`. That is written as `fall = retry + 1`, `rise = 1` and
//! `retry_interval = connect_timeout + delay_before_retry` (ours counts from the probe's
//! start, keepalived's from its end). Every key is written out, keepalived's defaults
//! included, so real servers' checks can be compared key by key.
use toml::Value;

use super::conf::Stmt;
use super::skeleton::{Note, Pairs};

/// keepalived's defaults (keepalived.conf(5)).
const DEFAULT_CONNECT_TIMEOUT_S: f64 = 5.0;
const DEFAULT_RETRY: u32 = 1;
const DEFAULT_DELAY_BEFORE_RETRY_S: f64 = 1.0;

/// What a checker inherits from its virtual_server.
pub struct Context<'a> {
    /// The file, for notes.
    pub file: &'a str,
    /// `delay_loop` of the virtual_server, seconds.
    pub delay_loop_s: f64,
    /// `virtualhost` of the virtual_server.
    pub virtualhost: Option<&'a str>,
}

impl Context<'_> {
    fn note(&self, notes: &mut Vec<Note>, s: &Stmt, why: impl Into<String>) {
        notes.push(Note { file: self.file.to_string(), line: s.line, text: s.text(), why: why.into() });
    }
}

/// Seconds as keepalived writes them (`3`, `0.5`).
pub fn seconds(s: Option<&str>) -> Option<f64> {
    s.and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0)
}

/// A duration for the definition, in whole milliseconds (`"2s"`, `"1500ms"`).
pub fn duration(secs: f64) -> Value {
    let ms = (secs * 1000.0).round() as u64;
    Value::String(if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") })
}

/// The check of one real server's checker statement; `None` for a checker with no
/// equivalent (noted).
pub fn checker(c: &Stmt, ctx: &Context, notes: &mut Vec<Note>) -> Option<Pairs> {
    let mut p: Pairs = Vec::new();
    let kind = match c.key() {
        "HTTP_GET" => "http",
        "SSL_GET" => "https",
        "TCP_CHECK" => "tcp",
        "MISC_CHECK" => "exec",
        other => {
            ctx.note(
                notes,
                c,
                format!("{other} has no equivalent: the real server is left unchecked; an exec check can run a probe of yours"),
            );
            return None;
        }
    };
    p.push(("kind", Value::String(kind.into())));
    match kind {
        "http" | "https" => http(c, ctx, &mut p, notes),
        "exec" => exec(c, ctx, &mut p, notes)?,
        _ => {}
    }
    target_and_timing(c, ctx, kind, &mut p, notes);
    Some(p)
}

/// One `url { }`: path, status codes (without one, any 2xx, as keepalived has it), digest
/// and its own `virtualhost`, as a check's keys.
fn page(u: &Stmt, ctx: &Context, notes: &mut Vec<Note>) -> Vec<(&'static str, Value)> {
    let (mut path, mut status, mut digest, mut host) = ("/".to_string(), Vec::new(), None, None);
    for s in u.children() {
        match (s.key(), s.arg(0)) {
            ("path", Some(v)) => path = v.to_string(),
            ("digest", Some(v)) => digest = Some(v.to_ascii_lowercase()),
            // Codes and ranges, on one line or several, as keepalived adds them up.
            ("status_code", Some(_)) => status.extend(s.words.iter().skip(1).cloned()),
            ("virtualhost", Some(v)) => host = Some(v.to_string()),
            _ => ctx.note(notes, s, "not mapped: a check matches status, a body substring or an MD5"),
        }
    }
    let status = match status.as_slice() {
        [] => Value::String("200-299".into()),
        [one] if one.parse::<u16>().is_ok() => Value::Integer(one.parse().unwrap_or(200)),
        many => Value::String(many.join(", ")),
    };
    let mut out = vec![("path", Value::String(path)), ("expect_status", status)];
    out.extend(digest.map(|d| ("expect_digest", Value::String(d))));
    out.extend(host.map(|h| ("host", Value::String(h))));
    out
}

/// An HTTP or HTTPS checker: its first `url { }` as the check's keys, the others as
/// `urls`, its Host and TLS.
fn http(c: &Stmt, ctx: &Context, p: &mut Pairs, notes: &mut Vec<Note>) {
    let urls: Vec<&Stmt> = c.children().iter().filter(|s| s.key() == "url").collect();
    let mut first = urls.first().map(|u| page(u, ctx, notes)).unwrap_or_else(|| {
        vec![("path", Value::String("/".into())), ("expect_status", Value::String("200-299".into()))]
    });
    // The first page's own virtualhost is the check's Host.
    let first_host = first.iter().position(|(k, _)| *k == "host").map(|i| first.remove(i).1);
    p.extend(first);
    let more: Vec<Value> = urls
        .iter()
        .skip(1)
        .map(|u| Value::Table(page(u, ctx, notes).into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
        .collect();
    if !more.is_empty() {
        p.push(("urls", Value::Array(more)));
    }
    let host = first_host
        .as_ref()
        .and_then(Value::as_str)
        .or_else(|| c.children().iter().find(|s| s.key() == "virtualhost").and_then(|s| s.arg(0)))
        .or(ctx.virtualhost);
    if let Some(h) = host {
        p.push(("host", Value::String(h.to_string())));
    }
    if c.key() == "SSL_GET" {
        if c.children().iter().any(|s| s.key() == "enable_sni")
            && let Some(h) = host
        {
            p.push(("sni", Value::String(h.to_string())));
        }
        // keepalived's SSL_GET verifies nothing unless told; say so rather than break it.
        p.push(("verify", Value::Boolean(false)));
        ctx.note(
            notes,
            c,
            "keepalived's SSL_GET does not verify certificates: imported as verify = false; give the real servers certificates from a CA and set ca_file",
        );
    }
}

/// `misc_path` as an argv (split as keepalived splits it, never run through a shell).
fn exec(c: &Stmt, ctx: &Context, p: &mut Pairs, notes: &mut Vec<Note>) -> Option<()> {
    let Some(path) = c.children().iter().find(|s| s.key() == "misc_path").and_then(|s| s.arg(0)) else {
        ctx.note(notes, c, "MISC_CHECK without misc_path: the real server is left unchecked");
        return None;
    };
    let argv = shlex::split(path).filter(|a| !a.is_empty());
    match argv {
        Some(mut argv) if argv[0].starts_with('/') => {
            // A spec names a script of the directors' script directory, never a path: the
            // node's owner installs it there (keepalived's script security, made the rule).
            let program = argv[0].clone();
            let name = program.rsplit('/').next().unwrap_or_default().to_string();
            argv[0] = name.clone();
            if let Some(problem) = lvs_proto::names::command_problem(&argv) {
                ctx.note(notes, c, format!("misc_path `{path}`: {problem}: left unchecked"));
                return None;
            }
            ctx.note(
                notes,
                c,
                format!(
                    "misc_path {program} runs as script `{name}`: install it on each director as /etc/lvs-agent/scripts/{name} (root's, writable by root alone); it runs as lvs-agent-script, without root or capabilities"
                ),
            );
            p.push(("command", Value::Array(argv.into_iter().map(Value::String).collect())));
            Some(())
        }
        _ => {
            ctx.note(
                notes,
                c,
                format!("misc_path `{path}` is not an absolute path and arguments: left unchecked"),
            );
            None
        }
    }
}

/// Where the probe connects, how often, how long it may take, when a server is down.
fn target_and_timing(c: &Stmt, ctx: &Context, kind: &str, p: &mut Pairs, notes: &mut Vec<Note>) {
    let get = |k: &str| c.children().iter().find(|s| s.key() == k);
    if let Some(ip) = get("connect_ip").and_then(|s| s.arg(0)) {
        p.push(("connect_ip", Value::String(ip.to_string())));
    }
    if let Some(port) = get("connect_port").and_then(|s| s.arg(0)).and_then(|v| v.parse::<i64>().ok()) {
        p.push(("port", Value::Integer(port)));
    }
    let interval = seconds(get("delay_loop").and_then(|s| s.arg(0))).unwrap_or(ctx.delay_loop_s).max(0.1);
    let timeout_key = if kind == "exec" { "misc_timeout" } else { "connect_timeout" };
    let default_timeout = if kind == "exec" { interval } else { DEFAULT_CONNECT_TIMEOUT_S };
    let mut timeout = seconds(get(timeout_key).and_then(|s| s.arg(0))).unwrap_or(default_timeout);
    if timeout >= interval {
        timeout = interval / 2.0;
        let why =
            format!("a probe must end before the next: timeout {} (half of delay_loop)", duration(timeout));
        match get(timeout_key) {
            Some(s) => ctx.note(notes, s, why),
            None => ctx.note(
                notes,
                c,
                format!("keepalived's default {timeout_key} is not below delay_loop: {why}"),
            ),
        }
    }
    let default_retry = if kind == "exec" { 0 } else { DEFAULT_RETRY };
    let retry = get("retry")
        .or(get("nb_get_retry"))
        .and_then(|s| s.arg(0))
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(default_retry);
    let delay =
        seconds(get("delay_before_retry").and_then(|s| s.arg(0))).unwrap_or(DEFAULT_DELAY_BEFORE_RETRY_S);
    p.push(("interval", duration(interval)));
    p.push(("timeout", duration(timeout)));
    let retry_interval = timeout + delay;
    if retry > 0 && retry_interval < interval && retry_interval >= 0.1 {
        p.push(("retry_interval", duration(retry_interval)));
    }
    p.push(("rise", Value::Integer(1)));
    p.push(("fall", Value::Integer(i64::from(retry.min(999)) + 1)));
    const MAPPED: &[&str] = &[
        "url",
        "virtualhost",
        "enable_sni",
        "misc_path",
        "misc_timeout",
        "connect_ip",
        "connect_port",
        "connect_timeout",
        "delay_loop",
        "retry",
        "nb_get_retry",
        "delay_before_retry",
    ];
    for s in c.children().iter().filter(|s| !MAPPED.contains(&s.key())) {
        let why = match s.key() {
            "misc_dynamic" => "exit codes as weights are not mapped: the exec check is up (0) or down",
            "user" => "the exec check runs as the agent's user, under its unit's sandbox",
            "bindto" | "bind_port" | "bind_if" => "probes leave from the director's own address",
            "warmup" => "probes start spread over the first interval",
            _ => "not mapped",
        };
        ctx.note(notes, s, why);
    }
}
