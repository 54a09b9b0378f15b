//! [`IdIndex`]: an open-addressing hash index from 128-bit ids to `u32` positions.
//!
//! Why not `hashbrown`: a transfer id lookup is a cache miss in a table of tens of millions of
//! entries, and `hashbrown` keeps control bytes and slots apart (two misses per insert) and
//! offers no way to prefetch. Here one slot is 8 bytes holding a 32-bit hash tag and the
//! position, probed linearly, so a lookup or insert usually touches one cache line, and the
//! rules prefetch that line a few events ahead.
//!
//! The index stores positions only; the caller resolves a position to its id (`key_of`) to
//! confirm a tag match.

/// Slot value 0 means empty; otherwise `tag << 32 | (position + 1)`.
const EMPTY: u64 = 0;
/// The most positions the index can hold (one value is reserved for "empty").
pub const POSITIONS_MAX: usize = u32::MAX as usize - 1;
/// Grow when more than this fraction (numerator / 8) of slots is used.
const LOAD_EIGHTHS_MAX: usize = 6;
const CAPACITY_MIN: usize = 16;

#[derive(Clone, Debug, Default)]
pub struct IdIndex {
    slots: Vec<u64>,
    len: usize,
}

fn slot_value(hash: u64, position: u32) -> u64 {
    ((hash >> 32) << 32) | (u64::from(position) + 1)
}

fn slot_position(slot: u64) -> u32 {
    ((slot & 0xffff_ffff) - 1) as u32
}

fn slot_tag(slot: u64) -> u64 {
    slot >> 32
}

impl IdIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated (for the memory budget).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, hash: u64) -> usize {
        // The low bits pick the slot; the high bits are the tag, so they stay independent.
        hash as usize & self.mask()
    }

    /// The position stored for `id`, if any.
    pub fn find(&self, hash: u64, id: u128, key_of: impl Fn(u32) -> u128) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let tag = hash >> 32;
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                return None;
            }
            if slot_tag(slot) == tag && key_of(slot_position(slot)) == id {
                return Some(slot_position(slot));
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Hints the CPU to load the slot `hash` starts probing at.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if self.slots.is_empty() {
            return;
        }
        let slot = &self.slots[self.home(hash)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint; it never faults and reads nothing into Rust's view.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>((slot as *const u64).cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// Adds `position` under `hash`. The caller guarantees the id is not present.
    pub fn insert(&mut self, hash: u64, position: u32, hash_of: impl Fn(u32) -> u64) {
        assert!((position as usize) < POSITIONS_MAX);
        self.reserve(1, hash_of);
        self.place(slot_value(hash, position), hash);
        self.len += 1;
    }

    fn place(&mut self, value: u64, hash: u64) {
        let mut i = self.home(hash);
        while self.slots[i] != EMPTY {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = value;
    }

    /// Removes `position` (stored under `hash`). Later entries of the probe run shift back so
    /// that every remaining entry stays reachable.
    pub fn remove(&mut self, hash: u64, position: u32, hash_of: impl Fn(u32) -> u64) {
        let mask = self.mask();
        let mut hole = self.home(hash);
        while self.slots[hole] == EMPTY || slot_position(self.slots[hole]) != position {
            assert!(
                self.slots[hole] != EMPTY,
                "removing a position that is not indexed"
            );
            hole = (hole + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        let mut i = (hole + 1) & mask;
        while self.slots[i] != EMPTY {
            let home = self.home(hash_of(slot_position(self.slots[i])));
            // Move the entry into the hole if the hole lies on its probe path (home..=i, cyclic).
            let distance_to_entry = i.wrapping_sub(home) & mask;
            let distance_to_hole = hole.wrapping_sub(home) & mask;
            if distance_to_hole < distance_to_entry {
                self.slots[hole] = self.slots[i];
                self.slots[i] = EMPTY;
                hole = i;
            }
            i = (i + 1) & mask;
        }
    }

    /// Makes room for `additional` more entries without growing later.
    pub fn reserve(&mut self, additional: usize, hash_of: impl Fn(u32) -> u64) {
        let needed = self.len + additional;
        if needed * 8 <= self.slots.len() * LOAD_EIGHTHS_MAX {
            return;
        }
        let mut capacity = self.slots.len().max(CAPACITY_MIN);
        while needed * 8 > capacity * LOAD_EIGHTHS_MAX {
            capacity *= 2;
        }
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; capacity]);
        for slot in old.into_iter().filter(|&s| s != EMPTY) {
            let position = slot_position(slot);
            let hash = hash_of(position);
            self.place(slot_value(hash, position), hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A deliberately weak hash so that probe runs collide and wrap around.
    fn weak_hash(id: u128) -> u64 {
        let h = (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h & 0xffff_ffff_0000_0000) | (id as u64 % 7)
    }

    proptest! {
        /// Inserting and removing (in any order) agrees with a map, including under heavy
        /// collisions and growth.
        #[test]
        fn index_agrees_with_a_map(ops in proptest::collection::vec((any::<bool>(), 0u128..64), 1..400)) {
            let mut ids: Vec<u128> = Vec::new(); // position -> id
            let mut live = std::collections::HashMap::new(); // id -> position
            let mut index = IdIndex::default();
            for (insert, id) in ops {
                let key_of = |ids: &Vec<u128>| { let ids = ids.clone(); move |p: u32| ids[p as usize] };
                if insert && !live.contains_key(&id) {
                    ids.push(id);
                    let position = (ids.len() - 1) as u32;
                    let snapshot = ids.clone();
                    index.insert(weak_hash(id), position, |p| weak_hash(snapshot[p as usize]));
                    live.insert(id, position);
                } else if let Some(position) = live.remove(&id) {
                    let snapshot = ids.clone();
                    index.remove(weak_hash(id), position, |p| weak_hash(snapshot[p as usize]));
                }
                for probe in 0u128..64 {
                    prop_assert_eq!(index.find(weak_hash(probe), probe, key_of(&ids)), live.get(&probe).copied());
                }
                prop_assert_eq!(index.len(), live.len());
            }
        }
    }
}
