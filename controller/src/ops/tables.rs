//! The directors' IPVS tables.
use lvs_proto::reply::{IpvsTable, Report};
use lvs_proto::spec::Role;

use super::{Ctx, NodeResult};

/// Every director's table (with connections when asked), in ipvsadm's order.
pub async fn tables(ctx: &Ctx, connections: bool) -> Vec<NodeResult<IpvsTable>> {
    ctx.fleet
        .each(&ctx.nodes_with(Role::Director), |n| async move { ctx.fleet.ipvs_table(&n, connections).await })
        .await
}

/// Withdraw the services lvs-dr manages on every director until the next apply.
pub async fn clear_all(ctx: &Ctx) -> Vec<NodeResult<Report>> {
    ctx.fleet.each(&ctx.nodes_with(Role::Director), |n| async move { ctx.fleet.clear_ipvs(&n).await }).await
}
