//! [`ZoneHandle`]: the server's state, shared between the caller (who
//! changes records and modes while the server runs) and the request handler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use hickory_proto::rr::LowerName;

use super::zone::{parse_name, Compiled, Zone, ZoneRecord};
use super::{DnsServerError, Mode};

/// A handle on a running server's zone: replace or edit its records and
/// switch its failure mode while clients query it.
///
/// Cheap to clone; every clone controls the same server. Changes are atomic:
/// a query sees the records before a change or after it, never a mix.
#[derive(Clone, Debug)]
pub struct ZoneHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The zone as given (the source of truth for edits), and its compiled
    /// form. Held only briefly, never across an `.await`.
    zone: RwLock<ZoneState>,
    modes: Mutex<Modes>,
    queries: Mutex<HashMap<LowerName, u64>>,
    total_queries: AtomicU64,
}

#[derive(Debug)]
struct ZoneState {
    zone: Zone,
    serial: u32,
    compiled: Arc<Compiled>,
}

#[derive(Debug, Default)]
struct Modes {
    all: Mode,
    by_name: HashMap<LowerName, Mode>,
}

impl ZoneHandle {
    /// Checks and compiles `zone`.
    pub(super) fn new(zone: Zone) -> Result<Self, DnsServerError> {
        let serial = 1;
        let compiled = Arc::new(Compiled::new(&zone, serial)?);
        Ok(Self {
            shared: Arc::new(Shared {
                zone: RwLock::new(ZoneState {
                    zone,
                    serial,
                    compiled,
                }),
                modes: Mutex::new(Modes::default()),
                queries: Mutex::new(HashMap::new()),
                total_queries: AtomicU64::new(0),
            }),
        })
    }

    /// Replaces all the records of the zone (origin and default TTL stay).
    ///
    /// # Errors
    ///
    /// If a record is invalid (see [`ZoneRecord`]); the zone is then left
    /// unchanged.
    pub fn set_records(
        &self,
        records: impl IntoIterator<Item = ZoneRecord>,
    ) -> Result<(), DnsServerError> {
        let records: Vec<ZoneRecord> = records.into_iter().collect();
        self.update(|current| *current = records)
    }

    /// Adds one record (a record equal to one already there is not added
    /// twice).
    ///
    /// # Errors
    ///
    /// If the record is invalid; the zone is then left unchanged.
    pub fn add_record(&self, record: ZoneRecord) -> Result<(), DnsServerError> {
        self.update(|records| records.push(record))
    }

    /// Removes every record owned by `name` (compared case-insensitively) and
    /// returns how many there were.
    ///
    /// # Errors
    ///
    /// If `name` is not a valid absolute name.
    pub fn remove_name(&self, name: &str) -> Result<usize, DnsServerError> {
        let target = LowerName::new(&parse_name(name)?);
        let mut removed = 0;
        self.update(|records| {
            let before = records.len();
            // Names that do not parse cannot be in a compiled zone, so they
            // cannot be equal to `target`.
            records.retain(|r| parse_name(&r.name).map_or(true, |n| LowerName::new(&n) != target));
            removed = before - records.len();
        })?;
        Ok(removed)
    }

    /// Edits the records with `edit`, then checks and publishes the result
    /// as one change.
    ///
    /// # Errors
    ///
    /// If a record is invalid after the edit; the zone is then left
    /// unchanged.
    pub fn update(&self, edit: impl FnOnce(&mut Vec<ZoneRecord>)) -> Result<(), DnsServerError> {
        let mut state = self.write_zone();
        let mut zone = state.zone.clone();
        edit(zone.records_mut());
        let serial = state.serial.wrapping_add(1);
        let compiled = Compiled::new(&zone, serial)?;
        *state = ZoneState {
            zone,
            serial,
            compiled: Arc::new(compiled),
        };
        Ok(())
    }

    /// A copy of the zone as it is now.
    pub fn zone(&self) -> Zone {
        self.read_zone().zone.clone()
    }

    /// Sets how the server answers every query (unless a name has its own
    /// mode, see [`set_mode_for`](Self::set_mode_for)).
    pub fn set_mode(&self, mode: Mode) {
        self.lock_modes().all = mode;
    }

    /// Sets how the server answers queries for `name` (exactly that name,
    /// any type), whatever the server-wide mode: e.g. SERVFAIL for one
    /// instance's `tokens.` name only.
    ///
    /// # Errors
    ///
    /// If `name` is not a valid absolute name.
    pub fn set_mode_for(&self, name: &str, mode: Mode) -> Result<(), DnsServerError> {
        let name = LowerName::new(&parse_name(name)?);
        self.lock_modes().by_name.insert(name, mode);
        Ok(())
    }

    /// Removes every per-name mode and sets the server-wide mode back to
    /// [`Mode::Normal`].
    pub fn reset_modes(&self) {
        *self.lock_modes() = Modes::default();
    }

    /// How many queries the server has received (answered or not).
    pub fn query_count(&self) -> u64 {
        self.shared.total_queries.load(Ordering::Relaxed)
    }

    /// How many queries the server has received for `name` (any type,
    /// compared case-insensitively); 0 for an invalid name.
    pub fn query_count_for(&self, name: &str) -> u64 {
        let Ok(name) = parse_name(name) else {
            return 0;
        };
        let queries = self
            .shared
            .queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        queries.get(&LowerName::new(&name)).copied().unwrap_or(0)
    }

    /// Counts a query for `name` and returns the mode to answer it in.
    pub(super) fn on_query(&self, name: &LowerName) -> Mode {
        self.shared.total_queries.fetch_add(1, Ordering::Relaxed);
        *self
            .shared
            .queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.clone())
            .or_insert(0) += 1;
        let modes = self.lock_modes();
        modes.by_name.get(name).copied().unwrap_or(modes.all)
    }

    /// The records to answer from, as of now.
    pub(super) fn snapshot(&self) -> Arc<Compiled> {
        Arc::clone(&self.read_zone().compiled)
    }

    // A panic while a lock is held cannot leave the state half-changed (every
    // change is one assignment), so a poisoned lock is still good to use.

    fn read_zone(&self) -> std::sync::RwLockReadGuard<'_, ZoneState> {
        self.shared
            .zone
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_zone(&self) -> std::sync::RwLockWriteGuard<'_, ZoneState> {
        self.shared
            .zone
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_modes(&self) -> MutexGuard<'_, Modes> {
        self.shared
            .modes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
