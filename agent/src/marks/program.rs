//! Running `nft` for the marking table: reading it (`nft -j list table inet lvs_dr`,
//! bounded like the ruleset read) and loading a script (`nft -f -`, one transaction).
use lvs_proto::spec::MarkRule;

use super::{MarkTable, TABLE, decode, script};
use crate::ha::straddle::{Nft as _, NftProgram};
use crate::kernel::system::{SysResult, SystemError};

/// The table as found; `None` when there is none.
pub async fn read() -> SysResult<Option<MarkTable>> {
    let op = || format!("read nftables table {TABLE}");
    let args = ["-j", "list", "table", "inet", "lvs_dr"];
    match crate::firewall::read::nft_json(&args).await {
        Ok(Some(json)) => decode::decode(&json).map(Some).map_err(|e| SystemError::new(op(), e)),
        Ok(None) => Err(SystemError::new(op(), "no nft program (install nftables)")),
        // nft says ENOENT in words only (in the C locale `nft_json` runs it in): the table
        // is not there.
        Err(e) if e.to_string().contains("No such file or directory") => Ok(None),
        Err(e) => Err(SystemError::new(op(), e)),
    }
}

/// Make the table hold exactly `rules`.
pub async fn load(rules: &[MarkRule]) -> SysResult<()> {
    NftProgram::default_program()
        .load(&script::load(rules))
        .await
        .map_err(|e| SystemError::new(format!("load nftables table {TABLE}"), e))
}

/// Remove the table (nothing when it is not there).
pub async fn remove() -> SysResult<()> {
    NftProgram::default_program()
        .load(&script::removal())
        .await
        .map_err(|e| SystemError::new(format!("remove nftables table {TABLE}"), e))
}
