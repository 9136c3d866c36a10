//! The man pages: `lvsctl(1)` with the sections an admin looks for (EXIT STATUS,
//! ENVIRONMENT, FILES, EXAMPLES) after clap's, and one page per subcommand
//! (`lvsctl-plan(1)`, …), which `lvsctl(1)` names.
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;
use lvs_controller::commands::Exit;

use crate::cli::Cli;

/// roff-escape a line of text (backslashes and dashes; a leading dot).
fn esc(s: &str) -> String {
    let s = s.replace('\\', "\\\\").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s }
}

fn section(out: &mut dyn Write, title: &str, items: &[(String, String)]) -> std::io::Result<()> {
    writeln!(out, ".SH \"{title}\"")?;
    for (k, v) in items {
        writeln!(out, ".TP\n{}\n{}", esc(k), esc(v))?;
    }
    Ok(())
}

/// `lvsctl(1)`.
pub fn main_page(out: &mut dyn Write) -> std::io::Result<()> {
    // The exit table is its own section here, not clap's "EXTRA" text.
    let cmd = Cli::command().after_help(None::<&str>).disable_help_subcommand(true);
    let man = Man::new(cmd);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    let exits: Vec<(String, String)> =
        Exit::ALL.iter().map(|e| (e.code().to_string(), e.meaning().to_string())).collect();
    section(out, "EXIT STATUS", &exits)?;
    let s = |k: &str, v: &str| (k.to_string(), v.to_string());
    section(
        out,
        "ENVIRONMENT",
        &[
            s("LVSCTL_FILE", "the cluster definition, when -f is not given (default cluster.toml)"),
            s(
                "LVSCTL_PKI",
                "the PKI directory, when --pki is not given (default: pki/ beside the definition)",
            ),
            s("LVSCTL_PAIRING_CODE", "node enroll: the pairing code, when --code is not given"),
            s("LVS_AGENT_BIN", "lvsctl lab: the lvs-agent binary to start (default: beside lvsctl)"),
        ],
    )?;
    section(
        out,
        "FILES",
        &[
            s("cluster.toml", "the cluster definition (see the examples in /usr/share/doc/lvsctl/examples)"),
            s(
                "pki/ca.pem, pki/ca.key",
                "the cluster CA; ca.key signs every certificate: keep it off shared trees",
            ),
            s("pki/controller.pem, pki/controller.key", "your own certificate as a caller of the agents"),
            s(
                "pki/issued.json",
                "every certificate issued (serial, subject, expiry, revoked): pki list, pki revoke",
            ),
            s(
                "pki/callers/NAME/",
                "what pki issue-admin NAME writes: a PKI directory of NAME's own, no CA key",
            ),
            s(
                "pki/agent-NODE.pem, pki/agent-NODE.key",
                "offline fallback only (pki issue): NODE's certificate, to copy to /etc/lvs-agent on NODE",
            ),
            s("~/.local/state/lvsctl/", "a rollout's progress while it runs ($XDG_STATE_HOME/lvsctl)"),
        ],
    )?;
    section(
        out,
        "EXAMPLES",
        &[
            s("lvsctl validate", "check the definition against the rules of DR"),
            s("lvsctl pki init", "the cluster CA and your own certificate"),
            s(
                "lvsctl node enroll rs1 --code ABCD-EFGH-…",
                "give rs1's agent its certificate (the code: lvs-agent pairing-code on rs1)",
            ),
            s("lvsctl pki issue-admin grafana --role viewer --out DIR", "a read-only caller"),
            s("lvsctl plan --detailed-exitcode", "what apply would change; exit 7 when anything would"),
            s("lvsctl apply --yes", "make every node match the definition"),
            s("lvsctl status -o json", "the fleet as JSON; exit 4 when anything is unhealthy"),
            s(
                "lvsctl rs drain rs1 --drain-timeout=2m",
                "take rs1 out of service and wait for its connections",
            ),
            s("lvsctl ipvs list -n --stats", "the directors' tables as ipvsadm -L -n --stats prints them"),
        ],
    )?;
    writeln!(out, ".SH \"SEE ALSO\"\nlvs\\-agent(8), ipvsadm(8)")?;
    man.render_version_section(out)
}

/// Write `lvsctl.1` and one page per subcommand into `dir`; the files written.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let main = dir.join("lvsctl.1");
    let mut f = std::fs::File::create(&main)?;
    main_page(&mut f)?;
    let mut written = vec![main];
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut stack: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
    while let Some(c) = stack.pop() {
        if c.is_hide_set() {
            continue;
        }
        stack.extend(c.get_subcommands().cloned());
        written.push(Man::new(c).generate_to(dir)?);
    }
    written.sort();
    Ok(written)
}
