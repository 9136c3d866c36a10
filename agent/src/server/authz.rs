//! Who may call what. Every request passes [`Authorize`] before its handler: the client
//! certificate (already verified against the cluster CA by rustls during the handshake)
//! must name a caller ([`lvs_proto::identity`]), its serial must not be revoked, and the
//! caller's role must cover the method — viewers get the read-only calls of
//! [`READ_ONLY`], admins every call. The handler then runs as that caller
//! ([`crate::server::caller`]), so the events it causes say who asked.
use std::sync::Arc;
use std::task::{Context, Poll};

use lvs_proto::identity::{Caller, Role, serial_hex};
use tonic::Status;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::server::revoked::Revoked;

/// Methods of `lvs.agent.v1.Agent` a viewer may call: they read, and change nothing.
/// (`Plan` reserves a generation and `Probe` sends traffic, so neither is here.)
pub const READ_ONLY: &[&str] = &["Facts", "Status", "IpvsTable", "LiveConnections", "Events", "Metrics"];

/// The path [`check`] is asked about for a `/metrics` scrape (not a gRPC method, but the
/// same rule: a viewer may read it).
pub const METRICS_PATH: &str = "/lvs.agent.v1.Agent/Metrics";

/// The role a method needs (unknown methods need the highest).
pub fn required_role(path: &str) -> Role {
    let method = path.rsplit('/').next().unwrap_or_default();
    if READ_ONLY.contains(&method) { Role::Viewer } else { Role::Admin }
}

/// The caller a verified leaf certificate names, refused when revoked or when its role
/// does not cover `path`. The error is the `PERMISSION_DENIED` reason.
pub fn check(path: &str, leaf: Option<&[u8]>, revoked: &Revoked) -> Result<Caller, String> {
    let (caller, _) = identify(leaf, revoked)?;
    let needed = required_role(path);
    if caller.role < needed {
        let method = path.rsplit('/').next().unwrap_or(path);
        return Err(format!(
            "{caller} may not call {method}: a viewer may only read (status, ipvs, events, facts)"
        ));
    }
    Ok(caller)
}

/// The caller a verified leaf certificate names and its serial, refused when revoked: what
/// the door asks of every connection right after its handshake, before it takes a slot.
pub fn identify(leaf: Option<&[u8]>, revoked: &Revoked) -> Result<(Caller, String), String> {
    let (caller, serial) = caller_of(leaf)?;
    if revoked.contains(&serial) {
        return Err(format!("the certificate of {caller} (serial {serial}) is revoked"));
    }
    Ok((caller, serial))
}

/// The caller a verified leaf certificate names and its serial, revoked or not.
pub fn caller_of(leaf: Option<&[u8]>) -> Result<(Caller, String), String> {
    let der = leaf.ok_or("no client certificate: this agent accepts only lvsctl over mutual TLS")?;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("unparsable certificate: {e}"))?;
    let serial = serial_hex(cert.raw_serial());
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::URI(u) = n {
                uris.push((*u).to_string());
            }
        }
    }
    let Some(caller) = uris.iter().find_map(|u| Caller::from_uri(u)) else {
        return Err(format!(
            "client certificate names no admin or viewer (it names {}); only `lvsctl` may call an agent",
            if uris.is_empty() { "no URI".to_string() } else { uris.join(", ") }
        ));
    };
    Ok((caller, serial))
}

/// The gRPC service `S` behind [`check`].
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    revoked: Arc<Revoked>,
}

impl<S> Authorize<S> {
    /// `inner`, callable only by the callers [`check`] admits.
    pub fn new(inner: S, revoked: Arc<Revoked>) -> Self {
        Self { inner, revoked }
    }
}

impl<S: NamedService> NamedService for Authorize<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Authorize<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let leaf = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.peer_certs())
            .and_then(|c| c.first().map(|c| c.as_ref().to_vec()));
        match check(req.uri().path(), leaf.as_deref(), &self.revoked) {
            Ok(caller) => {
                req.extensions_mut().insert(caller.clone());
                let call = self.inner.call(req);
                Box::pin(crate::server::caller::scope(caller, call))
            }
            Err(reason) => {
                tracing::warn!(method = req.uri().path(), %reason, "call refused");
                let resp = Status::permission_denied(reason).into_http();
                Box::pin(async move { Ok(resp) })
            }
        }
    }
}
