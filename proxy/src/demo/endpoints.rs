//! With `--srv-only`, the demo's stand-in for Kubernetes' endpoints
//! controller: a backend that is down is withdrawn from the service's SRV
//! records, and published again once it listens, as a pod that fails its
//! readiness probe leaves its headless service's DNS and comes back when
//! ready. So a drill against the demo sees both halves of a pod's restart:
//! requests retried on the replica while the ring still lists the pod, then
//! a ring without it, then the pod back.

use tokio::task::JoinSet;
use tracing::{info, warn};

use super::backend::Backend;
use super::zone;
use crate::dns_server::ZoneHandle;

/// Starts following every backend; the tasks end when their backend stops
/// or when the set is dropped.
pub(super) fn follow(backends: &[Backend], dns: &ZoneHandle) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for backend in backends {
        let mut mode = backend.watch_mode();
        let record = zone::srv_record(backend.info());
        let name = backend.info().name.clone();
        let dns = dns.clone();
        tasks.spawn(async move {
            let mut withdrawn = false;
            while mode.changed().await.is_ok() {
                let withdraw = mode.borrow_and_update().is_down();
                if withdraw == withdrawn {
                    continue;
                }
                withdrawn = withdraw;
                let published = if withdraw {
                    dns.update(|records| records.retain(|published| *published != record))
                } else {
                    dns.add_record(record.clone())
                };
                match published {
                    Ok(()) if withdraw => {
                        info!(backend = %name, "down: its SRV record is withdrawn")
                    }
                    Ok(()) => {
                        info!(backend = %name, "listening: its SRV record is published again")
                    }
                    Err(error) => warn!(backend = %name, %error, "cannot change its SRV record"),
                }
            }
        });
    }
    tasks
}
