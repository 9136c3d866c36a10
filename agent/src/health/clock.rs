//! The clock check: offset and round trip to the cluster's NTP source by SNTP. The
//! article calls time sync "the most important step": directors and real servers must be
//! within 1 s of the router, and the controller's time gate reads what this measures.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Server asked.
    pub server: IpAddr,
    /// Local clock minus server clock, in milliseconds (positive: we are ahead).
    pub offset_ms: Option<i64>,
    /// Round-trip delay, in milliseconds.
    pub rtt_ms: Option<u64>,
    /// Why there is no measurement.
    pub error: Option<String>,
}

/// Ask `server` (port 123 unless `port` says otherwise) for the time, once.
pub async fn measure(server: IpAddr, port: u16, timeout: Duration) -> Reading {
    // rsntp binds 0.0.0.0 unless told: an IPv6 server needs a socket of its family.
    let any: IpAddr = match server {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let config = rsntp::Config::default().bind_address(SocketAddr::new(any, 0)).timeout(timeout);
    let client = rsntp::AsyncSntpClient::with_config(config);
    match client.synchronize(SocketAddr::new(server, port)).await {
        Ok(r) => Reading {
            server,
            // rsntp gives the correction to apply to the local clock; the offset is its negation.
            offset_ms: Some((-r.clock_offset().as_secs_f64() * 1000.0).round() as i64),
            rtt_ms: Some((r.round_trip_delay().as_secs_f64() * 1000.0).max(0.0).round() as u64),
            error: None,
        },
        Err(e) => {
            Reading { server, offset_ms: None, rtt_ms: None, error: Some(format!("NTP {server}: {e}")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same measurement against a server on `addr`'s family, which skews by 1.5 s.
    async fn skewed_reading(addr: IpAddr) -> Reading {
        let port = std::net::UdpSocket::bind((addr, 0)).unwrap().local_addr().unwrap().port();
        std::thread::spawn(move || lvs_tests::ntp::serve(SocketAddr::new(addr, port), 1500));
        std::thread::sleep(Duration::from_millis(100));
        measure(addr, port, Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn an_ipv6_ntp_server_is_measured_like_an_ipv4_one() {
        // Without a socket of the server's family, the IPv6 query fails to send at all.
        for addr in [IpAddr::from([127, 0, 0, 1]), std::net::Ipv6Addr::LOCALHOST.into()] {
            let r = skewed_reading(addr).await;
            let offset = r.offset_ms.unwrap_or_else(|| panic!("{addr}: {:?}", r.error));
            assert!((-1600..=-1400).contains(&offset), "{addr}: offset {offset} ms");
        }
    }
}
