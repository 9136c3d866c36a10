//! What the agent tells its operator without being asked a question: the event feed (a
//! bounded broadcast of applies, drift, health transitions), its own counters, and the
//! Prometheus exposition served on `/metrics` (`scrape`) from one snapshot per scrape.
pub(crate) mod events;
pub(crate) mod exposition;
pub(crate) mod families;
pub(crate) mod ha_families;
pub(crate) mod metrics;
pub(crate) mod scrape;

pub use events::Events;
pub use exposition::{Snapshot, render};
pub use ha_families::DrillResult;
pub use metrics::{Format, Metrics};
pub use scrape::serve as serve_metrics;
