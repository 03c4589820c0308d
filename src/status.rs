//! What operators see of the apps: counters summed over all workers in a shared-memory zone
//! (`gateway_status_zone NAME SIZE;`) that survives reloads, and the `gateway_status;` handler
//! that shows them as JSON or Prometheus text.
//!
//! [`counters`] is the table and its entries (per mount and per thread pool), [`zone`] the
//! directive and the zone's setup, [`render`] the two formats, [`handler`] the location.

pub mod counters;
mod handler;
mod render;
mod zone;

pub use handler::{check_configuration, set_status};
pub use zone::set_status_zone;
