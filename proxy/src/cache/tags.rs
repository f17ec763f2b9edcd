//! Tags (SPEC §13): the words of a response's `cache.tag_header`
//! (`Surrogate-Key` by default, as Fastly and Varnish's xkey name it), kept
//! with its object, and the index from each tag to the objects carrying
//! it, so that a purge by tag visits those objects and nothing else.
//!
//! Why an index beside moka rather than a walk of the store: a site purges
//! "everything about product 42" among millions of objects, and a walk
//! costs the whole store each time. The index costs nothing while no
//! response carries tags (an object without tags never touches it), and
//! its room is counted in the weight of the objects it lists
//! ([`TAG_OVERHEAD`]), so `max_size` bounds it with them.
//!
//! Each entry names a slot and the serial of the object stored there when
//! it was listed: a slot filled again by a newer object is not purged or
//! unlisted on behalf of the old one.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use http::header::HeaderValue;
use xxhash_rust::xxh3::xxh3_64;

/// An object's tags: distinct, in the order the response gave them.
pub type Tags = Box<[Box<str>]>;

/// Room a tag costs besides its text, which is counted twice (in the
/// object and as the index's key): the index's map entries and their
/// spare capacity.
pub const TAG_OVERHEAD: usize = 96;

/// Locks are split by tag so that inserts of unrelated tagged objects on
/// several threads rarely wait for each other.
const SHARDS: usize = 16;

/// The objects listed under one tag: slot to the listed object's serial.
type Listed = HashMap<u128, u64>;

/// One lock's part of the index.
type Shard = HashMap<Box<str>, Listed>;

/// Tag to the objects carrying it.
pub struct TagIndex {
    shards: Box<[Mutex<Shard>]>,
}

/// The tags of a response: the space-separated words of every line of
/// its tag header, each once.
pub fn tags_of<V: Borrow<HeaderValue>>(lines: impl IntoIterator<Item = V>) -> Tags {
    let mut tags: Vec<Box<str>> = Vec::new();
    for line in lines {
        let Ok(text) = line.borrow().to_str() else {
            continue;
        };
        for word in text.split_ascii_whitespace() {
            if !tags.iter().any(|tag| **tag == *word) {
                tags.push(word.into());
            }
        }
    }
    tags.into_boxed_slice()
}

/// What `tags` add to an object's weight in the store.
pub fn weight_of(tags: &[Box<str>]) -> usize {
    tags.iter().map(|tag| 2 * tag.len() + TAG_OVERHEAD).sum()
}

impl Default for TagIndex {
    fn default() -> TagIndex {
        TagIndex {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl TagIndex {
    /// The shard that holds `tag`. A panic while a shard was held cannot
    /// leave a map half-changed in a way that matters (each change is one
    /// insert or remove), so a poisoned lock is taken as it is.
    fn shard(&self, tag: &str) -> MutexGuard<'_, Shard> {
        let index = usize::try_from(xxh3_64(tag.as_bytes()) % SHARDS as u64).unwrap_or(0);
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists the object `serial` in `slot` under each of `tags`.
    pub fn add(&self, tags: &[Box<str>], slot: u128, serial: u64) {
        for tag in tags {
            self.shard(tag)
                .entry(tag.clone())
                .or_default()
                .insert(slot, serial);
        }
    }

    /// Unlists the object `serial` in `slot` from each of `tags`, unless a
    /// newer object of the slot was listed since.
    pub fn remove(&self, tags: &[Box<str>], slot: u128, serial: u64) {
        for tag in tags {
            let mut shard = self.shard(tag);
            let Some(listed) = shard.get_mut(&**tag) else {
                continue;
            };
            if listed.get(&slot) == Some(&serial) {
                listed.remove(&slot);
                if listed.is_empty() {
                    shard.remove(&**tag);
                }
            }
        }
    }

    /// The objects listed under `tag`: (slot, serial) pairs, copied so that
    /// the caller may change the store (whose removals unlist objects)
    /// without holding the lock.
    pub fn tagged(&self, tag: &str) -> Vec<(u128, u64)> {
        self.shard(tag)
            .get(tag)
            .map(|listed| {
                listed
                    .iter()
                    .map(|(slot, serial)| (*slot, *serial))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many (tag, object) pairs are listed: for the tests.
    #[cfg(test)]
    pub fn listed(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .map(HashMap::len)
                    .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::map_of;

    #[test]
    fn tags_are_the_distinct_words_of_every_line() {
        let headers = map_of(&[
            ("surrogate-key", "product-42  home\tproduct-42"),
            ("surrogate-key", "home list"),
        ]);
        let tags = tags_of(headers.get_all("surrogate-key"));
        assert_eq!(
            &*tags,
            &["product-42".into(), "home".into(), "list".into()] as &[Box<str>]
        );
        assert!(tags_of(headers.get_all("x-none")).is_empty());
    }

    #[test]
    fn a_newer_object_of_the_slot_stays_listed_when_the_old_one_leaves() {
        let index = TagIndex::default();
        let tags: Tags = vec!["a".into(), "b".into()].into();
        index.add(&tags, 7, 1);
        index.add(&tags[..1], 7, 2);
        index.remove(&tags, 7, 1);
        assert_eq!(index.tagged("a"), vec![(7, 2)]);
        assert!(index.tagged("b").is_empty(), "unlisted");
        index.remove(&tags, 7, 2);
        assert_eq!(index.listed(), 0, "empty tags leave the index");
    }
}
