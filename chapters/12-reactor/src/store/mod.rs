//! The key space: string keys to string values, with optional expiry times,
//! and the commands that work on it ([`commands`]).
//!
//! Expiry works the way Redis's does (expire.c, db.c), in two halves:
//! - lazy: every command that touches a key first checks its expiry time
//!   and deletes it if it has passed (Redis's expireIfNeeded), so no client
//!   ever sees an expired key;
//! - active: a key nobody touches again would stay in memory for ever, so
//!   the server's timer calls [`Db::active_expire`], which walks the keys
//!   that have a TTL with a cursor, a few at a time, and deletes the expired
//!   ones (Redis's activeExpireCycle, which walks its `expires` table with
//!   `expires_cursor`, 20 keys per round).

pub mod commands;

use hashbrown::HashMap;

use crate::session::Millis;

/// A stored value and, if it has one, its expiry.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Vec<u8>,
    expiry: Option<Expiry>,
}

#[derive(Clone, Copy, Debug)]
struct Expiry {
    /// The key expires once `now > at` (Redis's keyIsExpired: `now > when`).
    at: Millis,
    /// Where the key sits in `Db::with_ttl`.
    slot: usize,
}

/// The whole key space (Redis's database 0; this server has no SELECT).
#[derive(Default)]
pub struct Db {
    /// hashbrown's map with foldhash: several times faster than std's
    /// SipHash on short keys (a lookup is on every GET/SET/INCR), and still
    /// seeded at random per map, so a client cannot know in advance which
    /// keys collide.
    map: HashMap<Box<[u8]>, Entry>,
    /// The keys that have an expiry time, for the active expiry cycle to
    /// walk (Redis keeps them in a second table, `db->expires`).
    with_ttl: Vec<Box<[u8]>>,
    /// Where the next active expiry round starts in `with_ttl`.
    cursor: usize,
    /// The last client id handed out (CLIENT ID).
    last_client_id: u64,
}

impl Db {
    pub fn new() -> Db {
        Db::default()
    }

    /// How many keys are stored, counting expired keys nobody has touched
    /// and the active cycle has not reached yet (Redis's DBSIZE does too).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// How many keys have an expiry time.
    pub fn keys_with_ttl(&self) -> usize {
        self.with_ttl.len()
    }

    /// Active expiry: looks at up to `sample` keys that have an expiry time,
    /// going on from where the last call stopped, deletes those whose time
    /// has passed and returns how many it deleted. Like Redis, call it again
    /// at once while more than a tenth of the sample was expired (Redis's
    /// ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE is 10%), within a time budget.
    pub fn active_expire(&mut self, now: Millis, sample: usize) -> usize {
        let mut deleted = 0;
        let mut looked = 0;
        while looked < sample && !self.with_ttl.is_empty() {
            if self.cursor >= self.with_ttl.len() {
                self.cursor = 0;
            }
            looked += 1;
            let key = &self.with_ttl[self.cursor];
            let expired = self.map[key].expiry.is_some_and(|e| now > e.at);
            if expired {
                let key = key.clone();
                // swap_remove moves the last key into this slot: the
                // cursor stays put and looks at it next.
                self.remove(&key);
                deleted += 1;
            } else {
                self.cursor += 1;
            }
        }
        deleted
    }

    /// The live entry of `key`: an entry whose expiry time has passed is
    /// deleted here (lazy expiry) and reported as missing.
    pub(crate) fn lookup(&mut self, key: &[u8], now: Millis) -> Option<&mut Entry> {
        let expired = self.map.get(key)?.expiry.is_some_and(|e| now > e.at);
        if expired {
            self.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    /// The expiry time of a live key (None: no expiry). Call after lookup.
    pub(crate) fn expiry_of(&self, key: &[u8]) -> Option<Millis> {
        self.map.get(key)?.expiry.map(|e| e.at)
    }

    /// Stores `value` under `key`. Like Redis's setKey, a plain SET drops
    /// any previous expiry (`keep_ttl` false). The old value's buffer is
    /// reused when it is big enough: no allocation for a SET that
    /// overwrites a value of the same size.
    pub(crate) fn set(&mut self, key: &[u8], value: &[u8], now: Millis, keep_ttl: bool) {
        match self.lookup(key, now) {
            Some(entry) => {
                entry.value.clear();
                entry.value.extend_from_slice(value);
                if !keep_ttl && entry.expiry.is_some() {
                    self.persist(key);
                }
            }
            None => {
                self.map.insert(
                    key.into(),
                    Entry {
                        value: value.to_vec(),
                        expiry: None,
                    },
                );
            }
        }
    }

    /// Inserts an entry for a key known to be missing (INCR of a new key).
    pub(crate) fn insert_new(&mut self, key: &[u8], value: Vec<u8>) {
        self.map.insert(
            key.into(),
            Entry {
                value,
                expiry: None,
            },
        );
    }

    /// Deletes `key`; true if it was there (expired or not).
    pub(crate) fn remove(&mut self, key: &[u8]) -> bool {
        let Some(entry) = self.map.remove(key) else {
            return false;
        };
        if let Some(e) = entry.expiry {
            self.forget_ttl(e.slot);
        }
        true
    }

    /// Removes slot `slot` of `with_ttl`, fixing the slot of the key that
    /// `swap_remove` moves into it.
    fn forget_ttl(&mut self, slot: usize) {
        self.with_ttl.swap_remove(slot);
        if let Some(moved) = self.with_ttl.get(slot)
            && let Some(e) = self.map.get_mut(moved).and_then(|m| m.expiry.as_mut())
        {
            e.slot = slot;
        }
    }

    /// Sets the expiry time of an existing key.
    pub(crate) fn set_expiry(&mut self, key: &[u8], at: Millis) {
        let Some(entry) = self.map.get_mut(key) else {
            return;
        };
        match &mut entry.expiry {
            Some(e) => e.at = at,
            None => {
                entry.expiry = Some(Expiry {
                    at,
                    slot: self.with_ttl.len(),
                });
                self.with_ttl.push(key.into());
            }
        }
    }

    /// Drops the expiry time of `key`; true if it had one.
    pub(crate) fn persist(&mut self, key: &[u8]) -> bool {
        let Some(e) = self.map.get_mut(key).and_then(|m| m.expiry.take()) else {
            return false;
        };
        self.forget_ttl(e.slot);
        true
    }

    /// FLUSHALL.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.with_ttl.clear();
        self.cursor = 0;
    }

    pub(crate) fn next_client_id(&mut self) -> u64 {
        self.last_client_id += 1;
        self.last_client_id
    }

    /// Checks the bookkeeping between the two tables (tests).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        for (slot, key) in self.with_ttl.iter().enumerate() {
            let e = self.map[key]
                .expiry
                .expect("a key in with_ttl has an expiry");
            assert_eq!(e.slot, slot, "slot of {key:?}");
        }
        let n = self.map.values().filter(|e| e.expiry.is_some()).count();
        assert_eq!(n, self.with_ttl.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_expiry_deletes_on_access() {
        let mut db = Db::new();
        db.set(b"k", b"v", 0, false);
        db.set_expiry(b"k", 100);
        assert!(db.lookup(b"k", 100).is_some(), "alive while now <= at");
        assert_eq!(db.len(), 1);
        assert!(db.lookup(b"k", 101).is_none(), "gone once now > at");
        assert_eq!(db.len(), 0, "and deleted, not just hidden");
        db.check_invariants();
    }

    #[test]
    fn active_expiry_walks_the_keys_with_a_ttl() {
        let mut db = Db::new();
        for i in 0..100u32 {
            let key = i.to_string();
            db.set(key.as_bytes(), b"v", 0, false);
            // Even keys expire at 10, odd ones at 1000; key 0 never.
            if i > 0 {
                db.set_expiry(key.as_bytes(), if i % 2 == 0 { 10 } else { 1000 });
            }
        }
        assert_eq!(db.keys_with_ttl(), 99);
        assert_eq!(db.active_expire(10, 1000), 0, "nothing expired yet");
        let mut deleted = 0;
        let mut rounds = 0;
        loop {
            let n = db.active_expire(11, 20);
            db.check_invariants();
            deleted += n;
            rounds += 1;
            if n == 0 && rounds > 10 {
                break;
            }
        }
        assert_eq!(
            deleted, 49,
            "every even key but 0, found without any access"
        );
        assert_eq!(db.len(), 51);
        assert_eq!(db.active_expire(1001, 1000), 50);
        assert_eq!(db.len(), 1);
        assert_eq!(db.keys_with_ttl(), 0);
        db.check_invariants();
    }

    #[test]
    fn active_expiry_looks_at_no_more_than_the_sample() {
        let mut db = Db::new();
        for i in 0..50u32 {
            db.set(i.to_string().as_bytes(), b"v", 0, false);
            db.set_expiry(i.to_string().as_bytes(), 5);
        }
        assert_eq!(db.active_expire(6, 20), 20);
        assert_eq!(db.active_expire(6, 20), 20);
        assert_eq!(db.active_expire(6, 20), 10);
        assert!(db.is_empty());
    }

    #[test]
    fn set_drops_the_ttl_and_persist_forgets_it() {
        let mut db = Db::new();
        db.set(b"a", b"1", 0, false);
        db.set(b"b", b"1", 0, false);
        db.set_expiry(b"a", 50);
        db.set_expiry(b"b", 50);
        db.set(b"a", b"2", 0, false);
        assert_eq!(db.expiry_of(b"a"), None);
        db.check_invariants();
        assert!(db.persist(b"b"));
        assert!(!db.persist(b"b"));
        db.check_invariants();
        assert_eq!(db.keys_with_ttl(), 0);
    }
}
