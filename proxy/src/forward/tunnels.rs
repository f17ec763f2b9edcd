//! The upgraded connections being relayed (SPEC §10), for shutdown: one
//! count and one signal shared by every service and every state a reload
//! makes, so that the proxy can wait for the relays and then close those
//! left at the end of `drain_timeout`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The upgraded connections being relayed, across reloads: how many, and
/// the signal that closes them when the proxy stops. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Tunnels {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// How many relays are running.
    open: watch::Sender<usize>,
    /// Turns true when the proxy's drain time is over.
    closing: watch::Sender<bool>,
}

/// One relay's hold on [`Tunnels`]: counted until dropped.
pub(super) struct Open {
    tunnels: Tunnels,
    closing: watch::Receiver<bool>,
}

// === impl Tunnels ===

impl Tunnels {
    /// None open.
    pub fn new() -> Tunnels {
        Tunnels {
            shared: Arc::new(Shared {
                open: watch::Sender::new(0),
                closing: watch::Sender::new(false),
            }),
        }
    }

    /// How many upgraded connections are being relayed.
    pub fn open_count(&self) -> usize {
        *self.shared.open.borrow()
    }

    /// Waits up to `drain` for the relays to end by themselves, then closes
    /// those left and waits for them to end.
    pub async fn close_within(&self, drain: Duration) {
        let mut open = self.shared.open.subscribe();
        let drained = tokio::time::timeout(drain, open.wait_for(|open| *open == 0))
            .await
            .is_ok();
        if !drained {
            tracing::info!(
                open = self.open_count(),
                "closing upgraded connections at the end of the drain"
            );
            self.shared.closing.send_replace(true);
            let _ = open.wait_for(|open| *open == 0).await;
        }
    }

    /// A new relay's hold.
    pub(super) fn open(&self) -> Open {
        self.shared.open.send_modify(|open| *open += 1);
        Open {
            tunnels: self.clone(),
            closing: self.shared.closing.subscribe(),
        }
    }
}

impl Default for Tunnels {
    fn default() -> Tunnels {
        Tunnels::new()
    }
}

// === impl Open ===

impl Open {
    /// Returns when the proxy's drain time is over: the relay must end.
    pub(super) async fn closing(&mut self) {
        let _ = self.closing.wait_for(|closing| *closing).await;
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.tunnels
            .shared
            .open
            .send_modify(|open| *open = open.saturating_sub(1));
    }
}
