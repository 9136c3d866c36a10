//! Health checks: kind, path, status, interval, timeout, rise and fall.
use std::time::Duration;

use lvs_proto::spec::{HealthCheckSpec, OnFailure, ProbeKind};

use super::Validator;
use crate::definition::CheckDef;
use crate::diagnostics::KeyPath;

impl Validator {
    pub(super) fn check(&mut self, c: &CheckDef, path: &KeyPath) -> Option<HealthCheckSpec> {
        let probe = self.check_probe(c, path)?;
        let (interval, timeout) = self.check_timing(c, path)?;
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
        Some(HealthCheckSpec {
            probe,
            interval_ms: interval.as_millis() as u64,
            timeout_ms: timeout.as_millis() as u64,
            rise,
            fall,
            on_failure,
        })
    }

    /// What a probe sends and expects.
    fn check_probe(&mut self, c: &CheckDef, path: &KeyPath) -> Option<ProbeKind> {
        Some(match c.kind.as_str() {
            "http" => {
                let p = c.path.clone().unwrap_or_else(|| "/".into());
                if !p.starts_with('/') {
                    self.err(
                        "bad-check",
                        path.key("path"),
                        format!("HTTP path `{p}` must start with /"),
                        "use e.g. \"/\" or \"/healthz\"",
                    );
                }
                let status = c.expect_status.unwrap_or(200);
                if !(100..=599).contains(&status) {
                    self.err(
                        "bad-check",
                        path.key("expect_status"),
                        format!("{status} is not an HTTP status"),
                        "use 100..=599, usually 200",
                    );
                }
                ProbeKind::Http {
                    path: p,
                    expect_status: status.clamp(100, 599) as u16,
                    expect_body: c.expect_body.clone(),
                    host: c.host.clone(),
                }
            }
            "tcp" => ProbeKind::Tcp,
            other => {
                self.err(
                    "bad-check",
                    path.key("kind"),
                    format!("unknown check kind `{other}`"),
                    "use http or tcp",
                );
                return None;
            }
        })
    }

    /// How often a probe runs and how long it may take.
    fn check_timing(&mut self, c: &CheckDef, path: &KeyPath) -> Option<(Duration, Duration)> {
        let interval = match &c.interval {
            Some(s) => self.duration(s, path.key("interval"))?,
            None => Duration::from_secs(2),
        };
        let timeout = match &c.timeout {
            Some(s) => self.duration(s, path.key("timeout"))?,
            None => Duration::from_secs(1).min(interval / 2),
        };
        if interval < Duration::from_millis(lvs_proto::spec::MIN_CHECK_INTERVAL_MS) {
            self.err(
                "check-interval",
                path.key("interval"),
                format!(
                    "interval {interval:?} is below the minimum of {} ms",
                    lvs_proto::spec::MIN_CHECK_INTERVAL_MS
                ),
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
        Some((interval, timeout))
    }
}
