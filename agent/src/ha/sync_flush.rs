//! Pushing a director's last connection-sync message out at a planned hand-over.
//!
//! The master sync daemon (one connection per message, [`crate::reconcile::ipvs_diff::MASTER_SYNC_MAXLEN`])
//! sends each message when the next connection is synced; the last one waits for the
//! kernel's flush timer (2 s, checked every second). At a hand-over that last message is
//! the connection whose handshake went through this director just before the router moved
//! to the new master: the new master does not know it and drops its packets until the
//! message arrives, so its client stalls up to ~3 s. Stopping the daemon frees the message
//! instead of sending it.
//!
//! So the old master makes one more connection of its own to each virtual service it
//! forwards: IPVS schedules a local client like any other (its `LOCAL_OUT` hook), the
//! handshake's ACK syncs the new connection, and syncing it sends the message before it.
//! The connection comes from the director's own address, after its VIPs are gone: a real
//! server's answer from the VIP to an address of the director would otherwise be dropped
//! as a martian (a packet from one of the director's own addresses).
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tracing::{debug, warn};

/// How long one flushing connection may take: the real servers are on the director's LAN.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Connect from `source` to each of `services` and close again, all at once; say how many
/// connected. A service that does not answer only means its flush did not happen.
pub async fn flush(source: IpAddr, services: &[SocketAddr]) -> usize {
    let tries = services.iter().map(|&s| async move {
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(source, s)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                warn!(service = %s, %source, error = %e, "sync flush: could not connect");
                false
            }
            Err(_) => {
                warn!(service = %s, %source, "sync flush: connect timed out");
                false
            }
        }
    });
    let done = futures::future::join_all(tries).await.into_iter().filter(|ok| *ok).count();
    debug!(connected = done, services = services.len(), "sync flush");
    done
}

async fn connect(source: IpAddr, service: SocketAddr) -> std::io::Result<()> {
    let sock = match service {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    sock.bind(SocketAddr::new(source, 0))?;
    // Connected is enough: the handshake's ACK is what the kernel syncs. Dropping the
    // stream closes it.
    let _stream = sock.connect(service).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reachable service is connected to from the given source; one that refuses is
    /// counted out, without failing the others.
    #[tokio::test]
    async fn connects_from_the_source_to_each_service() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = l.local_addr().unwrap();
        let closed = {
            let c = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            c.local_addr().unwrap()
        };
        let accepted = tokio::spawn(async move { l.accept().await.map(|(_, peer)| peer) });
        let n = flush("127.0.0.1".parse().unwrap(), &[open, closed]).await;
        assert_eq!(n, 1);
        let peer = accepted.await.unwrap().unwrap();
        assert_eq!(peer.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
