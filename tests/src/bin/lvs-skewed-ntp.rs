//! `lvs-skewed-ntp`: a fault injector standing for a bad clock. Answers SNTP requests on
//! ADDR with the local time shifted by SKEW (e.g. `+5s`, `-2s`), so an agent measuring
//! against it sees that offset. Never used for the happy path: that is chrony's job.
use std::net::SocketAddr;
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

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(skew)) = (args.next(), args.next()) else {
        eprintln!("usage: lvs-skewed-ntp ADDR:PORT SKEW   (SKEW like +5s, -1500ms)");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    let neg = skew.starts_with('-');
    let d = humantime::parse_duration(skew.trim_start_matches(['+', '-'])).map_err(std::io::Error::other)?;
    let skew_ms = if neg { -(d.as_millis() as i64) } else { d.as_millis() as i64 };
    let sock = std::net::UdpSocket::bind(addr)?;
    let mut buf = [0u8; 512];
    loop {
        let (n, peer) = sock.recv_from(&mut buf)?;
        if n < 48 {
            continue;
        }
        let mut r = [0u8; 48];
        r[0] = 0x24; // LI 0, version 4, mode 4 (server)
        r[1] = 2; // stratum
        r[2] = buf[2];
        r[3] = 0xec;
        r[12..16].copy_from_slice(b"SKEW");
        r[16..24].copy_from_slice(&ntp_now(skew_ms)); // reference
        r[24..32].copy_from_slice(&buf[40..48]); // originate = client's transmit
        r[32..40].copy_from_slice(&ntp_now(skew_ms)); // receive
        r[40..48].copy_from_slice(&ntp_now(skew_ms)); // transmit
        sock.send_to(&r, peer)?;
    }
}
