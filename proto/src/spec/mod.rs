//! Declarative desired state of one node.
//!
//! A [`NodeSpec`] says *what must exist*, never how to get there; the agent diffs it
//! against what it observes. The one piece of "how" that belongs here is the order of
//! [`NodeSpec::steps`], because DR depends on it: a real server must stop answering ARP for
//! the VIP *before* the VIP exists on its loopback, or it will steal the VIP from the
//! director for a moment (the seed article, step 6.2 before 6.3).
mod arp;
mod bgp;
mod checks;
mod host;
mod key;
mod marks;
mod node;
mod services;

pub use arp::*;
pub use bgp::*;
pub use checks::*;
pub use host::*;
pub use key::*;
pub use marks::*;
pub use node::*;
pub use services::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_set_is_a_number_when_it_is_one_code_and_ranges_otherwise() {
        let one: StatusSet = serde_json::from_str("200").unwrap();
        assert_eq!((one.single(), serde_json::to_string(&one).unwrap()), (Some(200), "200".into()));
        let many = StatusSet::parse("200-299, 301").unwrap();
        let json = serde_json::to_string(&many).unwrap();
        assert_eq!(json, "[[200,299],[301,301]]");
        assert_eq!(serde_json::from_str::<StatusSet>(&json).unwrap(), many);
        assert!(many.contains(250) && many.contains(301) && !many.contains(300) && !many.contains(302));
        // What no server sends is refused on the way in too.
        assert!(serde_json::from_str::<StatusSet>("[[300,200]]").is_err());
        assert!(serde_json::from_str::<StatusSet>("42").is_err());
    }
}
