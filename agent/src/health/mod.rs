//! Health: the director's checks of every destination (`destinations`: HTTP, HTTPS, TCP
//! or a script, on a thread of their own, `runner`), the quorum each service keeps, the
//! notify hooks run on transitions, the node's own observations of its spec (`node_checks`:
//! modules, routes, the local httpd, the clock by SNTP) and the script policy that decides
//! what a spec may run and as whom.
pub(crate) mod clock;
pub(crate) mod destinations;
pub(crate) mod firewall_check;
pub(crate) mod http;
pub(crate) mod http_body;
pub(crate) mod lean_http;
pub(crate) mod node_checks;
pub(crate) mod notify;
pub(crate) mod outcomes;
pub(crate) mod probe;
pub(crate) mod probe_exec;
pub(crate) mod probe_loop;
pub(crate) mod probe_tls;
pub(crate) mod quorum;
pub(crate) mod runner;
pub(crate) mod scripts;

pub use destinations::probe;
pub use http::{MAX_BODY, get};
pub use node_checks::CheckResult;
pub use outcomes::DestHealth;
pub use scripts::{DEFAULT_DIR as SCRIPTS_DIR, Scripts};
