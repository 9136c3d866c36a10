//! Talking to the agents: one mutual-TLS channel per node (the node name is the TLS server
//! name, so a certificate of another node is refused), and fan-out to many nodes at once
//! with a deadline per node. A node that fails or does not answer is reported by name,
//! never hidden behind the others.
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use std::net::{IpAddr, SocketAddr};

use futures::future::join_all;
use futures::{Stream, StreamExt};
use lvs_proto::pb::agent_client::AgentClient;
use lvs_proto::reply::{
    CertificateInfo, DestinationConnections, Event, Facts, IpvsTable, NodeStatus, ProbeTally, Report,
    VrrpStatus, WeightReply,
};
use lvs_proto::spec::ServiceKey;
use lvs_proto::wire::WireError;
use lvs_proto::{NodeSpec, pb};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::model::Cluster;
use crate::pki::Pki;

/// HTTP/2 ping interval and the time to wait for its answer.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// A gRPC client of one agent.
pub type Client = AgentClient<Channel>;

/// Failures before any request is sent.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Certificates missing or unreadable.
    #[error("{path}: {reason} (create the PKI with `lvsctl pki init` and `lvsctl pki issue`)")]
    Pki {
        /// The file.
        path: String,
        /// What could not be read or parsed in it.
        reason: String,
    },
    /// A node the definition does not have.
    #[error("no node `{0}` in the definition")]
    UnknownNode(String),
    /// A bad agent endpoint.
    #[error("node {node}: agent endpoint `{endpoint}`: {reason}")]
    Endpoint {
        /// The node.
        node: String,
        /// Its endpoint.
        endpoint: String,
        /// What rustls or the channel builder refused.
        reason: String,
    },
}

/// Why a call to one node did not succeed, by kind, so that a command can decide on it
/// (retry what timed out, stop at what was refused) and still print one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The node could not be reached (connection refused, TLS failed, name mismatch).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The agent refused the request as it stands (stale, conflict, preflight).
    #[error("refused: {0}")]
    Refused(String),
    /// The agent does not accept this caller.
    #[error("permission denied: {0}")]
    Denied(String),
    /// The request was malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// What the request names does not exist on the node.
    #[error("not found: {0}")]
    NotFound(String),
    /// No answer within the deadline.
    #[error("{0}")]
    TimedOut(String),
    /// The node tried and failed (or the client could not be set up).
    #[error("{0}")]
    Failed(String),
    /// The node answered with a reply this controller cannot read (another version?).
    #[error("unreadable reply: {0}")]
    BadReply(String),
}

// A command that only reports a failure keeps its sentence: `?` into `String`, and JSON
// output shows the same sentence as the table.
impl From<NodeError> for String {
    fn from(e: NodeError) -> Self {
        e.to_string()
    }
}

impl serde::Serialize for NodeError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl NodeError {
    /// The kind of a gRPC status, with the transport's reason when there is one.
    pub fn from_status(s: &tonic::Status) -> Self {
        use std::error::Error;
        let mut msg = s.message().to_string();
        let mut src = s.source();
        while let Some(e) = src {
            let t = e.to_string();
            if !msg.contains(&t) {
                msg = format!("{msg}: {t}");
            }
            src = e.source();
        }
        match s.code() {
            tonic::Code::Unavailable => NodeError::Unreachable(msg),
            // tonic reports a connection the peer closed or refused in TLS (a fatal
            // alert: unknown CA, expired certificate) as Unknown "transport error".
            tonic::Code::Unknown if s.message() == "transport error" => NodeError::Unreachable(msg),
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => NodeError::Denied(msg),
            tonic::Code::FailedPrecondition => NodeError::Refused(msg),
            tonic::Code::InvalidArgument => NodeError::Invalid(msg),
            tonic::Code::NotFound => NodeError::NotFound(msg),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                NodeError::TimedOut(format!("timed out: {msg}"))
            }
            _ => NodeError::Failed(msg),
        }
    }
}

/// The agents of a cluster.
#[derive(Debug)]
pub struct Fleet {
    nodes: Vec<(String, String)>,
    tls: ClientTlsConfig,
    /// One HTTP/2 channel per node, made on first use and shared by every later call, so
    /// a command that asks a node several times (plan, clock, apply) shakes hands once.
    channels: std::sync::Mutex<std::collections::HashMap<String, Channel>>,
    /// Deadline of one call to one node.
    pub deadline: Duration,
}

fn read(path: &Path) -> Result<Vec<u8>, FleetError> {
    std::fs::read(path)
        .map_err(|e| FleetError::Pki { path: path.display().to_string(), reason: e.to_string() })
}

impl Fleet {
    /// The fleet of `cluster`, authenticating with the controller certificate of `pki`.
    pub fn new(cluster: &Cluster, pki: &Pki, deadline: Duration) -> Result<Self, FleetError> {
        let ca = read(&pki.ca().cert)?;
        let me = pki.controller();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .identity(Identity::from_pem(read(&me.cert)?, read(&me.key)?));
        let nodes = cluster.nodes.iter().map(|n| (n.name.clone(), n.agent.clone())).collect();
        Ok(Self { nodes, tls, channels: Default::default(), deadline })
    }

    /// Names of all nodes, in definition order.
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|(n, _)| n.clone()).collect()
    }

    /// A client of `node` (the channel connects on first use and is kept).
    pub fn client(&self, node: &str) -> Result<Client, FleetError> {
        let mut channels = self.channels.lock().expect("channel cache");
        if let Some(ch) = channels.get(node) {
            return Ok(AgentClient::new(ch.clone()).max_decoding_message_size(64 << 20));
        }
        let (_, endpoint) =
            self.nodes.iter().find(|(n, _)| n == node).ok_or_else(|| FleetError::UnknownNode(node.into()))?;
        let bad =
            |reason: String| FleetError::Endpoint { node: node.into(), endpoint: endpoint.clone(), reason };
        let ep = Endpoint::from_shared(format!("https://{endpoint}"))
            .map_err(|e| bad(e.to_string()))?
            .tls_config(self.tls.clone().domain_name(node))
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(self.deadline.min(Duration::from_secs(5)))
            .tcp_nodelay(true)
            // An agent that vanished (host down, process stopped, cable pulled) is noticed
            // within ~10 s even on an idle channel, e.g. by `lvsctl events`.
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE)
            .keep_alive_while_idle(true);
        let ch = ep.connect_lazy();
        channels.insert(node.to_string(), ch.clone());
        Ok(AgentClient::new(ch).max_decoding_message_size(64 << 20))
    }

    /// Call `f` on `node` within the fleet's deadline; every failure (no such node,
    /// unreachable, refused, too slow) comes back as a [`NodeError`]. The reply is the raw
    /// wire message: commands use the typed methods below, which decode it; this is for
    /// code that measures the wire itself (the benchmarks and the e2e drain-wait test).
    pub async fn call<T, Fut>(&self, node: &str, f: impl FnOnce(Client) -> Fut) -> Result<T, NodeError>
    where
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_within(node, self.deadline, f).await
    }

    /// [`Fleet::call`] with a deadline of its own, for calls whose work is known to take
    /// longer than one request (a probe of N requests).
    pub async fn call_within<T, Fut>(
        &self,
        node: &str,
        deadline: Duration,
        f: impl FnOnce(Client) -> Fut,
    ) -> Result<T, NodeError>
    where
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.client(node).map_err(|e| NodeError::Failed(e.to_string()))?;
        match tokio::time::timeout(deadline, f(client)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(NodeError::from_status(&s)),
            Err(_) => Err(NodeError::TimedOut(format!("no answer within {} ms", deadline.as_millis()))),
        }
    }

    /// `f` on every node of `nodes` at once. Results keep the order of `nodes`.
    pub async fn each<T, F, Fut>(&self, nodes: &[String], f: F) -> Vec<(String, Result<T, NodeError>)>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, NodeError>>,
    {
        join_all(nodes.iter().map(|n| {
            let call = f(n.clone());
            async move { (n.clone(), call.await) }
        }))
        .await
    }

    // ---------------------------------------------------------------- the agent API, typed
    //
    // Every reply is decoded here, once, into `lvs_proto::reply` types; nothing above this
    // layer reads a `pb::*` reply.

    /// Diff `spec` on `node` (changes nothing); with a `lease`, reserve its generation for
    /// `ttl` (a zero `ttl` releases the lease). `adopt`: see [`Fleet::apply`].
    pub async fn plan(
        &self,
        node: &str,
        spec: &NodeSpec,
        lease: &str,
        ttl: Duration,
        adopt: bool,
    ) -> Result<Report, NodeError> {
        let req = pb::SpecRequest {
            spec: Some(spec.into()),
            lease: lease.to_string(),
            lease_ttl_ms: ttl.as_millis() as u64,
            adopt,
        };
        let r = self.call(node, |mut c| async move { c.plan(req).await }).await?;
        decoded(Report::try_from(&r))
    }

    /// Give up `lease`'s reservation on `node` (nothing is diffed); whether it held one.
    pub async fn release(&self, node: &str, lease: &str) -> Result<bool, NodeError> {
        let req = pb::ReleaseRequest { lease: lease.to_string() };
        let r = self.call(node, |mut c| async move { c.release(req).await }).await?;
        Ok(r.released)
    }

    /// `node`'s clock measured against `ntp` now (the time gate's one question).
    pub async fn clock(&self, node: &str, ntp: IpAddr) -> Result<lvs_proto::reply::Clock, NodeError> {
        let req = pb::ClockRequest { ntp_server: ntp.to_string() };
        let r = self.call(node, |mut c| async move { c.clock(req).await }).await?;
        Ok(lvs_proto::reply::Clock::from(&r))
    }

    /// Make `node` match `spec`, under `lease` (the one its plan reserved, or none). With
    /// `adopt`, IPVS services the spec names that another tool created become the agent's.
    pub async fn apply(
        &self,
        node: &str,
        spec: &NodeSpec,
        lease: &str,
        adopt: bool,
    ) -> Result<Report, NodeError> {
        let req =
            pb::SpecRequest { spec: Some(spec.into()), lease: lease.to_string(), lease_ttl_ms: 0, adopt };
        let r = self.call(node, |mut c| async move { c.apply(req).await }).await?;
        decoded(Report::try_from(&r))
    }

    /// Who and what `node` is.
    pub async fn facts(&self, node: &str) -> Result<Facts, NodeError> {
        let r = self.call(node, |mut c| async move { c.facts(pb::FactsRequest {}).await }).await?;
        Ok(Facts::from(&r))
    }

    /// `node`'s status; with `ntp`, its clock measured against that server now.
    pub async fn status(&self, node: &str, ntp: Option<IpAddr>) -> Result<NodeStatus, NodeError> {
        let req = pb::StatusRequest { ntp_server: ntp.map(|n| n.to_string()).unwrap_or_default() };
        let r = self.call(node, |mut c| async move { c.status(req).await }).await?;
        let mut s = decoded(NodeStatus::try_from(&r))?;
        s.ipvs = s.ipvs.map(IpvsTable::sorted);
        Ok(s)
    }

    /// A director's IPVS table (with its connections when asked), in ipvsadm's order.
    pub async fn ipvs_table(&self, node: &str, connections: bool) -> Result<IpvsTable, NodeError> {
        let req = pb::IpvsTableRequest { connections, max_connections: 0 };
        let r = self.call(node, |mut c| async move { c.ipvs_table(req).await }).await?;
        decoded(IpvsTable::try_from(&r)).map(IpvsTable::sorted)
    }

    /// Live connections to each of `destinations`, counted by the director's agent.
    pub async fn live_connections(
        &self,
        node: &str,
        destinations: &[SocketAddr],
        live_within_s: u32,
    ) -> Result<Vec<DestinationConnections>, NodeError> {
        let req = pb::LiveConnectionsRequest {
            destinations: destinations.iter().map(ToString::to_string).collect(),
            live_within_s,
        };
        let r = self.call(node, |mut c| async move { c.live_connections(req).await }).await?;
        decoded(Vec::<DestinationConnections>::try_from(&r))
    }

    /// Take `node` out of the cluster: its agent undoes what it owns and forgets its spec.
    pub async fn decommission(&self, node: &str) -> Result<Report, NodeError> {
        let req = pb::DecommissionRequest { node: node.to_string() };
        let r = self.call(node, |mut c| async move { c.decommission(req).await }).await?;
        decoded(Report::try_from(&r))
    }

    /// Rotation, step 1: `node`'s agent makes a fresh key and returns its CSR (PEM) and
    /// the node name it believes it is.
    pub async fn renew(&self, node: &str) -> Result<(String, String), NodeError> {
        let r = self.call(node, |mut c| async move { c.renew(pb::RenewRequest {}).await }).await?;
        Ok((r.node, r.csr_pem))
    }

    /// Rotation, step 2: install the certificate signed for that key.
    pub async fn install_certificate(&self, node: &str, pem: &str) -> Result<CertificateInfo, NodeError> {
        let req = pb::InstallCertificateRequest { certificate_pem: pem.to_string() };
        let r = self.call(node, |mut c| async move { c.install_certificate(req).await }).await?;
        Ok(CertificateInfo { serial: r.serial, not_after_unix: r.not_after_unix })
    }

    /// Planned failover: `node` (a VRRP master) hands its VIPs over and rejoins as backup.
    pub async fn hand_over(&self, node: &str) -> Result<VrrpStatus, NodeError> {
        // Stopping and restarting the engine takes a few seconds on its own.
        let r = self
            .call_within(node, self.deadline.max(Duration::from_secs(20)), |mut c| async move {
                c.hand_over(pb::HandOverRequest {}).await
            })
            .await?;
        decoded(VrrpStatus::try_from(&r))
    }

    /// Drain an ECMP director (`true`: withdraw its VIPs) or enable it again.
    pub async fn set_drained(
        &self,
        node: &str,
        drained: bool,
    ) -> Result<lvs_proto::reply::BgpStatus, NodeError> {
        let req = pb::SetDrainedRequest { drained };
        let r = self.call(node, |mut c| async move { c.set_drained(req).await }).await?;
        let b = r.bgp.as_ref().ok_or_else(|| NodeError::BadReply("bgp: missing".into()))?;
        decoded(lvs_proto::reply::BgpStatus::try_from(b))
    }

    /// Give `node` the cluster's revocation list (a CRL the CA signed, [`crate::pki::Pki::revocation_list`]);
    /// returns how many serials it refuses. An older list is refused (FAILED_PRECONDITION).
    pub async fn set_revoked(&self, node: &str, list: &[u8]) -> Result<u32, NodeError> {
        let req = pb::SetRevokedRequest { revocation_list: list.to_vec() };
        let r = self.call(node, |mut c| async move { c.set_revoked(req).await }).await?;
        Ok(r.count)
    }

    /// Withdraw the IPVS services `node` manages until the next apply.
    pub async fn clear_ipvs(&self, node: &str) -> Result<Report, NodeError> {
        let r = self.call(node, |mut c| async move { c.clear_ipvs(pb::ClearIpvsRequest {}).await }).await?;
        decoded(Report::try_from(&r))
    }

    /// Set (or with `None` clear) the live weight of one destination on a director.
    pub async fn set_weight(
        &self,
        node: &str,
        service: &ServiceKey,
        destination: SocketAddr,
        weight: Option<u32>,
    ) -> Result<WeightReply, NodeError> {
        let req = pb::SetWeightRequest {
            service: Some(service.into()),
            destination: destination.to_string(),
            weight,
        };
        let r = self.call(node, |mut c| async move { c.set_weight(req).await }).await?;
        Ok(WeightReply::from(&r))
    }

    /// `count` HTTP requests from `node` to `target`, tallied; the deadline allows for them.
    pub async fn probe(
        &self,
        node: &str,
        probe: &Probe,
        deadline: Duration,
    ) -> Result<ProbeTally, NodeError> {
        let req = pb::ProbeRequest {
            target: probe.target.to_string(),
            path: probe.path.clone(),
            host: probe.host.clone(),
            count: probe.count,
            concurrency: probe.concurrency,
            timeout_ms: probe.timeout.as_millis() as u64,
            interval_ms: probe.interval.map_or(0, |i| i.as_millis() as u32),
            duration_ms: probe.duration.map_or(0, |d| d.as_millis() as u64),
            drill: probe.drill.clone().unwrap_or_default(),
        };
        let r = self.call_within(node, deadline, |mut c| async move { c.probe(req).await }).await?;
        Ok(ProbeTally::from(&r))
    }

    /// `node`'s event feed from now on; it ends when the agent goes away.
    pub async fn events(
        &self,
        node: &str,
    ) -> Result<impl Stream<Item = Result<Event, NodeError>> + use<>, NodeError> {
        let mut client = self.client(node).map_err(|e| NodeError::Failed(e.to_string()))?;
        let stream =
            client.events(pb::EventsRequest {}).await.map_err(|s| NodeError::from_status(&s))?.into_inner();
        Ok(stream.map(|r| match r {
            Ok(e) => decoded(Event::try_from(&e)),
            Err(s) => Err(NodeError::from_status(&s)),
        }))
    }
}

/// One probe: `count` requests to `target`, `concurrency` at a time.
#[derive(Debug, Clone)]
pub struct Probe {
    /// VIP:port.
    pub target: SocketAddr,
    /// The HTTP path requested.
    pub path: String,
    /// Host header.
    pub host: Option<String>,
    /// How many requests each prober sends.
    pub count: u32,
    /// At once.
    pub concurrency: u32,
    /// Per request.
    pub timeout: Duration,
    /// Open loop: one request every this long (`None`: the next when one ends).
    pub interval: Option<Duration>,
    /// Keep sending this long (`None`: `count` requests).
    pub duration: Option<Duration>,
    /// A failover drill's name: the agent keeps the result and reports it.
    pub drill: Option<String>,
}

fn decoded<T>(r: Result<T, WireError>) -> Result<T, NodeError> {
    r.map_err(|e| NodeError::BadReply(e.to_string()))
}

/// A gRPC status in words, with the transport's reason when there is one.
pub fn describe(s: &tonic::Status) -> String {
    NodeError::from_status(s).to_string()
}
