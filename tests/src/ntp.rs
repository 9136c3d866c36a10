//! A minimal SNTP server answering with the local clock shifted by a skew. With skew 0 it
//! is a stand-in time source for benchmarks; with a skew it is the fault injector that
//! stands for a bad clock (`lvs-skewed-ntp`). The happy path of the lab uses chrony.
use std::net::{SocketAddr, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds between 1900-01-01 (NTP era 0) and 1970-01-01.
const NTP_UNIX_DELTA: u64 = 2_208_988_800;

fn ntp_now(skew_ms: i64) -> [u8; 8] {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    let ms = d.as_millis() as i64 + skew_ms;
    let secs = (ms.div_euclid(1000)) as u64 + NTP_UNIX_DELTA;
    let frac = ((ms.rem_euclid(1000) as u64) << 32) / 1000;
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(secs as u32).to_be_bytes());
    b[4..].copy_from_slice(&(frac as u32).to_be_bytes());
    b
}

/// The answer to one request (48 bytes), or `None` for a runt.
pub fn reply(req: &[u8], skew_ms: i64) -> Option<[u8; 48]> {
    if req.len() < 48 {
        return None;
    }
    let mut r = [0u8; 48];
    r[0] = 0x24; // LI 0, version 4, mode 4 (server)
    r[1] = 2; // stratum
    r[2] = req[2];
    r[3] = 0xec;
    r[12..16].copy_from_slice(b"SKEW");
    r[16..24].copy_from_slice(&ntp_now(skew_ms)); // reference
    r[24..32].copy_from_slice(&req[40..48]); // originate = the client's transmit
    r[32..40].copy_from_slice(&ntp_now(skew_ms)); // receive
    r[40..48].copy_from_slice(&ntp_now(skew_ms)); // transmit
    Some(r)
}

/// Serve forever on `addr` (blocking).
pub fn serve(addr: SocketAddr, skew_ms: i64) -> std::io::Result<()> {
    let sock = UdpSocket::bind(addr)?;
    let mut buf = [0u8; 512];
    loop {
        let (n, peer) = sock.recv_from(&mut buf)?;
        if let Some(r) = reply(&buf[..n], skew_ms) {
            sock.send_to(&r, peer)?;
        }
    }
}
