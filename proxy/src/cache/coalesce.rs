//! The waiting list (Varnish's name): concurrent misses for one object
//! make one upstream request. The first gets a [`Fetch`] permit and
//! fetches; the others wait until it is dropped, then look in the store
//! again.
//!
//! The permit releases the waiters when it is dropped, whatever happened:
//! the object stored, the fetch failed, or the request that held it went
//! away (its client disconnected). Waiters are woken, not answered, so a
//! failed fetch sends each of them to try for itself instead of hanging.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// The fetches in flight of one store, by slot.
#[derive(Default)]
pub struct Flights {
    /// A receiver per slot being fetched; its sender is in the [`Fetch`].
    /// Locked briefly to join or leave, never across an await.
    slots: Mutex<HashMap<u128, watch::Receiver<()>>>,
}

/// The permit to fetch a slot: dropping it wakes the waiters.
pub struct Fetch {
    flights: Arc<Flights>,
    slot: u128,
    /// Dropped with the permit: the waiters' `changed()` then returns.
    _done: watch::Sender<()>,
}

/// What joining a slot gave.
pub enum Joined {
    /// No one is fetching it: this request does, holding the permit.
    Fetch(Fetch),
    /// Another request is: wait for it.
    Wait(watch::Receiver<()>),
}

// === impl Flights ===

impl Flights {
    /// Joins the fetch of `slot`, or starts it.
    pub fn join(self: &Arc<Self>, slot: u128) -> Joined {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waiting) = slots.get(&slot) {
            return Joined::Wait(waiting.clone());
        }
        let (done, waiting) = watch::channel(());
        slots.insert(slot, waiting);
        Joined::Fetch(Fetch {
            flights: Arc::clone(self),
            slot,
            _done: done,
        })
    }

    /// The permit for `slot` if no one is fetching it, for a background
    /// refresh that is not started twice.
    pub fn try_fetch(self: &Arc<Self>, slot: u128) -> Option<Fetch> {
        match self.join(slot) {
            Joined::Fetch(fetch) => Some(fetch),
            Joined::Wait(_) => None,
        }
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.flights
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.slot);
    }
}

/// Waits until the fetch that `waiting` belongs to is over (its permit
/// dropped).
pub async fn finished(mut waiting: watch::Receiver<()>) {
    // Nothing is ever sent: `changed` returns (an error) once the sender
    // is dropped with the permit.
    while waiting.changed().await.is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_fetches_and_the_others_wait_until_it_is_dropped() {
        let flights = Arc::new(Flights::default());
        let Joined::Fetch(fetch) = flights.join(7) else {
            panic!("the first joiner fetches");
        };
        let Joined::Wait(waiting) = flights.join(7) else {
            panic!("the second waits");
        };
        assert!(flights.try_fetch(7).is_none());
        assert!(flights.try_fetch(8).is_some(), "other slots are free");
        let waiter = tokio::spawn(finished(waiting));
        drop(fetch);
        waiter.await.unwrap();
        assert!(matches!(flights.join(7), Joined::Fetch(_)));
    }
}
