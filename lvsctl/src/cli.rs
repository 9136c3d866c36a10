//! Command-line interface of `lvsctl`: what it accepts. [`crate::exec`] runs it.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit statuses, as `--help` lists them (held equal to `Exit::ALL` by a test).
pub const EXIT_HELP: &str = "\
Exit status:
  0  success; for status and verify: everything healthy
  1  the definition is invalid; nothing was changed
  2  bad usage: unknown option, node or value
  3  a node failed, was unreachable or refused
  4  every node answered, but something is unhealthy
  5  apply refused by the time gate (a clock is off); nothing was changed
  6  not confirmed (declined, or no terminal and no --yes); nothing was changed
  7  plan --detailed-exitcode: changes are pending
  8  a local failure: a file, the certificates, the lab
";

/// Set up and run Linux Virtual Server direct-routing (LVS-DR) web clusters.
#[derive(Debug, Parser)]
#[command(name = "lvsctl", version, about, long_about = None, after_help = EXIT_HELP)]
pub struct Cli {
    /// Cluster definition file.
    #[arg(short = 'f', long = "file", global = true, env = "LVSCTL_FILE", default_value = "cluster.toml")]
    pub file: PathBuf,
    /// PKI directory (default: ~/.config/lvsctl/CLUSTER/pki).
    #[arg(long, global = true, env = "LVSCTL_PKI")]
    pub pki: Option<PathBuf>,
    /// How long each call to each agent may take (one of the `--*-timeout` family).
    #[arg(long = "call-timeout", visible_alias = "deadline", global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub deadline: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Readable text.
    Human,
    /// JSON for programs.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the definition against the rules of DR; report every problem at once.
    Validate,
    /// Show what would change on every node (asks the agents; changes nothing).
    Plan(PlanArgs),
    /// Make every node match the definition.
    Apply(ApplyArgs),
    /// The whole fleet in one table; exits non-zero when anything is unhealthy.
    Status(StatusArgs),
    /// The directors' IPVS tables, in ipvsadm's vocabulary.
    #[command(subcommand)]
    Ipvs(IpvsCommand),
    /// Live changes to one real server.
    #[command(subcommand)]
    Rs(RsCommand),
    /// Apply real-server changes one real server at a time: drain, change, check, restore.
    Rollout(RolloutArgs),
    /// Send requests to every VIP from the router; check the distribution and that replies bypass the director.
    Verify(VerifyArgs),
    /// Follow every agent's events: applies, weight changes, health transitions, drift and healing.
    Events(EventsArgs),
    /// The cluster's certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Nodes: enrol one, take one out of the cluster.
    #[command(subcommand)]
    Node(NodeCommand),
    /// One scrape of a node's /metrics, as Prometheus makes it (HTTPS, your certificate).
    Metrics(MetricsArgs),
    /// Directors sharing VIPs (VRRP): a planned failover.
    #[command(subcommand)]
    Director(DirectorCommand),
    /// Failover drills: prove HA works before the day it must.
    #[command(subcommand)]
    Drill(DrillCommand),
    /// ECMP ([bgp]) with external routers: print each router's side of the sessions (for
    /// FRR or BIRD), from the definition alone.
    #[command(
        after_help = "Examples:\n  lvsctl -f ecmp-tor.toml peering frr                 every external router\n  lvsctl -f ecmp-tor.toml peering bird --router tor1   one of them"
    )]
    Peering(PeeringArgs),
    /// Write a definition from another tool's configuration (keepalived.conf).
    #[command(subcommand)]
    Import(ImportCommand),
    /// The seed article's lab in network namespaces (root): up, apply, status, verify, down.
    Lab(lvs_lab::LabArgs),
    /// Print shell completions.
    Completions {
        /// The shell to print completions for (bash, zsh, fish, elvish, powershell).
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff); --dir writes every page.
    Man {
        /// Write lvsctl.1 and lvsctl-SUBCOMMAND.1 here instead of printing lvsctl.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `lvsctl plan`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lvsctl plan                          what apply would change, node by node\n  lvsctl plan --detailed-exitcode      exit 7 when anything would change (CI drift check)\n  lvsctl plan --offline -o json        every node's desired state, without asking the agents"
)]
pub struct PlanArgs {
    /// Compute the desired state from the definition alone, without asking the agents.
    #[arg(long)]
    pub offline: bool,
    /// Exit 7 when any node has changes pending, 0 when none (as `terraform plan -detailed-exitcode`).
    #[arg(long, conflicts_with = "offline")]
    pub detailed_exitcode: bool,
    /// The plan `apply --adopt` would carry out.
    #[arg(long, conflicts_with = "offline")]
    pub adopt: bool,
    /// Only these nodes (repeatable).
    #[arg(long = "node")]
    pub nodes: Vec<String>,
}

/// `lvsctl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only these nodes (repeatable).
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// Refresh every INTERVAL until interrupted (default 2s), like watch(1).
    #[arg(short, long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s", value_parser = humantime::parse_duration)]
    pub watch: Option<Duration>,
    /// With --watch: stop after this many refreshes.
    #[arg(long, requires = "watch")]
    pub count: Option<u32>,
}

/// `lvsctl apply`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lvsctl apply                  show the plan, check the clocks, ask, apply\n  lvsctl apply --yes            the same without asking (scripts; required without a terminal)\n  lvsctl apply --node rs1       only rs1; the others are left as they are"
)]
pub struct ApplyArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Apply even when a director's or real server's clock is off the NTP source.
    #[arg(long)]
    pub ignore_clock: bool,
    /// Only these nodes (repeatable); the others are left as they are.
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// Take over IPVS services the definition names that another tool created (keepalived's,
    /// during a migration); without it such a service refuses the apply, untouched.
    #[arg(long)]
    pub adopt: bool,
}

/// `lvsctl rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// Longest wait for a drained server's live connections to end.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Longest wait for a changed server's health check to pass.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub health_timeout: Duration,
    /// Roll every real server, changed or not.
    #[arg(long)]
    pub all: bool,
}

/// `lvsctl verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Requests per virtual service.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub requests: u32,
}

/// `lvsctl events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only these nodes (repeatable).
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// Stop after this many events.
    #[arg(short = 'n', long)]
    pub count: Option<usize>,
}

/// `lvsctl metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The node.
    pub node: String,
    /// Where its agent serves /metrics (default: the agent's host, port 9643).
    #[arg(long)]
    pub address: Option<std::net::SocketAddr>,
}

/// `lvsctl ipvs ...`
#[derive(Debug, Subcommand)]
pub enum IpvsCommand {
    /// `ipvsadm -L -n`.
    List(ListArgs),
    /// `ipvsadm -S -n`.
    Save,
    /// Withdraw the IPVS services lvs-dr manages on every director (foreign ones stay) until the next apply.
    Clear {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Convert `ipvsadm -S` text (a file, or `-` for stdin) into definition services.
    Restore {
        /// The saved rules.
        #[arg(default_value = "-")]
        input: PathBuf,
    },
}

/// What `ipvs list` shows, and of which services.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The view.
    #[command(flatten)]
    pub view: ViewArgs,
    /// Numeric output (always: accepted for ipvsadm's `-L -n` habit).
    #[arg(short = 'n', long)]
    pub numeric: bool,
    /// Only this TCP service (VIP:PORT), as `ipvsadm -L -t`.
    #[arg(short = 't', long = "tcp-service", value_name = "VIP:PORT")]
    pub tcp: Option<std::net::SocketAddr>,
    /// Only this UDP service (VIP:PORT), as `ipvsadm -L -u`.
    #[arg(short = 'u', long = "udp-service", value_name = "VIP:PORT")]
    pub udp: Option<std::net::SocketAddr>,
    /// Only this firewall-mark service, as `ipvsadm -L -f` (here `-f` is the definition file).
    #[arg(long = "fwmark-service", value_name = "MARK")]
    pub fwmark: Option<u32>,
    /// Only these directors (repeatable).
    #[arg(long = "node")]
    pub nodes: Vec<String>,
}

/// One of ipvsadm's views.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ViewArgs {
    /// Show packet and byte counters (as `ipvsadm -L --stats`).
    #[arg(long)]
    pub stats: bool,
    /// Show rates per second (as `ipvsadm -L --rate`).
    #[arg(long)]
    pub rate: bool,
    /// Connection timeouts.
    #[arg(long)]
    pub timeout: bool,
    /// The connection table.
    #[arg(short = 'c', long)]
    pub connections: bool,
}

/// `lvsctl rs ...`
#[derive(Debug, Subcommand)]
pub enum RsCommand {
    /// Weight 0 on every director: no new connections; optionally wait for live ones to end.
    #[command(
        after_help = "Examples:\n  lvsctl rs drain rs1                        weight 0 now\n  lvsctl rs drain rs1 --drain-timeout        and wait up to 60 s for its connections to end\n  lvsctl rs drain rs1 --drain-timeout=5m     wait up to 5 minutes (`--wait` is the same option)"
    )]
    Drain {
        /// Real server node.
        rs: String,
        /// Wait for live connections to reach 0, at most this long (60s when no value is
        /// given; a value needs `=`, so `--drain-timeout rs1` never reads rs1 as a duration).
        #[arg(long = "drain-timeout", visible_alias = "wait", num_args = 0..=1, require_equals = true, default_missing_value = "60s", value_parser = humantime::parse_duration)]
        wait: Option<Duration>,
    },
    /// Back to the definition's weight.
    Enable {
        /// Real server node.
        rs: String,
    },
    /// A live weight (until `enable`).
    Weight {
        /// Real server node.
        rs: String,
        /// Weight, 0..=65535.
        weight: u32,
    },
}

/// `lvsctl drill ...`
#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// A planned hand-over of a VRRP instance and back, under open-loop requests through the
    /// VIP from the router's agent: requests, failures, slowest answer, longest outage and
    /// each hand-over's time. Exits 4 when a request failed. The router keeps the result as
    /// metrics (lvs_drill_*) and an event; lvs-drill@.timer runs it weekly.
    #[command(
        after_help = "Examples:\n  lvsctl drill failover                      the only VRRP instance, 8 s, a request every 25 ms\n  lvsctl drill failover --instance web --duration 20s --every 10ms"
    )]
    Failover {
        /// The VRRP instance (needed when the definition has several).
        #[arg(long)]
        instance: Option<String>,
        /// How long the requests run; the hand-over is at a quarter, the way back at 5/8.
        #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// A request starts this often, whatever the answers do.
        #[arg(long, default_value = "25ms", value_parser = humantime::parse_duration)]
        every: Duration,
    },
}

/// `lvsctl peering`.
#[derive(Debug, Args)]
pub struct PeeringArgs {
    /// The router's software.
    pub dialect: PeeringDialect,
    /// Only this external router (default: each of them, one after another).
    #[arg(long)]
    pub router: Option<String>,
}

/// The configuration language `lvsctl peering` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PeeringDialect {
    /// FRRouting 8 (bgpd and bfdd; paste into vtysh or frr.conf).
    Frr,
    /// BIRD 2 (include it from bird.conf).
    Bird,
}

/// `lvsctl director ...`
#[derive(Debug, Subcommand)]
pub enum DirectorCommand {
    /// Planned switchover: the VRRP master hands its VIPs to the next director now (no
    /// master-down timer, no failed request) and rejoins as a backup.
    #[command(
        after_help = "Examples:\n  lvsctl director failover                 the only VRRP instance: master → next backup\n  lvsctl director failover --to director2  and check that director2 is the one taking over"
    )]
    Failover {
        /// The director expected to take over (the live backup with the highest priority).
        #[arg(long)]
        to: Option<String>,
        /// The VRRP instance (needed when the definition has several).
        #[arg(long)]
        instance: Option<String>,
    },
    /// ECMP ([bgp]): withdraw the director's VIPs from the router (no new flow reaches it;
    /// its connections finish through it) and wait for its connections to end. Kept across
    /// agent restarts until `enable`.
    #[command(
        after_help = "Examples:\n  lvsctl director drain lb2               withdraw, wait up to 60 s for lb2's connections\n  lvsctl director drain lb2 --wait 0s     withdraw and return at once"
    )]
    Drain {
        /// The director.
        node: String,
        /// How long to wait for its connections to end (exit 1 if some are left).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
    /// ECMP ([bgp]): announce the director's VIPs again (those that work).
    Enable {
        /// The director.
        node: String,
    },
}

/// `lvsctl node ...`
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Give a node's agent its certificate: the agent made its key and shows a pairing code
    /// (`lvs-agent pairing-code`, as root on the node); the key never leaves the node.
    #[command(
        after_help = "Examples:\n  lvsctl node enroll rs1 --code ABCD-EFGH-…   the code rs1's agent shows\n  ssh rs1 lvs-agent pairing-code               show it (again) on the node"
    )]
    Enroll {
        /// The node, as the definition names it (its agent address comes from there).
        node: String,
        /// The pairing code the node's agent shows (read once; single use, expires); `-`
        /// reads it from standard input, so it stays out of the process list and history.
        #[arg(long, env = "LVSCTL_PAIRING_CODE", hide_env_values = true)]
        code: String,
    },
    /// Take a node out of the cluster (run it before dropping the node from the definition):
    /// its agent removes what it created, restores the sysctls it changed, and stops healing.
    Remove {
        /// The node.
        node: String,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
}

/// `lvsctl pki ...`
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create the cluster CA and the controller's certificate.
    Init {
        /// Replace existing files (a new CA: every node's certificate must be issued again).
        #[arg(long)]
        force: bool,
        /// Do not ask before replacing the CA (required without a terminal).
        #[arg(short, long)]
        yes: bool,
        /// Write the CA key inside a git work tree anyway (refused by default: a key that is
        /// committed once is compromised for good).
        #[arg(long)]
        allow_git_tree: bool,
    },
    /// Offline fallback to `node enroll`: make agent keys and certificates here, to copy
    /// to the nodes (the named nodes, or every node of the definition).
    Issue {
        /// The nodes to issue for; every node of the definition when none.
        nodes: Vec<String>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Renew agents' certificates over mutual TLS: each agent makes a new key and a CSR,
    /// the CA signs it, the agent switches without a restart (the named nodes, or all).
    Rotate {
        /// The nodes to rotate; every node of the definition when none.
        nodes: Vec<String>,
    },
    /// A certificate for a person or a program calling agents, written as a PKI directory
    /// of its own (use it with `lvsctl --pki DIR`); viewers may only read.
    #[command(
        after_help = "Examples:\n  lvsctl pki issue-admin alice --role admin --out ./alice-pki\n  lvsctl pki issue-admin grafana --role viewer --out /etc/lvsctl/viewer"
    )]
    IssueAdmin {
        /// Their name (recorded in the agents' events as role:name).
        name: String,
        /// admin: every command; viewer: status, ipvs, events, facts only.
        #[arg(long, value_parser = ["admin", "viewer"])]
        role: String,
        /// Directory to write ca.pem, controller.pem and controller.key to (default: PKI/callers/NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
        /// Write the key inside a git work tree anyway.
        #[arg(long)]
        allow_git_tree: bool,
    },
    /// Revoke every certificate issued to NAME (or the one with SERIAL) and push the
    /// list to every agent, which refuses it from then on.
    Revoke {
        /// A name (`alice`, `admin:alice`, a node) or a serial from `pki list`.
        what: String,
    },
    /// Every certificate issued from this PKI directory: serial, subject, expiry, revoked.
    List,
}

/// The PKI directory of a command line for `cluster`: `--pki`/`LVSCTL_PKI`, else the user's
/// (`~/.config/lvsctl/CLUSTER/pki`).
pub fn pki_dir(cli: &Cli, cluster: &str) -> PathBuf {
    cli.pki.clone().unwrap_or_else(|| lvs_controller::paths::default_pki(cluster))
}

/// `lvsctl import ...`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A definition skeleton from keepalived.conf (one per director, in --director order):
    /// services, real servers, checkers, sorry servers, quorum and VRRP are carried over;
    /// every option that is not is written as a comment with the reason. The result is
    /// validated; the exit status says whether it is valid as it stands.
    #[command(
        after_help = "Examples:\n  lvsctl import keepalived /etc/keepalived/keepalived.conf --director lvs1=198.18.0.2/24 --router 198.18.0.1 --out cluster.toml\n  lvsctl import keepalived keepalived.conf --firewall <(iptables-save) --director lvs1=198.18.0.2/24 --router 198.18.0.1\n  lvsctl import keepalived master.conf backup.conf --director lvs1=198.18.0.2/24 --director lvs2=198.18.0.3/24 --router 198.18.0.1\n  lvsctl import keepalived dual.conf --director lvs1=198.18.0.2/24 --director lvs1=2001:db8:18::2/64 --router 198.18.0.1 --router 2001:db8:18::1"
    )]
    Keepalived(ImportKeepalivedArgs),
}

/// `lvsctl import keepalived`.
#[derive(Debug, Args)]
pub struct ImportKeepalivedArgs {
    /// keepalived.conf files, one per director (the first one's virtual_servers are used).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The director whose file this is, NAME=ADDRESS/PREFIX (its address on the real
    /// servers' LAN; repeat, in file order). On a dual-stack LAN, give a director's
    /// address of the other family as a second --director with the same name.
    #[arg(long = "director", value_name = "NAME=ADDRESS/PREFIX", required = true)]
    pub directors: Vec<String>,
    /// The router: the real servers' gateway and the cluster's NTP server (the first
    /// given). On a dual-stack LAN, repeat it with its address of the other family.
    #[arg(long, value_name = "ADDRESS", required = true)]
    pub router: Vec<std::net::IpAddr>,
    /// The directors' interface on the LAN (default: the VRRP instance's, else eth0).
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// The real servers' interface on the LAN.
    #[arg(long, value_name = "NAME", default_value = "eth0")]
    pub rs_interface: String,
    /// Cluster name (default: global_defs' router_id).
    #[arg(long)]
    pub name: Option<String>,
    /// The director's `iptables-save` output: its mangle PREROUTING `-j MARK` rules become
    /// the fwmark services' `marks` (and VIPs), so that the agents own them.
    #[arg(long, value_name = "FILE")]
    pub firewall: Option<PathBuf>,
    /// Write the definition here instead of to standard output (refused if it exists).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}
