//! The `lvs.agent.v1.Agent` service: thin handlers that decode, hand the work to
//! [`Agent`], and encode. The interceptor [`controller_only`] runs before every handler.
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lvs_proto::pb;
use lvs_proto::spec::NodeSpec;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::node::{Agent, AgentError, IpvsView, ProbeRequest, StatusView};
use crate::system::System;

/// The gRPC face of an [`Agent`].
pub struct Service<S: System + 'static>(pub Arc<Agent<S>>);

/// Refuse every call whose client certificate is not the controller's.
pub fn controller_only(req: Request<()>) -> Result<Request<()>, Status> {
    let certs = req.peer_certs();
    let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
    crate::tls::authorize(leaf).map_err(Status::permission_denied)?;
    Ok(req)
}

fn status(e: AgentError) -> Status {
    match e {
        AgentError::Invalid(m) => Status::invalid_argument(m),
        AgentError::Refused(m) => Status::failed_precondition(m),
        AgentError::NotFound(m) => Status::not_found(m),
        AgentError::Failed(m) => Status::internal(m),
    }
}

fn spec_of(r: &pb::SpecRequest) -> Result<NodeSpec, Status> {
    let s = r.spec.as_ref().ok_or_else(|| Status::invalid_argument("spec: missing"))?;
    NodeSpec::try_from(s).map_err(|e| Status::invalid_argument(format!("spec.{e}")))
}

fn socket(field: &str, s: &str) -> Result<SocketAddr, Status> {
    s.parse().map_err(|e| Status::invalid_argument(format!("{field}: `{s}`: {e}")))
}

#[tonic::async_trait]
impl<S: System + 'static> pb::agent_server::Agent for Service<S> {
    async fn facts(&self, _: Request<pb::FactsRequest>) -> Result<Response<pb::Facts>, Status> {
        Ok(Response::new(facts(self.0.node(), &self.0.facts().await)))
    }

    async fn plan(&self, req: Request<pb::SpecRequest>) -> Result<Response<pb::Report>, Status> {
        let r = req.into_inner();
        let spec = spec_of(&r)?;
        // TTL 0 releases the caller's reservation (an apply it gave up on).
        let ttl = if r.lease_ttl_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(r.lease_ttl_ms.clamp(1_000, 600_000))
        };
        let rep = self.0.plan(&spec, &r.lease, ttl).await.map_err(status)?;
        Ok(Response::new(report(&rep)))
    }

    async fn apply(&self, req: Request<pb::SpecRequest>) -> Result<Response<pb::Report>, Status> {
        let r = req.into_inner();
        let spec = spec_of(&r)?;
        let rep = self.0.apply(&spec, &r.lease).await.map_err(status)?;
        Ok(Response::new(report(&rep)))
    }

    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::Status>, Status> {
        let ntp = &req.get_ref().ntp_server;
        let ntp = if ntp.is_empty() {
            None
        } else {
            Some(ntp.parse().map_err(|e| Status::invalid_argument(format!("ntp_server: `{ntp}`: {e}")))?)
        };
        let v = self.0.status(ntp).await.map_err(status)?;
        Ok(Response::new(status_view(self.0.node(), &v)))
    }

    async fn ipvs_table(
        &self,
        req: Request<pb::IpvsTableRequest>,
    ) -> Result<Response<pb::IpvsTable>, Status> {
        let v = self.0.ipvs_table(req.get_ref().connections).await.map_err(status)?;
        Ok(Response::new(ipvs_view(&v)))
    }

    async fn live_connections(
        &self,
        req: Request<pb::LiveConnectionsRequest>,
    ) -> Result<Response<pb::LiveConnectionsReply>, Status> {
        let r = req.into_inner();
        let dests: Vec<SocketAddr> = r
            .destinations
            .iter()
            .enumerate()
            .map(|(i, d)| socket(&format!("destinations[{i}]"), d))
            .collect::<Result<_, _>>()?;
        let counts = self.0.live_connections(&dests, r.live_within_s).await.map_err(status)?;
        Ok(Response::new(pb::LiveConnectionsReply {
            counts: dests
                .iter()
                .zip(counts)
                .map(|(d, c)| pb::DestinationConnections {
                    destination: d.to_string(),
                    live: c.live,
                    total: c.total,
                })
                .collect(),
        }))
    }

    async fn clear_ipvs(&self, _: Request<pb::ClearIpvsRequest>) -> Result<Response<pb::Report>, Status> {
        let rep = self.0.clear_ipvs().await.map_err(status)?;
        Ok(Response::new(report(&rep)))
    }

    async fn set_weight(
        &self,
        req: Request<pb::SetWeightRequest>,
    ) -> Result<Response<pb::SetWeightReply>, Status> {
        let r = req.into_inner();
        let key = r.service.as_ref().ok_or_else(|| Status::invalid_argument("service: missing"))?;
        let key = lvs_proto::wire::service_key("service", key)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let dest = socket("destination", &r.destination)?;
        let v = self.0.set_weight(key, dest, r.weight).await.map_err(status)?;
        Ok(Response::new(pb::SetWeightReply {
            weight: v.weight,
            active_conns: v.active,
            inactive_conns: v.inactive,
        }))
    }

    async fn probe(&self, req: Request<pb::ProbeRequest>) -> Result<Response<pb::ProbeReply>, Status> {
        let r = req.into_inner();
        if r.count == 0 || r.count > 100_000 {
            return Err(Status::invalid_argument("count: must be 1..=100000"));
        }
        let path = if r.path.is_empty() { "/".to_string() } else { r.path };
        let v = self
            .0
            .probe(ProbeRequest {
                target: socket("target", &r.target)?,
                path,
                host: r.host,
                count: r.count,
                concurrency: r.concurrency,
                timeout: Duration::from_millis(r.timeout_ms.clamp(10, 60_000)),
            })
            .await;
        Ok(Response::new(pb::ProbeReply {
            sent: v.sent,
            answered: v.answered,
            failed: v.failed,
            bodies: v.bodies.into_iter().collect(),
            errors: v.errors,
            elapsed_ms: v.elapsed.as_millis() as u64,
            sequence: v.sequence,
        }))
    }

    type EventsStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

    async fn events(&self, _: Request<pb::EventsRequest>) -> Result<Response<Self::EventsStream>, Status> {
        let node = self.0.node().to_string();
        let rx = tokio_stream::wrappers::BroadcastStream::new(self.0.events().subscribe());
        let s = rx.filter_map(move |e| {
            e.ok().map(|e| {
                Ok(pb::Event {
                    unix_ms: e.unix_ms,
                    node: node.clone(),
                    kind: e.kind.into(),
                    message: e.message,
                })
            })
        });
        Ok(Response::new(Box::pin(s)))
    }
}

// ------------------------------------------------------------------ domain → wire views

fn facts(node: &str, f: &crate::facts::Facts) -> pb::Facts {
    pb::Facts {
        node: node.to_string(),
        hostname: f.hostname.clone(),
        kernel: f.kernel.clone(),
        ipvs: f.ipvs,
        ipvs_version: f.ipvs_version.clone(),
        schedulers: f.schedulers.clone(),
        cpus: f.cpus,
        memory_total_bytes: f.memory_total_bytes,
        memory_used_bytes: f.memory_used_bytes,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        agent_rss_bytes: f.agent_rss_bytes,
        uptime_s: f.uptime_s,
    }
}

fn report(r: &crate::reconcile::Report) -> pb::Report {
    use crate::apply::Outcome;
    pb::Report {
        node: r.node.clone(),
        generation: r.generation,
        actions: r
            .actions
            .iter()
            .map(|a| {
                let (outcome, error) = match &a.outcome {
                    Outcome::Applied => (pb::Outcome::Applied, String::new()),
                    Outcome::Failed(e) => (pb::Outcome::Failed, e.clone()),
                    Outcome::NotAttempted => (pb::Outcome::NotAttempted, String::new()),
                };
                pb::ActionResult { action: a.action.clone(), outcome: outcome as i32, error }
            })
            .collect(),
        foreign: r.foreign.clone(),
        drift_after: r.drift_after.clone(),
        converged: r.converged(),
    }
}

fn stats(s: &lvs_ipvs::Stats) -> pb::Stats {
    pb::Stats {
        conns: s.conns,
        inpkts: s.inpkts,
        outpkts: s.outpkts,
        inbytes: s.inbytes,
        outbytes: s.outbytes,
        cps: s.cps,
        inpps: s.inpps,
        outpps: s.outpps,
        inbps: s.inbps,
        outbps: s.outbps,
    }
}

fn ipvs_view(v: &IpvsView) -> pb::IpvsTable {
    pb::IpvsTable {
        version: v.info.version_string(),
        conn_tab_size: v.info.conn_tab_size,
        services: v
            .services
            .iter()
            .map(|(s, managed)| pb::IpvsService {
                key: Some((&crate::convert::spec_service_key(&s.service.key)).into()),
                scheduler: s.service.scheduler.clone(),
                flags: s.service.flags.0,
                timeout_s: s.service.timeout,
                netmask: s.service.netmask,
                stats: Some(stats(&s.stats)),
                destinations: s
                    .destinations
                    .iter()
                    .map(|d| pb::IpvsDestination {
                        address: d.dest.addr.to_string(),
                        forwarding: d.dest.forward.name().into(),
                        weight: d.dest.weight,
                        upper_threshold: d.dest.upper_threshold,
                        lower_threshold: d.dest.lower_threshold,
                        active_conns: d.active_conns,
                        inactive_conns: d.inactive_conns,
                        persist_conns: d.persist_conns,
                        stats: Some(stats(&d.stats)),
                    })
                    .collect(),
                managed: *managed,
            })
            .collect(),
        timeouts: Some(pb::Timeouts {
            tcp: v.timeouts.tcp,
            tcp_fin: v.timeouts.tcp_fin,
            udp: v.timeouts.udp,
        }),
        connections: v.connections.iter().map(connection).collect(),
    }
}

/// One IPVS connection entry on the wire.
pub fn connection(c: &lvs_ipvs::conn::Connection) -> pb::Connection {
    pb::Connection {
        protocol: c.protocol.clone(),
        client: c.client.to_string(),
        virtual_address: c.virtual_addr.to_string(),
        destination: c.destination.to_string(),
        state: c.state.clone(),
        expires_s: c.expires_s,
    }
}

fn status_view(node: &str, v: &StatusView) -> pb::Status {
    pb::Status {
        facts: Some(facts(node, &v.facts)),
        generation: v.state.generation,
        has_spec: v.state.spec.is_some(),
        drift: v.drift.clone(),
        foreign: v.foreign.clone(),
        checks: v
            .checks
            .iter()
            .map(|c| pb::CheckResult { check: c.check.clone(), ok: c.ok, detail: c.detail.clone() })
            .collect(),
        ipvs: v.ipvs.as_ref().map(ipvs_view),
        clock_offset_ms: v.clock.as_ref().and_then(|c| c.offset_ms),
        clock_rtt_ms: v.clock.as_ref().and_then(|c| c.rtt_ms),
        clock_error: v.clock.as_ref().and_then(|c| c.error.clone()).unwrap_or_default(),
        health: v
            .health
            .iter()
            .map(|h| pb::DestinationHealth {
                service: Some((&h.service).into()),
                destination: h.dest.to_string(),
                up: h.up,
                quarantined: h.quarantined,
                successes: h.successes,
                failures: h.failures,
                transitions: h.transitions,
                probes: h.probes,
                last_error: h.last_error.clone(),
                checked: h.probes > 0,
            })
            .collect(),
        overrides: v
            .state
            .spec
            .iter()
            .flat_map(|s| &s.virtual_services)
            .flat_map(|vs| vs.destinations.iter().map(move |d| (vs, d)))
            .filter_map(|(vs, d)| {
                let w = v.state.runtime.weights.get(&crate::state::override_key(&vs.key, d.address))?;
                Some(pb::WeightOverride {
                    service: Some((&vs.key).into()),
                    destination: d.address.to_string(),
                    weight: *w,
                })
            })
            .collect(),
    }
}
