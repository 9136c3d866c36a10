//! What agents answer, as domain types: the same values the agent builds and the
//! controller decodes once, at its fleet boundary ([`crate::wire`] converts both ways and
//! checks every field on the way in). Nothing past that boundary reads a `pb::*` reply.
//!
//! Text is a view: every type here prints itself ([`std::fmt::Display`]) in the words
//! `lvsctl` has always used, and serialises (serde) to the JSON `-o json` prints.
mod arp;
mod bgp;
mod changes;
mod events;
mod report;
mod small;
mod status;
mod table;
mod text;

pub use arp::*;
pub use bgp::*;
pub use changes::*;
pub use events::*;
pub use report::*;
pub use small::*;
pub use status::*;
pub use table::*;
pub use text::*;

#[cfg(test)]
mod lying_agents {
    use super::*;

    #[test]
    fn an_expiry_past_any_clock_does_not_overflow() {
        let c = CertificateInfo { serial: "01".into(), not_after_unix: u64::MAX };
        assert!(c.days_left(0) > 0);
        assert!(c.days_left(u64::MAX) <= 0);
    }
}
