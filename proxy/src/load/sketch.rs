//! Space-Saving (Metwally, Agrawal, El Abbadi, 2005): the most frequent
//! items of a stream in a fixed number of counters, whatever the number of
//! distinct items.
//!
//! Each counter holds an item (a key's 128-bit ring position) and a count.
//! An item already held is counted; a new one takes a free counter, or
//! else evicts the item of the smallest count and inherits that count plus
//! one. A count never underestimates its item's, and overestimates it by
//! at most the smallest count at its item's arrival, recorded as `error`;
//! an item whose true count exceeds `total / capacity` is always held. On
//! skewed (Zipf-like) streams the hot items arrive early and are never
//! evicted, so their counts are exact or nearly.
//!
//! The counters form a binary min-heap (the smallest count at the root, to
//! evict) indexed by a map from item to heap slot, so that each item costs
//! a map lookup and at most `log2(capacity)` swaps: no scan of the
//! counters, which a stream of mostly new items (a uniform key space)
//! would pay on every item.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The longest key text kept with a counter (`hot_keys_record`); longer
/// keys are kept cut to this, so that memory stays bounded whatever the
/// keys.
pub const MAX_KEY_TEXT: usize = 512;

/// One counter.
#[derive(Clone, Debug)]
pub struct Counter {
    /// The item: a key's position on the ring.
    pub hash: u128,
    /// Its count, an overestimate by at most `error`.
    pub count: u64,
    /// The count it inherited when it took the counter.
    pub error: u64,
    /// The key's text, when it is recorded (its first `MAX_KEY_TEXT`
    /// bytes).
    pub key: Option<Box<[u8]>>,
}

/// A Space-Saving summary of `capacity` counters.
#[derive(Debug)]
pub struct Sketch {
    capacity: usize,
    /// A min-heap by count.
    heap: Vec<Counter>,
    /// Where each held item is in `heap`.
    slots: HashMap<u128, usize, BuildHasherDefault<PositionHasher>>,
    /// Every item counted, held or not.
    total: u64,
}

/// Hashes a ring position by its low 64 bits: positions are XXH3 hashes
/// already, so hashing them again (SipHash, the map's default) would only
/// cost time.
#[derive(Default)]
pub struct PositionHasher(u64);

impl Hasher for PositionHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u128(&mut self, value: u128) {
        // The low half of the position, as is.
        self.0 = value as u64;
    }
}

// === impl Sketch ===

impl Sketch {
    /// An empty summary of at most `capacity` counters (at least one).
    /// Nothing is allocated until items come, so that an idle service's
    /// sketches cost next to nothing.
    pub fn new(capacity: usize) -> Sketch {
        Sketch {
            capacity: capacity.max(1),
            heap: Vec::new(),
            slots: HashMap::default(),
            total: 0,
        }
    }

    /// Counts one occurrence of `hash`; `key` is its text, kept when the
    /// item takes a counter.
    pub fn add(&mut self, hash: u128, key: Option<&[u8]>) {
        self.total += 1;
        if let Some(&slot) = self.slots.get(&hash) {
            if let Some(counter) = self.heap.get_mut(slot) {
                counter.count += 1;
            }
            self.sift_down(slot);
            return;
        }
        let key = key.map(|key| Box::from(&key[..key.len().min(MAX_KEY_TEXT)]));
        if self.heap.len() < self.capacity {
            let slot = self.heap.len();
            self.heap.push(Counter {
                hash,
                count: 1,
                error: 0,
                key,
            });
            self.slots.insert(hash, slot);
            self.sift_up(slot);
            return;
        }
        let Some(root) = self.heap.first_mut() else {
            return;
        };
        let evicted = std::mem::replace(
            root,
            Counter {
                hash,
                count: root.count + 1,
                error: root.count,
                key,
            },
        );
        self.slots.remove(&evicted.hash);
        self.slots.insert(hash, 0);
        self.sift_down(0);
    }

    /// Every item counted, held or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The counters, in no particular order.
    pub fn counters(&self) -> &[Counter] {
        &self.heap
    }

    /// Moves the counter at `slot` up while it is smaller than its parent.
    fn sift_up(&mut self, mut slot: usize) {
        while slot > 0 {
            let parent = (slot - 1) / 2;
            if self.heap[parent].count <= self.heap[slot].count {
                break;
            }
            self.swap(parent, slot);
            slot = parent;
        }
    }

    /// Moves the counter at `slot` down while a child is smaller.
    fn sift_down(&mut self, mut slot: usize) {
        loop {
            let (left, right) = (2 * slot + 1, 2 * slot + 2);
            let mut smallest = slot;
            if left < self.heap.len() && self.heap[left].count < self.heap[smallest].count {
                smallest = left;
            }
            if right < self.heap.len() && self.heap[right].count < self.heap[smallest].count {
                smallest = right;
            }
            if smallest == slot {
                break;
            }
            self.swap(slot, smallest);
            slot = smallest;
        }
    }

    /// Swaps two counters, and their slots in the index.
    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.slots.insert(self.heap[a].hash, a);
        self.slots.insert(self.heap[b].hash, b);
    }
}
