//! The spec's observations ([`CheckSpec`]): they change nothing and report what a person
//! doing the article by hand would look at — `modprobe -l | grep ipvs`, `ntpdate`,
//! `curl http://localhost`, `route -n`, `iptables -L`.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use lvs_proto::NodeSpec;
use lvs_proto::spec::CheckSpec;

use crate::health::clock::Reading;
use crate::kernel::system::System;

pub use lvs_proto::reply::CheckResult;

fn result(check: impl Into<String>, ok: bool, detail: impl Into<String>) -> CheckResult {
    CheckResult { unknown: false, check: check.into(), ok, detail: detail.into() }
}

/// Evaluate the checks of `spec` (on a node of its role); `clock` is the agent's latest
/// SNTP reading.
pub async fn evaluate<S: System>(sys: &S, spec: &NodeSpec, clock: Option<&Reading>) -> Vec<CheckResult> {
    let role = spec.role;
    let mut out = Vec::new();
    for c in &spec.checks {
        out.push(match c {
            CheckSpec::KernelIpvs { schedulers } => kernel_ipvs(sys, schedulers).await,
            CheckSpec::ClockOffset { server, max_offset_ms } => clock_offset(*server, *max_offset_ms, clock),
            CheckSpec::NtpServing { address } => ntp_serving(*address).await,
            CheckSpec::HttpLocal { port, path } => http_local(*port, path).await,
            CheckSpec::GatewayIsNot { forbidden } => gateway_is_not(sys, forbidden).await,
            CheckSpec::FirewallAllows { service } => {
                crate::health::firewall_check::firewall(sys, service, role, &spec.marks).await
            }
        });
    }
    out
}

async fn kernel_ipvs<S: System>(sys: &S, want: &[String]) -> CheckResult {
    let name = "kernel has IPVS";
    match sys.ipvs_info().await {
        Ok(Some((info, _))) => {
            let kernel = sysinfo::System::kernel_version().unwrap_or_default();
            let have = crate::kernel::facts::schedulers(&kernel);
            let missing: Vec<&String> = want.iter().filter(|s| !have.contains(s)).collect();
            let conntrack = std::fs::read_to_string("/proc/sys/net/ipv4/vs/conntrack").unwrap_or_default();
            if let Some(why) = reuse_stall(&kernel, &conntrack) {
                result(name, false, why)
            } else if missing.is_empty() {
                result(name, true, format!("IPVS {} ({})", info.version_string(), have.join(" ")))
            } else {
                let m: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                result(
                    name,
                    false,
                    format!("IPVS {} lacks scheduler(s) {}", info.version_string(), m.join(" ")),
                )
            }
        }
        Ok(None) => result(name, false, "this kernel has no IPVS (load ip_vs)"),
        Err(e) => result(name, false, e.to_string()),
    }
}

/// Why the planned `conn_reuse_mode` 1 would hurt on this kernel: with IPVS conntrack on,
/// kernels before 5.9 drop the SYN that reuses a finished connection's ports (the client
/// retries a second later). Off, as DR wants it, every kernel is fine.
fn reuse_stall(kernel: &str, conntrack: &str) -> Option<String> {
    if conntrack.trim() != "1" {
        return None;
    }
    let mut v = kernel.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
    let (major, minor) = (v.next()?, v.next()?);
    ((major, minor) < (5, 9)).then(|| {
        format!(
            "net.ipv4.vs.conntrack is 1 on kernel {kernel}: before 5.9 a new connection reusing a finished one's ports waits 1 s (set it to 0; DR does not need it)"
        )
    })
}

fn clock_offset(server: IpAddr, max_ms: u64, clock: Option<&Reading>) -> CheckResult {
    let name = format!("clock within {max_ms} ms of {server}");
    match clock {
        None => result(name, false, "not measured yet"),
        Some(r) => match (r.offset_ms, &r.error) {
            (Some(o), _) => result(
                name,
                o.unsigned_abs() < max_ms,
                format!("offset {o:+} ms, round trip {} ms", r.rtt_ms.unwrap_or(0)),
            ),
            (None, e) => result(name, false, e.clone().unwrap_or_default()),
        },
    }
}

async fn ntp_serving(address: IpAddr) -> CheckResult {
    let name = format!("NTP server answers on {address}");
    let r = crate::health::clock::measure(address, 123, Duration::from_secs(1)).await;
    match r.error {
        None => result(name, true, format!("answered in {} ms", r.rtt_ms.unwrap_or(0))),
        Some(e) => result(name, false, e),
    }
}

async fn http_local(port: u16, path: &str) -> CheckResult {
    let name = format!("httpd answers on localhost:{port}{path}");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match crate::health::http::get(addr, "localhost", path, Duration::from_secs(2)).await {
        Ok(r) if (200..400).contains(&r.status) => {
            result(name, true, format!("{} {}", r.status, r.first_line()))
        }
        Ok(r) => result(name, false, format!("status {}", r.status)),
        Err(e) => result(name, false, e),
    }
}

async fn gateway_is_not<S: System>(sys: &S, forbidden: &[IpAddr]) -> CheckResult {
    let name = "default gateway is not a director";
    match sys.routes().await {
        Ok(routes) => {
            let gw: Vec<IpAddr> =
                routes.iter().filter(|r| r.destination.prefix_len() == 0).filter_map(|r| r.gateway).collect();
            match gw.iter().find(|g| forbidden.contains(g)) {
                Some(g) => {
                    result(name, false, format!("default route via {g}, a director: replies would pass it"))
                }
                None if gw.is_empty() => result(name, true, "no default route"),
                None => result(
                    name,
                    true,
                    format!("via {}", gw.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
                ),
            }
        }
        Err(e) => result(name, false, e.to_string()),
    }
}

/// Firewall tables are reported, never flushed (the article runs `iptables -F`; we do not
/// touch the user's firewall). Without loaded tables nothing can drop VIP traffic.
#[cfg(test)]
mod tests {
    use super::reuse_stall;

    #[test]
    fn ipvs_conntrack_on_a_kernel_before_5_9_is_named_and_nothing_else_is() {
        let why = reuse_stall("5.4.0-150-generic", "1\n").expect("a stall");
        assert!(why.contains("5.4.0-150-generic") && why.contains("set it to 0"), "{why}");
        assert_eq!(reuse_stall("5.4.0", "0\n"), None, "conntrack off: any kernel");
        assert_eq!(reuse_stall("5.9.0", "1\n"), None);
        assert_eq!(reuse_stall("6.1.0-57-amd64", "1\n"), None);
        assert_eq!(reuse_stall("", "1\n"), None, "an unknown kernel is not blamed");
    }
}
