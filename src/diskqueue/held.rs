//! The records a queue has handed out and not yet had back, by number.
//!
//! Every delivery adds one and every FIN removes one, under the channel's
//! lock, so this is on the hot path of consuming. Numbers are given in
//! increasing order and mostly returned in about that order, so a ring
//! indexed by number from the oldest one still held does both in constant
//! time (an ordered map cost a tenth of delivery's CPU). A record held for
//! long (a slow consumer can keep one up to `--max-msg-timeout`) would
//! make the ring span everything handed out since; once the ring is mostly
//! empty slots, its oldest live entries move to an ordered map, so memory
//! stays proportional to what is held.

use super::Position;
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Default)]
pub struct HeldRecords {
    /// The number of `ring[0]`.
    base: u64,
    /// Numbers from `base` on: `None` for returned ones and numbers never
    /// held. Never starts with `None`.
    ring: VecDeque<Option<Position>>,
    /// `Some` slots in `ring`.
    ring_live: usize,
    /// Held numbers below `base`.
    old: BTreeMap<u64, Position>,
}

/// Empty slots allowed beyond twice the live ones before the oldest live
/// entries move out of the ring.
const SLACK: usize = 1024;

impl HeldRecords {
    /// Hold `id` (greater than every number held before) starting at `at`.
    pub fn insert(&mut self, id: u64, at: Position) {
        if self.ring.is_empty() {
            self.base = id;
        }
        let end = self.base + self.ring.len() as u64;
        debug_assert!(id >= end, "held numbers must increase");
        for _ in end..id {
            self.ring.push_back(None);
        }
        self.ring.push_back(Some(at));
        self.ring_live += 1;
        self.bound_ring();
    }

    /// Where `id` starts, if held.
    pub fn get(&self, id: u64) -> Option<Position> {
        if id < self.base {
            return self.old.get(&id).copied();
        }
        self.ring.get((id - self.base) as usize).copied().flatten()
    }

    /// Return `id`; false if it was not held.
    pub fn remove(&mut self, id: u64) -> bool {
        if id < self.base {
            return self.old.remove(&id).is_some();
        }
        let Some(slot) = self.ring.get_mut((id - self.base) as usize) else {
            return false;
        };
        if slot.take().is_none() {
            return false;
        }
        self.ring_live -= 1;
        self.trim();
        self.bound_ring();
        true
    }

    /// The lowest number held and where it starts.
    pub fn first(&self) -> Option<(u64, Position)> {
        if let Some((&id, &at)) = self.old.first_key_value() {
            return Some((id, at));
        }
        let at = (*self.ring.front()?)?;
        Some((self.base, at))
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ring_live + self.old.len()
    }

    pub fn clear(&mut self) {
        *self = HeldRecords::default();
    }

    /// Drop the leading empty slots.
    fn trim(&mut self) {
        while let Some(None) = self.ring.front() {
            self.ring.pop_front();
            self.base += 1;
        }
    }

    /// Keep the ring at most [`SLACK`] slots more than twice its live
    /// entries, moving the oldest live ones to `old` when it is not.
    fn bound_ring(&mut self) {
        if self.ring.len() <= 2 * self.ring_live + SLACK {
            return;
        }
        while self.ring.len() > 2 * self.ring_live {
            match self.ring.pop_front() {
                Some(Some(at)) => {
                    self.old.insert(self.base, at);
                    self.ring_live -= 1;
                }
                Some(None) => {}
                None => break,
            }
            self.base += 1;
        }
        self.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn returned_in_order_the_ring_stays_short() {
        let mut h = HeldRecords::default();
        for id in 0..10_000u64 {
            h.insert(id, (0, id * 10));
            if id >= 100 {
                assert!(h.remove(id - 100));
            }
            assert!(h.ring.len() <= 101);
        }
        assert_eq!(h.first(), Some((9_900, (0, 99_000))));
        assert_eq!(h.len(), 100);
        assert!(h.old.is_empty());
    }

    #[test]
    fn one_held_for_long_moves_out_of_the_ring() {
        let mut h = HeldRecords::default();
        h.insert(0, (0, 0));
        for id in 1..100_000u64 {
            h.insert(id, (0, id));
            assert!(h.remove(id));
        }
        assert!(h.ring.len() <= SLACK + 2, "ring of {}", h.ring.len());
        assert_eq!(h.first(), Some((0, (0, 0))));
        assert_eq!(h.get(0), Some((0, 0)));
        assert!(h.remove(0));
        assert_eq!(h.first(), None);
        assert_eq!(h.len(), 0);
        assert!(!h.remove(0));
    }

    proptest! {
        /// Against an ordered map: any order of holding (with gaps) and
        /// returning gives the same answers.
        #[test]
        fn behaves_as_an_ordered_map(ops in proptest::collection::vec((any::<bool>(), 0u64..4, any::<u16>()), 0..3000)) {
            let mut h = HeldRecords::default();
            let mut model = BTreeMap::new();
            let mut next = 0u64;
            for (hold, gap, pick) in ops {
                if hold || model.is_empty() {
                    next += gap;
                    h.insert(next, (next / 7, next));
                    model.insert(next, (next / 7, next));
                    next += 1;
                } else {
                    // Mostly the oldest, sometimes any, sometimes unknown.
                    let id = match pick % 4 {
                        0 | 1 => *model.keys().next().unwrap(),
                        2 => *model.keys().nth(pick as usize % model.len()).unwrap(),
                        _ => next + pick as u64,
                    };
                    prop_assert_eq!(h.remove(id), model.remove(&id).is_some());
                }
                prop_assert_eq!(h.len(), model.len());
                prop_assert_eq!(h.first(), model.first_key_value().map(|(&k, &v)| (k, v)));
                prop_assert!(h.ring.len() <= 2 * h.ring_live + SLACK + 4);
            }
            for (&id, &at) in &model {
                prop_assert_eq!(h.get(id), Some(at));
            }
        }
    }
}
