//! What this node is: the article's step 2 (`uname -r`, IPVS and its schedulers) plus the
//! basics an operator wants in the fleet table.
use lvs_proto::reply::Facts;

use crate::kernel::system::System;

pub use lvs_proto::spec::SCHEDULERS;

/// Gather the facts of `node`, as the agent reports them.
pub async fn gather<S: System>(sys: &S, node: &str) -> Facts {
    let mut s = sysinfo::System::new();
    s.refresh_memory();
    let kernel = sysinfo::System::kernel_version().unwrap_or_default();
    let info = sys.ipvs_info().await.ok().flatten();
    Facts {
        node: node.to_string(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        hostname: sysinfo::System::host_name().unwrap_or_default(),
        schedulers: schedulers(&kernel),
        kernel,
        ipvs: info.is_some(),
        ipvs_version: info.map(|(i, _)| i.version_string()).unwrap_or_default(),
        cpus: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
        memory_total_bytes: s.total_memory(),
        memory_used_bytes: s.used_memory(),
        agent_rss_bytes: rss_bytes(),
        uptime_s: sysinfo::System::uptime(),
    }
}

/// Schedulers this kernel can run: loaded modules plus modules on disk. (The kernel loads
/// a scheduler's module by itself when a service first uses it.)
pub fn schedulers(kernel: &str) -> Vec<String> {
    let loaded = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    let dir = format!("/lib/modules/{kernel}/kernel/net/netfilter/ipvs");
    let on_disk: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    SCHEDULERS
        .iter()
        .filter(|s| {
            let m = format!("ip_vs_{s}");
            loaded.lines().any(|l| l.split(' ').next() == Some(m.as_str()))
                || on_disk.iter().any(|f| f.split('.').next() == Some(m.as_str()))
        })
        .map(|s| s.to_string())
        .collect()
}

/// This process's resident set size, from `/proc/self/statm`.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}
