//! `lvsctl node enroll`, `lvsctl pki rotate` and `lvsctl pki revoke`: the commands that
//! give agents their certificates and take callers' away.
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use lvs_proto::reply::CertificateInfo;
use serde::Serialize;

use super::{CmdError, Ctx, Exit, exit, json, say};
use crate::pki::{Issued, Pki};

fn date(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

#[derive(Serialize)]
struct Enrolled<'a> {
    node: &'a str,
    enrolled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<&'a Issued>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Enrol `node` with the pairing code its agent shows, then check that it answers over
/// mutual TLS with its new certificate.
pub async fn enroll(
    ctx: &Ctx,
    pki: &Pki,
    node: &str,
    code: &str,
    out: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    let Some(n) = ctx.cluster.nodes.iter().find(|n| n.name == node) else {
        return Err(CmdError::Usage(format!("no node `{node}` in {}", ctx.file.display())));
    };
    let deadline = ctx.fleet.deadline;
    let r = crate::enrol::enroll(pki, node, &n.agent, code, deadline).await;
    let issued = match r {
        Ok(i) => i,
        Err(e) => {
            if ctx.json {
                json(
                    out,
                    &Enrolled { node, enrolled: false, certificate: None, error: Some(e.to_string()) },
                )?;
            } else {
                writeln!(out, "{node}: NOT enrolled: {e}")?;
            }
            return Ok(Exit::NodeFailed.into());
        }
    };
    // The agent switches to mutual TLS once it has answered; give it a moment.
    let mut answered = Err(crate::fleet::NodeError::Failed("not tried".into()));
    for _ in 0..50 {
        answered = ctx.fleet.facts(node).await;
        if answered.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error =
        answered.as_ref().err().map(|e| format!("enrolled, but not answering over mutual TLS yet: {e}"));
    if ctx.json {
        json(out, &Enrolled { node, enrolled: true, certificate: Some(&issued), error: error.clone() })?;
    } else {
        writeln!(
            out,
            "{node}: enrolled; certificate {} valid until {} (its key never left {node})",
            issued.serial,
            date(issued.not_after_unix)
        )?;
        if let Some(e) = &error {
            writeln!(out, "{node}: {e}")?;
        }
    }
    Ok(exit(error.is_none(), Exit::NodeFailed))
}

#[derive(Serialize)]
struct Rotated {
    node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertificateInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Rotate the certificates of the nodes of `ctx` (its specs), one node at a time.
pub async fn rotate(ctx: &Ctx, pki: &Pki, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    let nodes: Vec<String> = ctx.specs.iter().map(|s| s.node.clone()).collect();
    let done = crate::ops::trust::rotate_all(&ctx.fleet, pki, &nodes).await;
    let views: Vec<Rotated> = done
        .into_iter()
        .map(|(node, r)| match r {
            Ok(c) => Rotated { node, certificate: Some(c), error: None },
            Err(e) => Rotated { node, certificate: None, error: Some(e.to_string()) },
        })
        .collect();
    let ok = views.iter().all(|v| v.error.is_none());
    if ctx.json {
        json(out, &views)?;
    } else {
        for v in &views {
            match (&v.certificate, &v.error) {
                (Some(c), _) => writeln!(
                    out,
                    "{}: rotated; certificate {} valid until {}",
                    v.node,
                    c.serial,
                    date(c.not_after_unix)
                )?,
                (_, Some(e)) => writeln!(out, "{}: NOT rotated: {e}", v.node)?,
                _ => {}
            }
        }
    }
    Ok(exit(ok, Exit::NodeFailed))
}

#[derive(Serialize)]
struct RevokeView {
    revoked: Vec<Issued>,
    nodes: Vec<PushView>,
}

#[derive(Serialize)]
struct PushView {
    node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    serials: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Revoke every certificate issued to `what` (a name or a serial) and push the list to
/// every agent. An agent that did not get it is named; `lvsctl apply` pushes it again.
pub async fn revoke(
    ctx: &Ctx,
    pki: &Pki,
    what: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    let revoked = pki.revoke(what)?;
    let pushed = crate::ops::trust::push_revoked(&ctx.fleet, pki, &ctx.fleet.names()).await?;
    let nodes: Vec<PushView> = pushed
        .into_iter()
        .map(|(node, r)| match r {
            Ok(n) => PushView { node, serials: Some(n), error: None },
            Err(e) => PushView { node, serials: None, error: Some(e.to_string()) },
        })
        .collect();
    let ok = nodes.iter().all(|n| n.error.is_none());
    if ctx.json {
        json(out, &RevokeView { revoked, nodes })?;
    } else {
        if revoked.is_empty() {
            say(ctx, out, err, &format!("{what}: revoked already; pushing the list again"))?;
        }
        for r in &revoked {
            writeln!(out, "revoked {} (serial {})", r.subject, r.serial)?;
        }
        for n in &nodes {
            match (&n.serials, &n.error) {
                (Some(c), _) => writeln!(out, "{}: refuses {c} revoked serial(s)", n.node)?,
                (_, Some(e)) => {
                    writeln!(out, "{}: NOT updated ({e}); `lvsctl apply` pushes the list again", n.node)?
                }
                _ => {}
            }
        }
    }
    Ok(exit(ok, Exit::NodeFailed))
}
