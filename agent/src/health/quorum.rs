//! A service against its quorum (keepalived `quorum`/`hysteresis`, counted in real
//! servers in service): below `quorum - hysteresis` it is degraded and its sorry server
//! joins; from `quorum + hysteresis` it is healthy again; in between it keeps the state it
//! had, which the runtime layer remembers (`Runtime::degraded`), so a restart or a
//! re-apply inside the band changes nothing.
use lvs_proto::reply::ServiceHealth;
use lvs_proto::spec::{NodeSpec, VirtualServiceSpec};

use crate::reconcile::state::{Runtime, override_key};

/// Destinations of `v` not quarantined (an unchecked one is always in service).
pub fn in_service(v: &VirtualServiceSpec, runtime: &Runtime) -> u32 {
    v.destinations.iter().filter(|d| !runtime.quarantined.contains(&override_key(&v.key, d.address))).count()
        as u32
}

/// Whether `v` is degraded now, given the state the runtime layer remembers.
pub fn degraded(v: &VirtualServiceSpec, runtime: &Runtime) -> bool {
    let n = in_service(v, runtime);
    if n < v.quorum.saturating_sub(v.hysteresis) {
        true
    } else if n >= v.quorum.saturating_add(v.hysteresis) {
        false
    } else {
        runtime.degraded.contains(&v.key)
    }
}

/// Whether `v` is watched at all: some destination is checked, or it has a sorry server.
fn watched(v: &VirtualServiceSpec) -> bool {
    v.sorry.is_some() || v.destinations.iter().any(|d| v.check_of(d).is_some())
}

/// Remember each service's state in `runtime` and return the services whose state
/// changed, with their new state (`true`: degraded).
pub fn settle<'a>(spec: &'a NodeSpec, runtime: &mut Runtime) -> Vec<(&'a VirtualServiceSpec, bool)> {
    let mut changed = Vec::new();
    for v in &spec.virtual_services {
        let now = degraded(v, runtime);
        if now != runtime.degraded.contains(&v.key) {
            changed.push((v, now));
        }
        if now {
            runtime.degraded.insert(v.key);
        } else {
            runtime.degraded.remove(&v.key);
        }
    }
    // A service that left the spec is forgotten.
    runtime.degraded.retain(|k| spec.virtual_services.iter().any(|v| v.key == *k));
    changed
}

/// Every watched service against its quorum, for `status`.
pub fn view(spec: &NodeSpec, runtime: &Runtime) -> Vec<ServiceHealth> {
    spec.virtual_services
        .iter()
        .filter(|v| watched(v))
        .map(|v| ServiceHealth {
            service: v.key,
            name: v.name.clone(),
            in_service: in_service(v, runtime),
            total: v.destinations.len() as u32,
            quorum: v.quorum,
            degraded: degraded(v, runtime),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(n: usize, quorum: u32, hysteresis: u32) -> VirtualServiceSpec {
        let mut spec: NodeSpec =
            serde_json::from_str(include_str!("../../tests/fixtures/director-spec.json")).unwrap();
        let mut v = spec.virtual_services.remove(0);
        let d = v.destinations[0].clone();
        v.destinations = (0..n)
            .map(|i| lvs_proto::spec::DestinationSpec {
                address: format!("198.18.0.{}:80", 11 + i).parse().unwrap(),
                ..d.clone()
            })
            .collect();
        v.quorum = quorum;
        v.hysteresis = hysteresis;
        v
    }

    /// Quarantine the first `down` destinations.
    fn with_down(v: &VirtualServiceSpec, down: usize, rt: &mut Runtime) {
        rt.quarantined = v.destinations.iter().take(down).map(|d| override_key(&v.key, d.address)).collect();
    }

    #[test]
    fn without_a_quorum_the_service_is_degraded_only_when_every_destination_is_down() {
        let v = service(3, 1, 0);
        let mut rt = Runtime::default();
        for (down, want) in [(0, false), (2, false), (3, true)] {
            with_down(&v, down, &mut rt);
            assert_eq!(degraded(&v, &rt), want, "{down} down");
        }
    }

    #[test]
    fn hysteresis_keeps_the_state_inside_its_band() {
        // Five servers, quorum 3, hysteresis 1: lost below 2 in service, back from 4.
        let v = service(5, 3, 1);
        let spec = NodeSpec {
            virtual_services: vec![v.clone()],
            ..serde_json::from_str(include_str!("../../tests/fixtures/director-spec.json")).unwrap()
        };
        let mut rt = Runtime::default();
        let mut seen = Vec::new();
        // In service: 5, 3, 2, 1 (lost), 2, 3 (still lost), 4 (back), 3 (still fine).
        for down in [0, 2, 3, 4, 3, 2, 1, 2] {
            with_down(&v, down, &mut rt);
            let changed = settle(&spec, &mut rt);
            seen.push((5 - down, degraded(&v, &rt), changed.len()));
        }
        assert_eq!(
            seen,
            [
                (5, false, 0),
                (3, false, 0),
                (2, false, 0),
                (1, true, 1),
                (2, true, 0),
                (3, true, 0),
                (4, false, 1),
                (3, false, 0)
            ]
        );
    }
}
