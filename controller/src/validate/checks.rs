//! Health checks: kind and the keys each kind takes, timing, rise and fall, and a real
//! server's overrides of its service's check.
use std::time::Duration;

use lvs_proto::spec::{
    DestinationCheck, HealthCheckSpec, HttpUrl, OnFailure, ProbeKind, StatusSet, TlsProbe, TlsVerify,
};

use super::Validator;
use crate::definition::{CheckDef, RealServerDef, StatusDef, UrlDef};
use crate::diagnostics::KeyPath;

/// The check kinds and the keys only they take (every kind takes the timing keys,
/// `connect_ip` and `port`).
const KIND_KEYS: &[(&str, &[&str])] = &[
    ("http", &["path", "expect_status", "expect_body", "expect_digest", "host", "reuse_connection", "urls"]),
    (
        "https",
        &[
            "path",
            "expect_status",
            "expect_body",
            "expect_digest",
            "host",
            "reuse_connection",
            "urls",
            "sni",
            "verify",
            "ca_file",
        ],
    ),
    ("tcp", &[]),
    ("exec", &["command"]),
];

/// The kind-specific keys a check sets.
fn kind_keys_set(c: &CheckDef) -> Vec<&'static str> {
    let set = [
        ("path", c.path.is_some()),
        ("expect_status", c.expect_status.is_some()),
        ("expect_body", c.expect_body.is_some()),
        ("expect_digest", c.expect_digest.is_some()),
        ("host", c.host.is_some()),
        ("reuse_connection", c.reuse_connection.is_some()),
        ("urls", c.urls.is_some()),
        ("sni", c.sni.is_some()),
        ("verify", c.verify.is_some()),
        ("ca_file", c.ca_file.is_some()),
        ("command", c.command.is_some()),
    ];
    set.into_iter().filter(|(_, on)| *on).map(|(k, _)| k).collect()
}

/// `over` on top of `base`: a real server's check. When it names another kind, only the
/// timing, target and `on_failure` keys come from the service: an HTTP path means nothing
/// to a TCP check.
fn merged(base: &CheckDef, over: &CheckDef) -> CheckDef {
    let same_kind = over.kind.is_none() || over.kind == base.kind;
    let kind_base = if same_kind { base.clone() } else { CheckDef::default() };
    macro_rules! pick {
        ($src:expr, $($f:ident),*) => { CheckDef { $($f: over.$f.clone().or_else(|| $src.$f.clone()),)* ..CheckDef::default() } };
    }
    let k = pick!(
        kind_base,
        kind,
        path,
        expect_status,
        expect_body,
        expect_digest,
        host,
        reuse_connection,
        urls,
        sni,
        verify,
        ca_file,
        command
    );
    let t = pick!(base, connect_ip, port, interval, timeout, retry_interval, rise, fall, on_failure);
    CheckDef {
        kind: over.kind.clone().or_else(|| base.kind.clone()),
        connect_ip: t.connect_ip,
        port: t.port,
        interval: t.interval,
        timeout: t.timeout,
        retry_interval: t.retry_interval,
        rise: t.rise,
        fall: t.fall,
        on_failure: t.on_failure,
        ..k
    }
}

impl Validator {
    /// A service's check; `None` for no check (absent, `kind = "none"`, or invalid).
    pub(super) fn service_check(&mut self, c: Option<&CheckDef>, path: &KeyPath) -> Option<HealthCheckSpec> {
        let c = c?;
        if c.kind.as_deref() == Some("none") {
            return None;
        }
        self.check(c, &path.key("check"))
    }

    /// The check of real server `r` of a service whose check is `service` (as written).
    pub(super) fn destination_check(
        &mut self,
        service: Option<&CheckDef>,
        r: &RealServerDef,
        p: &KeyPath,
    ) -> DestinationCheck {
        let Some(over) = &r.check else { return DestinationCheck::Service };
        let path = p.key("check");
        if over.kind.as_deref() == Some("none") {
            return DestinationCheck::Off;
        }
        if over.on_failure.is_some() && service.is_some() {
            self.err(
                "check-override",
                path.key("on_failure"),
                "on_failure is the service's: every real server of a service leaves it the same way",
                "set on_failure in the service's check",
            );
        }
        let def = match service.filter(|s| s.kind.as_deref() != Some("none")) {
            Some(base) => merged(base, over),
            None => over.clone(),
        };
        match self.check(&def, &path) {
            Some(h) => DestinationCheck::Own(Box::new(h)),
            None => DestinationCheck::Service,
        }
    }

    /// One check, every key checked; `None` after an error that leaves no check to run.
    pub(super) fn check(&mut self, c: &CheckDef, path: &KeyPath) -> Option<HealthCheckSpec> {
        let probe = self.check_probe(c, path)?;
        let (interval, timeout, retry) = self.check_timing(c, path)?;
        let mut count = |v: Option<i64>, default: i64, key: &str| match v.unwrap_or(default) {
            n @ 1..=1000 => n as u32,
            n => {
                self.err(
                    "check-rise-fall",
                    path.key(key),
                    format!("{key} = {n}: must be 1..=1000 (checks in a row)"),
                    format!("use e.g. {key} = {default}"),
                );
                1
            }
        };
        let rise = count(c.rise, 2, "rise");
        let fall = count(c.fall, 3, "fall");
        let on_failure = match c.on_failure.as_deref().unwrap_or("weight0") {
            "weight0" => OnFailure::Weight0,
            "remove" => OnFailure::Remove,
            other => {
                self.err(
                    "bad-check",
                    path.key("on_failure"),
                    format!("unknown on_failure `{other}`"),
                    "use weight0 (connections finish) or remove",
                );
                OnFailure::Weight0
            }
        };
        let connect_ip = c.connect_ip.as_ref().and_then(|a| self.ip(a, path.key("connect_ip")));
        let connect_port = c.port.and_then(|p| self.port(p, path.key("port")));
        Some(HealthCheckSpec {
            probe,
            interval_ms: interval.as_millis() as u64,
            timeout_ms: timeout.as_millis() as u64,
            rise,
            fall,
            on_failure,
            connect_ip,
            connect_port,
            retry_interval_ms: retry.map(|r| r.as_millis() as u64),
        })
    }

    /// What a probe sends and expects.
    fn check_probe(&mut self, c: &CheckDef, path: &KeyPath) -> Option<ProbeKind> {
        let Some(kind) = c.kind.as_deref() else {
            self.err(
                "missing-key",
                path.clone(),
                "the check has no kind",
                "add kind = \"http\", \"https\", \"tcp\", \"exec\" or \"none\"",
            );
            return None;
        };
        let Some((_, own)) = KIND_KEYS.iter().find(|(k, _)| *k == kind) else {
            self.err(
                "bad-check",
                path.key("kind"),
                format!("unknown check kind `{kind}`"),
                "use http, https, tcp, exec or none",
            );
            return None;
        };
        for key in kind_keys_set(c).into_iter().filter(|k| !own.contains(k)) {
            let takers: Vec<&str> =
                KIND_KEYS.iter().filter(|(_, ks)| ks.contains(&key)).map(|(k, _)| *k).collect();
            self.err(
                "bad-check",
                path.key(key),
                format!("`{key}` does not apply to a {kind} check"),
                format!("remove it, or use kind = \"{}\"", takers.join("\" or \"")),
            );
        }
        Some(match kind {
            "http" | "https" => self.http_probe(c, path, kind == "https"),
            "exec" => ProbeKind::Exec { command: self.command(c.command.as_deref(), &path.key("command"))? },
            _ => ProbeKind::Tcp,
        })
    }

    fn http_probe(&mut self, c: &CheckDef, path: &KeyPath, tls: bool) -> ProbeKind {
        let first = UrlDef {
            path: c.path.clone(),
            expect_status: c.expect_status.clone(),
            expect_body: c.expect_body.clone(),
            expect_digest: c.expect_digest.clone(),
            host: None,
        };
        let first = self.page(&first, path);
        let urls = c.urls.iter().flatten().enumerate().map(|(i, u)| self.page(u, &path.key("urls").index(i)));
        let urls = urls.collect();
        ProbeKind::Http {
            path: first.path,
            expect_status: first.expect_status,
            expect_body: first.expect_body,
            host: c.host.clone().filter(|h| {
                let problem = lvs_proto::names::http_host_problem(h);
                if let Some(problem) = &problem {
                    self.err(
                        "bad-check",
                        path.key("host"),
                        format!("host {problem}"),
                        "use e.g. \"www.example.org\"",
                    );
                }
                problem.is_none()
            }),
            expect_digest: first.expect_digest,
            tls: tls.then(|| self.tls(c, path)),
            reuse_connection: c.reuse_connection.unwrap_or(true),
            urls,
        }
    }

    /// One page of an HTTP check (its own keys, or an entry of `urls` at `path`).
    fn page(&mut self, u: &UrlDef, path: &KeyPath) -> HttpUrl {
        let p = u.path.clone().unwrap_or_else(|| "/".into());
        if let Some(problem) = lvs_proto::names::http_path_problem(&p) {
            self.err(
                "bad-check",
                path.key("path"),
                format!("HTTP path {problem}"),
                "use e.g. \"/\" or \"/healthz\", percent-encoding spaces and other characters",
            );
        }
        if let Some(problem) = u.host.as_deref().and_then(lvs_proto::names::http_host_problem) {
            self.err(
                "bad-check",
                path.key("host"),
                format!("host {problem}"),
                "use e.g. \"www.example.org\"",
            );
        }
        let status = match &u.expect_status {
            None => Ok(StatusSet::one(200)),
            Some(StatusDef::Code(n)) => u16::try_from(*n)
                .map_err(|_| format!("{n} is not an HTTP status (100-599)"))
                .and_then(|n| StatusSet::from_ranges(vec![(n, n)])),
            Some(StatusDef::Codes(t)) => StatusSet::parse(t),
        };
        let status = status.unwrap_or_else(|e| {
            self.err(
                "bad-check",
                path.key("expect_status"),
                e,
                "a status (200), or codes and ranges as keepalived's status_code: \"200-299, 301\"",
            );
            StatusSet::one(200)
        });
        let digest = u.expect_digest.as_ref().map(|d| d.to_ascii_lowercase());
        if let Some(d) = &digest
            && !(d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            self.err(
                "bad-check",
                path.key("expect_digest"),
                format!("`{d}` is not an MD5 digest"),
                "32 hex digits, e.g. from `curl -s http://RIP/PATH | md5sum` (keepalived's genhash)",
            );
        }
        HttpUrl {
            path: p,
            expect_status: status,
            expect_body: u.expect_body.clone(),
            expect_digest: digest,
            host: u.host.clone(),
        }
    }

    /// What an HTTPS check sends as SNI and trusts.
    fn tls(&mut self, c: &CheckDef, path: &KeyPath) -> TlsProbe {
        let verify = match (c.verify.unwrap_or(true), &c.ca_file) {
            (true, None) => TlsVerify::System,
            (true, Some(f)) if f.starts_with('/') => TlsVerify::CaFile(f.clone()),
            (true, Some(f)) => {
                self.err(
                    "bad-check",
                    path.key("ca_file"),
                    format!("ca_file `{f}` is not an absolute path"),
                    "name the PEM file by its absolute path on the director(s)",
                );
                TlsVerify::System
            }
            (false, Some(_)) => {
                self.err(
                    "bad-check",
                    path.key("ca_file"),
                    "ca_file with verify = false: nothing would be verified against it",
                    "remove ca_file, or verify = false",
                );
                TlsVerify::Skip
            }
            (false, None) => {
                self.warn(
                    "check-tls-unverified",
                    path.key("verify"),
                    "the real servers' certificates are not verified: anything answering TLS on their address passes",
                    "give the real servers certificates from a CA of yours and set ca_file instead",
                );
                TlsVerify::Skip
            }
        };
        TlsProbe { sni: c.sni.clone().or_else(|| c.host.clone()), verify }
    }

    /// A script of the directors' script directory and its arguments, as the agent will
    /// run them: no shell, no path (the node decides what can run; see
    /// [`lvs_proto::names::command_problem`]).
    pub(super) fn command(&mut self, argv: Option<&[String]>, path: &KeyPath) -> Option<Vec<String>> {
        let problem = match argv {
            None => Some("is missing".to_string()),
            Some(all) => lvs_proto::names::command_problem(all),
        };
        match problem {
            None => argv.map(<[String]>::to_vec),
            Some(problem) => {
                self.err(
                    "bad-command",
                    path.clone(),
                    format!("a command is a list: a script's name, then its arguments; this one {problem}"),
                    "e.g. [\"check-app\", \"--quick\"], with check-app installed in each director's /etc/lvs-agent/scripts (root-owned, not writable by others); it runs as lvs-agent-script without a shell, so write no pipes, quotes or $VARS",
                );
                None
            }
        }
    }

    /// How often a probe runs, how long it may take, and how soon a failure is retried.
    fn check_timing(
        &mut self,
        c: &CheckDef,
        path: &KeyPath,
    ) -> Option<(Duration, Duration, Option<Duration>)> {
        let interval = match &c.interval {
            Some(s) => self.duration(s, path.key("interval"))?,
            None => Duration::from_secs(2),
        };
        let timeout = match &c.timeout {
            Some(s) => self.duration(s, path.key("timeout"))?,
            None => Duration::from_secs(1).min(interval / 2),
        };
        let min = Duration::from_millis(lvs_proto::spec::MIN_CHECK_INTERVAL_MS);
        if interval < min {
            self.err(
                "check-interval",
                path.key("interval"),
                format!("interval {interval:?} is below the minimum of {min:?}"),
                "probe at most ten times a second; fall × interval is how fast a failure is seen",
            );
        }
        if timeout >= interval || timeout.is_zero() {
            self.err(
                "check-timeout",
                path.key("timeout"),
                format!("timeout {timeout:?} must be positive and shorter than the interval {interval:?}"),
                "a probe must finish before the next one starts: lower timeout or raise interval",
            );
        }
        let retry = match &c.retry_interval {
            Some(s) => Some(self.duration(s, path.key("retry_interval"))?),
            None => None,
        };
        if let Some(r) = retry
            && (r < min || r > interval || r <= timeout)
        {
            self.err(
                "check-interval",
                path.key("retry_interval"),
                format!("retry_interval {r:?} must lie between the timeout {timeout:?} and the interval {interval:?} (and be at least {min:?})"),
                "a retry comes sooner than the next regular probe, after the failed one has finished",
            );
        }
        Some((interval, timeout, retry))
    }
}
