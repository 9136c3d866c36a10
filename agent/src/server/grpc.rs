//! The `lvs.agent.v1.Agent` service: thin handlers that decode, hand the work to
//! [`Agent`] (or, for rotation, to [`Credentials`]), and encode. [`crate::server::authz`] runs
//! before every handler.
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lvs_proto::pb;
use lvs_proto::spec::NodeSpec;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status};

use crate::kernel::system::System;
use crate::node::{Agent, AgentError, ProbeRequest};
use crate::server::credentials::{CredentialError, Credentials};

/// The gRPC face of an [`Agent`] and of the certificate it presents.
pub struct Service<S: System + 'static> {
    /// The node's agent.
    pub agent: Arc<Agent<S>>,
    /// Its certificate, for rotation and `status`.
    pub credentials: Arc<Credentials>,
}

fn credential_status(e: CredentialError) -> Status {
    match e {
        CredentialError::Refused(_) => Status::invalid_argument(e.to_string()),
        CredentialError::NoRenewal => Status::failed_precondition(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

/// The one place an agent error becomes a gRPC status: its kind decides the code.
fn status(e: AgentError) -> Status {
    use crate::reconcile::error::ReconcileError as R;
    let code = match &e {
        AgentError::Invalid(_) => Code::InvalidArgument,
        AgentError::Busy(_) => Code::ResourceExhausted,
        AgentError::Leased(_) => Code::FailedPrecondition,
        AgentError::Reconcile(r) => match r {
            R::WrongNode { .. } | R::Stale { .. } | R::Conflict { .. } | R::Preflight(_) | R::NoSpec => {
                Code::FailedPrecondition
            }
            R::NotInSpec(_) => Code::NotFound,
            R::Observe(_) | R::Store(_) | R::NotInForce(_) => Code::Internal,
        },
        AgentError::NoIpvs => Code::NotFound,
        AgentError::Vrrp(
            crate::ha::vrrp::VrrpError::NotMaster(_) | crate::ha::vrrp::VrrpError::NotTaken(_),
        ) => Code::FailedPrecondition,
        AgentError::Store(_)
        | AgentError::System(_)
        | AgentError::NotApplied(_)
        | AgentError::Task(_)
        | AgentError::Vrrp(_) => Code::Internal,
    };
    Status::new(code, e.to_string())
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
    async fn facts(&self, _: Request<pb::FactsRequest>) -> Result<Response<pb::FactsResponse>, Status> {
        Ok(Response::new((&self.agent.facts().await).into()))
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
        let rep = self.agent.plan(&spec, &r.lease, ttl, r.adopt).await.map_err(status)?;
        let mut reply = rep;
        // The controller sends SetRevoked only where this is below its own list's number.
        reply.revocation_number = self.agent.revoked().number();
        Ok(Response::new((&reply).into()))
    }

    async fn release(
        &self,
        req: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let released = self.agent.release(&req.get_ref().lease).map_err(status)?;
        Ok(Response::new(pb::ReleaseResponse { released }))
    }

    async fn clock(&self, req: Request<pb::ClockRequest>) -> Result<Response<pb::ClockResponse>, Status> {
        let ntp = &req.get_ref().ntp_server;
        let server =
            ntp.parse().map_err(|e| Status::invalid_argument(format!("ntp_server: `{ntp}`: {e}")))?;
        let r = self.agent.clock(server).await;
        let reply = lvs_proto::reply::Clock { offset_ms: r.offset_ms, rtt_ms: r.rtt_ms, error: r.error };
        Ok(Response::new((&reply).into()))
    }

    async fn apply(&self, req: Request<pb::SpecRequest>) -> Result<Response<pb::Report>, Status> {
        let r = req.into_inner();
        let spec = spec_of(&r)?;
        let rep = self.agent.apply(&spec, &r.lease, r.adopt).await.map_err(status)?;
        Ok(Response::new((&rep).into()))
    }

    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let ntp = &req.get_ref().ntp_server;
        // Measuring the clock against a server sends it SNTP: an admin's choice, not a
        // viewer's (who could make every node send packets to any address).
        if !ntp.is_empty()
            && crate::server::caller::current().is_some_and(|c| c.role < lvs_proto::identity::Role::Admin)
        {
            return Err(Status::permission_denied(
                "ntp_server: only an admin may have the agent query a time server",
            ));
        }
        let ntp = if ntp.is_empty() {
            None
        } else {
            Some(ntp.parse().map_err(|e| Status::invalid_argument(format!("ntp_server: `{ntp}`: {e}")))?)
        };
        let mut reply = self.agent.status(ntp).await.map_err(status)?;
        reply.certificate = Some(self.credentials.info());
        Ok(Response::new((&reply).into()))
    }

    async fn ipvs_table(
        &self,
        req: Request<pb::IpvsTableRequest>,
    ) -> Result<Response<pb::IpvsTableResponse>, Status> {
        let r = req.get_ref();
        let v = self.agent.ipvs_table(r.connections, r.max_connections).await.map_err(status)?;
        Ok(Response::new((&v).into()))
    }

    async fn live_connections(
        &self,
        req: Request<pb::LiveConnectionsRequest>,
    ) -> Result<Response<pb::LiveConnectionsResponse>, Status> {
        let r = req.into_inner();
        let dests: Vec<SocketAddr> = r
            .destinations
            .iter()
            .enumerate()
            .map(|(i, d)| socket(&format!("destinations[{i}]"), d))
            .collect::<Result<_, _>>()?;
        let counts = self.agent.live_connections(&dests, r.live_within_s).await.map_err(status)?;
        Ok(Response::new(pb::LiveConnectionsResponse {
            counts: dests
                .iter()
                .zip(counts)
                .map(|(d, c)| {
                    (&lvs_proto::reply::DestinationConnections {
                        destination: *d,
                        live: c.live,
                        total: c.total,
                    })
                        .into()
                })
                .collect(),
        }))
    }

    async fn clear_ipvs(&self, _: Request<pb::ClearIpvsRequest>) -> Result<Response<pb::Report>, Status> {
        let rep = self.agent.clear_ipvs().await.map_err(status)?;
        Ok(Response::new((&rep).into()))
    }

    async fn set_weight(
        &self,
        req: Request<pb::SetWeightRequest>,
    ) -> Result<Response<pb::SetWeightResponse>, Status> {
        let r = req.into_inner();
        let key = r.service.as_ref().ok_or_else(|| Status::invalid_argument("service: missing"))?;
        let key = lvs_proto::wire::service_key("service", key)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let dest = socket("destination", &r.destination)?;
        let v = self.agent.set_weight(key, dest, r.weight).await.map_err(status)?;
        Ok(Response::new((&v).into()))
    }

    async fn probe(&self, req: Request<pb::ProbeRequest>) -> Result<Response<pb::ProbeResponse>, Status> {
        let r = ProbeRequest::from_wire(&req.into_inner()).map_err(Status::invalid_argument)?;
        let v = self.agent.probe(r).await;
        Ok(Response::new((&v).into()))
    }

    async fn decommission(
        &self,
        req: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let rep = self.agent.decommission(&req.get_ref().node).await.map_err(status)?;
        Ok(Response::new((&rep).into()))
    }

    type EventsStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

    async fn events(&self, _: Request<pb::EventsRequest>) -> Result<Response<Self::EventsStream>, Status> {
        let node = self.agent.node().to_string();
        let rx = tokio_stream::wrappers::BroadcastStream::new(self.agent.events().subscribe());
        // A subscriber that lagged behind loses the events it missed, never the stream.
        let s = rx.filter_map(move |e| {
            e.ok().map(|mut e| {
                e.node.clone_from(&node);
                Ok(pb::Event::from(&e))
            })
        });
        Ok(Response::new(Box::pin(s)))
    }

    async fn renew(&self, _: Request<pb::RenewRequest>) -> Result<Response<pb::RenewResponse>, Status> {
        let csr_pem = self.credentials.renew().map_err(credential_status)?;
        Ok(Response::new(pb::RenewResponse { node: self.agent.node().to_string(), csr_pem }))
    }

    async fn install_certificate(
        &self,
        req: Request<pb::InstallCertificateRequest>,
    ) -> Result<Response<pb::InstallCertificateResponse>, Status> {
        let pem = req.get_ref().certificate_pem.as_bytes();
        let info = self.credentials.install(pem).map_err(credential_status)?;
        self.agent.events().emit(
            lvs_proto::reply::EventKind::Certificate,
            format!("certificate rotated: serial {}, valid until {}", info.serial, info.not_after_unix),
        );
        Ok(Response::new(pb::InstallCertificateResponse {
            serial: info.serial,
            not_after_unix: info.not_after_unix,
        }))
    }

    async fn set_drained(
        &self,
        req: Request<pb::SetDrainedRequest>,
    ) -> Result<Response<pb::SetDrainedResponse>, Status> {
        let b = self.agent.set_drained(req.get_ref().drained).await.map_err(status)?;
        Ok(Response::new(pb::SetDrainedResponse { bgp: Some((&b).into()) }))
    }

    async fn hand_over(&self, _: Request<pb::HandOverRequest>) -> Result<Response<pb::VrrpStatus>, Status> {
        let s = self.agent.hand_over().await.map_err(status)?;
        let s = s.ok_or_else(|| Status::failed_precondition("this node is in no VRRP instance"))?;
        Ok(Response::new((&s).into()))
    }

    async fn set_revoked(
        &self,
        req: Request<pb::SetRevokedRequest>,
    ) -> Result<Response<pb::SetRevokedResponse>, Status> {
        let r = req.get_ref();
        if r.revocation_list.is_empty() {
            return Err(Status::invalid_argument(
                "revocation_list: missing; agents take only a list signed by the cluster CA (serials alone are refused: upgrade lvsctl)",
            ));
        }
        let ca = self.credentials.ca_pem().map_err(|e| Status::internal(e.to_string()))?;
        let n = self.agent.revoked().replace(&r.revocation_list, &ca).map_err(|e| match e {
            crate::server::revoked::RevokedError::File { .. } => Status::internal(e.to_string()),
            crate::server::revoked::RevokedError::Older { .. }
            | crate::server::revoked::RevokedError::Forked(_) => Status::failed_precondition(e.to_string()),
            _ => Status::invalid_argument(e.to_string()),
        })?;
        self.agent.events().emit(
            lvs_proto::reply::EventKind::Certificate,
            format!("revocation list number {} in force: {n} serial(s)", self.agent.revoked().number()),
        );
        Ok(Response::new(pb::SetRevokedResponse { count: n as u32 }))
    }
}
