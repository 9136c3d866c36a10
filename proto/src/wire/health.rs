//! Health checks ([`HealthCheckSpec`]) to and from the wire. The wire side is checked as
//! the definition is: a probe an agent could not run (an exec check without an absolute
//! path, a digest that is not MD5 hex, a timeout not under the interval) is refused with
//! the field named, before anything is applied.
use std::net::IpAddr;

use super::fields::{WireError, err, parse, required, shaped, shaped_with};
use crate::spec::{
    HealthCheckSpec, HttpUrl, MIN_CHECK_INTERVAL_MS, OnFailure, ProbeKind, StatusSet, TlsProbe, TlsVerify,
};
use crate::{names, pb};

/// The wire form of a check.
pub(super) fn to_pb(h: &HealthCheckSpec) -> pb::HealthCheck {
    pb::HealthCheck {
        probe: Some(match &h.probe {
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
                let (one, several) = status_to_pb(expect_status);
                pb::health_check::Probe::Http(pb::HttpProbe {
                    path: path.clone(),
                    expect_status: one,
                    expect_statuses: several,
                    expect_body: expect_body.clone(),
                    host: host.clone(),
                    expect_digest: expect_digest.clone(),
                    tls: tls.as_ref().map(|t| pb::TlsProbe {
                        sni: t.sni.clone(),
                        verify: Some(match &t.verify {
                            TlsVerify::System => pb::tls_probe::Verify::System(true),
                            TlsVerify::CaFile(f) => pb::tls_probe::Verify::CaFile(f.clone()),
                            TlsVerify::Skip => pb::tls_probe::Verify::Skip(true),
                        }),
                    }),
                    reuse_connection: *reuse_connection,
                    urls: urls
                        .iter()
                        .map(|u| {
                            let (one, several) = status_to_pb(&u.expect_status);
                            pb::HttpUrl {
                                path: u.path.clone(),
                                expect_status: one,
                                expect_statuses: several,
                                expect_body: u.expect_body.clone(),
                                expect_digest: u.expect_digest.clone(),
                                host: u.host.clone(),
                            }
                        })
                        .collect(),
                })
            }
            ProbeKind::Tcp => pb::health_check::Probe::Tcp(pb::TcpProbe {}),
            ProbeKind::Exec { command } => {
                pb::health_check::Probe::Exec(pb::ExecProbe { command: command.clone() })
            }
        }),
        interval_ms: h.interval_ms,
        timeout_ms: h.timeout_ms,
        rise: h.rise,
        fall: h.fall,
        on_failure: match h.on_failure {
            OnFailure::Weight0 => pb::OnFailure::Weight0,
            OnFailure::Remove => pb::OnFailure::Remove,
        } as i32,
        connect_ip: h.connect_ip.map(|a| a.to_string()),
        connect_port: h.connect_port.map(u32::from),
        retry_interval_ms: h.retry_interval_ms,
    }
}

/// A check from the wire, every field checked; `g` names it in errors.
pub(super) fn from_pb(g: &str, h: &pb::HealthCheck) -> Result<HealthCheckSpec, WireError> {
    let probe = match required(&format!("{g}.probe"), &h.probe)? {
        pb::health_check::Probe::Http(p) => http_from(&format!("{g}.probe.http"), p)?,
        pb::health_check::Probe::Tcp(_) => ProbeKind::Tcp,
        pb::health_check::Probe::Exec(e) => {
            // A script of the node's own directory, never a path: the node decides what runs.
            shaped_with(&format!("{g}.probe.exec.command"), &e.command, |c: &Vec<String>| {
                names::command_problem(c)
            })?;
            ProbeKind::Exec { command: e.command.clone() }
        }
    };
    if h.interval_ms < MIN_CHECK_INTERVAL_MS || h.timeout_ms == 0 || h.timeout_ms >= h.interval_ms {
        return err(
            g,
            format!("need 0 < timeout_ms < interval_ms and interval_ms ≥ {MIN_CHECK_INTERVAL_MS}"),
        );
    }
    if h.rise == 0 || h.fall == 0 {
        return err(g, "rise and fall must be ≥ 1");
    }
    if let Some(r) = h.retry_interval_ms
        && !(MIN_CHECK_INTERVAL_MS..=h.interval_ms).contains(&r)
    {
        return err(
            format!("{g}.retry_interval_ms"),
            format!("must be {MIN_CHECK_INTERVAL_MS}..=interval_ms"),
        );
    }
    let connect_port = match h.connect_port {
        None => None,
        Some(p @ 1..=65535) => Some(p as u16),
        Some(p) => return err(format!("{g}.connect_port"), format!("{p} is not a port")),
    };
    Ok(HealthCheckSpec {
        probe,
        interval_ms: h.interval_ms,
        timeout_ms: h.timeout_ms,
        rise: h.rise,
        fall: h.fall,
        on_failure: match pb::OnFailure::try_from(h.on_failure) {
            Ok(pb::OnFailure::Weight0) => OnFailure::Weight0,
            Ok(pb::OnFailure::Remove) => OnFailure::Remove,
            _ => return err(format!("{g}.on_failure"), "unknown"),
        },
        connect_ip: h
            .connect_ip
            .as_deref()
            .map(|a| parse::<IpAddr>(&format!("{g}.connect_ip"), a))
            .transpose()?,
        connect_port,
        retry_interval_ms: h.retry_interval_ms,
    })
}

/// A status set on the wire: the one code, or (several) ranges with the code 0.
fn status_to_pb(s: &StatusSet) -> (u32, Vec<pb::StatusRange>) {
    match s.single() {
        Some(c) => (c.into(), Vec::new()),
        None => (
            0,
            s.ranges().iter().map(|&(lo, hi)| pb::StatusRange { min: lo.into(), max: hi.into() }).collect(),
        ),
    }
}

/// The one status, or the several ranges, of a page (`g` names it).
fn statuses(g: &str, one: u32, several: &[pb::StatusRange]) -> Result<StatusSet, WireError> {
    let field = if several.is_empty() { "expect_status" } else { "expect_statuses" };
    let code = |v: u32| {
        u16::try_from(v)
            .map_err(|_| WireError { field: format!("{g}.{field}"), reason: "not a status".into() })
    };
    let ranges = if several.is_empty() {
        let c = code(one)?;
        vec![(c, c)]
    } else {
        several.iter().map(|r| Ok((code(r.min)?, code(r.max)?))).collect::<Result<_, WireError>>()?
    };
    StatusSet::from_ranges(ranges).map_err(|reason| WireError { field: format!("{g}.{field}"), reason })
}

/// A digest an agent can compare with: MD5, lowercase hex.
fn digest(field: String, d: &Option<String>) -> Result<(), WireError> {
    match d {
        Some(d)
            if !(d.len() == 32 && d.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))) =>
        {
            err(field, "not an MD5 digest (32 lowercase hex digits)")
        }
        _ => Ok(()),
    }
}

/// A Host header or server name, when there is one: it goes into the request's head.
fn host(field: &str, h: &Option<String>) -> Result<Option<String>, WireError> {
    h.as_deref().map(|h| shaped(field, h, names::http_host_problem)).transpose()
}

fn http_from(g: &str, p: &pb::HttpProbe) -> Result<ProbeKind, WireError> {
    digest(format!("{g}.expect_digest"), &p.expect_digest)?;
    let urls = p
        .urls
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let g = format!("{g}.urls[{i}]");
            digest(format!("{g}.expect_digest"), &u.expect_digest)?;
            Ok(HttpUrl {
                path: shaped(&format!("{g}.path"), &u.path, names::http_path_problem)?,
                expect_status: statuses(&g, u.expect_status, &u.expect_statuses)?,
                expect_body: u.expect_body.clone(),
                expect_digest: u.expect_digest.clone(),
                host: host(&format!("{g}.host"), &u.host)?,
            })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    let tls = p
        .tls
        .as_ref()
        .map(|t| {
            let verify = match required(&format!("{g}.tls.verify"), &t.verify)? {
                pb::tls_probe::Verify::System(_) => TlsVerify::System,
                pb::tls_probe::Verify::CaFile(f) if f.starts_with('/') => {
                    TlsVerify::CaFile(shaped(&format!("{g}.tls.ca_file"), f, |f| {
                        names::text_problem(f, 4096)
                    })?)
                }
                pb::tls_probe::Verify::CaFile(_) => {
                    return err(format!("{g}.tls.ca_file"), "not an absolute path");
                }
                pb::tls_probe::Verify::Skip(_) => TlsVerify::Skip,
            };
            Ok(TlsProbe { sni: host(&format!("{g}.tls.sni"), &t.sni)?, verify })
        })
        .transpose()?;
    Ok(ProbeKind::Http {
        path: shaped(&format!("{g}.path"), &p.path, names::http_path_problem)?,
        expect_status: statuses(g, p.expect_status, &p.expect_statuses)?,
        expect_body: p.expect_body.clone(),
        host: host(&format!("{g}.host"), &p.host)?,
        expect_digest: p.expect_digest.clone(),
        tls,
        reuse_connection: p.reuse_connection,
        urls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> HealthCheckSpec {
        HealthCheckSpec {
            probe: ProbeKind::Http {
                path: "/".into(),
                expect_status: StatusSet::one(200),
                expect_body: None,
                host: None,
                expect_digest: None,
                tls: None,
                reuse_connection: true,
                urls: vec![],
            },
            interval_ms: 1000,
            timeout_ms: 500,
            rise: 2,
            fall: 3,
            on_failure: OnFailure::Weight0,
            connect_ip: None,
            connect_port: None,
            retry_interval_ms: None,
        }
    }

    /// The wire form of `http()` changed by `f`, read back: the refusal's field and reason.
    fn refused(f: impl FnOnce(&mut pb::HealthCheck)) -> String {
        let mut w = to_pb(&http());
        f(&mut w);
        from_pb("hc", &w).unwrap_err().to_string()
    }

    #[test]
    fn a_check_no_agent_could_run_is_refused_with_its_field() {
        assert_eq!(from_pb("hc", &to_pb(&http())).unwrap(), http());
        let exec = |cmd: &[&str]| {
            let command: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            move |w: &mut pb::HealthCheck| {
                w.probe = Some(pb::health_check::Probe::Exec(pb::ExecProbe { command }))
            }
        };
        // The node decides what runs: a name in its script directory, never a path.
        assert!(
            refused(exec(&["/bin/sh", "-c", "id"]))
                .starts_with("hc.probe.exec.command: script `/bin/sh` is a path")
        );
        assert!(
            refused(exec(&["../../bin/sh"]))
                .starts_with("hc.probe.exec.command: script `../../bin/sh` is a path")
        );
        assert!(refused(exec(&[])).starts_with("hc.probe.exec.command: is empty"));
        assert!(refused(exec(&["check", "a\0b"])).starts_with("hc.probe.exec.command: argument 1 "));
        assert_eq!(
            from_pb("hc", &{
                let mut w = to_pb(&http());
                exec(&["check-app", "--quick"])(&mut w);
                w
            })
            .unwrap()
            .probe,
            ProbeKind::Exec { command: vec!["check-app".into(), "--quick".into()] }
        );
        let http_with = |g: fn(&mut pb::HttpProbe)| {
            move |w: &mut pb::HealthCheck| {
                if let Some(pb::health_check::Probe::Http(h)) = &mut w.probe {
                    g(h)
                }
            }
        };
        let e = refused(http_with(|h| h.expect_statuses = vec![pb::StatusRange { min: 299, max: 200 }]));
        assert_eq!(e, "hc.probe.http.expect_statuses: 299-200 is a range from high to low");
        let e = refused(http_with(|h| h.expect_status = 7));
        assert_eq!(e, "hc.probe.http.expect_status: 7 is not an HTTP status (100-599)");
        let e = refused(http_with(|h| {
            h.urls = vec![pb::HttpUrl { path: "deep".into(), expect_status: 200, ..Default::default() }]
        }));
        assert_eq!(e, "hc.probe.http.urls[0].path: does not start with /");
        // CR/LF would end the request line or add a header: refused in the path and Host,
        // of the check and of each further page, and in the TLS server name.
        let e = refused(http_with(|h| h.path = "/ HTTP/1.1\r\nX-Injected: 1\r\n".into()));
        assert!(e.starts_with("hc.probe.http.path: "), "{e}");
        let e = refused(http_with(|h| h.host = Some("www\r\nX-Injected: 1".into())));
        assert!(e.starts_with("hc.probe.http.host: "), "{e}");
        let e = refused(http_with(|h| {
            h.urls = vec![pb::HttpUrl { path: "/a\nb".into(), expect_status: 200, ..Default::default() }]
        }));
        assert!(e.starts_with("hc.probe.http.urls[0].path: "), "{e}");
        let e = refused(http_with(|h| {
            h.urls = vec![pb::HttpUrl {
                path: "/".into(),
                expect_status: 200,
                host: Some("a\r\nb".into()),
                ..Default::default()
            }]
        }));
        assert!(e.starts_with("hc.probe.http.urls[0].host: "), "{e}");
        let e = refused(http_with(|h| {
            h.tls = Some(pb::TlsProbe {
                sni: Some("a\nb".into()),
                verify: Some(pb::tls_probe::Verify::System(true)),
            })
        }));
        assert!(e.starts_with("hc.probe.http.tls.sni: "), "{e}");
        let e = refused(http_with(|h| {
            h.urls = vec![pb::HttpUrl {
                path: "/".into(),
                expect_status: 200,
                expect_digest: Some("x".into()),
                ..Default::default()
            }]
        }));
        assert_eq!(e, "hc.probe.http.urls[0].expect_digest: not an MD5 digest (32 lowercase hex digits)");
        let e = refused(http_with(|h| h.expect_digest = Some("ABC".into())));
        assert_eq!(e, "hc.probe.http.expect_digest: not an MD5 digest (32 lowercase hex digits)");
        let e = refused(http_with(|h| {
            h.tls =
                Some(pb::TlsProbe { sni: None, verify: Some(pb::tls_probe::Verify::CaFile("ca.pem".into())) })
        }));
        assert_eq!(e, "hc.probe.http.tls.ca_file: not an absolute path");
        let e = refused(http_with(|h| h.tls = Some(pb::TlsProbe { sni: None, verify: None })));
        assert_eq!(e, "hc.probe.http.tls.verify: missing");
        let e = refused(|w| w.retry_interval_ms = Some(5000));
        assert_eq!(e, "hc.retry_interval_ms: must be 100..=interval_ms");
        let e = refused(|w| w.connect_port = Some(70000));
        assert_eq!(e, "hc.connect_port: 70000 is not a port");
        let e = refused(|w| w.connect_ip = Some("nowhere".into()));
        assert!(e.starts_with("hc.connect_ip: `nowhere`"), "{e}");
    }
}
