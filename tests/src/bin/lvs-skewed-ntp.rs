//! `lvs-skewed-ntp ADDR:PORT SKEW`: a fault injector standing for a bad clock. Answers SNTP
//! with the local time shifted by SKEW (`+5s`, `-1500ms`), so an agent measuring against it
//! sees that offset. Never the happy path: that is chrony's job.
fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(skew)) = (args.next(), args.next()) else {
        eprintln!("usage: lvs-skewed-ntp ADDR:PORT SKEW   (SKEW like +5s, -1500ms)");
        std::process::exit(2);
    };
    let addr = addr.parse().map_err(std::io::Error::other)?;
    let neg = skew.starts_with('-');
    let d = humantime::parse_duration(skew.trim_start_matches(['+', '-'])).map_err(std::io::Error::other)?;
    let ms = d.as_millis() as i64;
    lvs_tests::ntp::serve(addr, if neg { -ms } else { ms })
}
