//! The first entries of an order over many keys, kept exactly while most
//! changes happen far behind them.
//!
//! The dashboard needs the five customer names with the most incidents and
//! the five with the highest volume, out of 100,000 names, and every
//! incident moves one name's key. Keeping all of them in one ordered set
//! costs each incident two walks down a tree of 100,000 entries, and on a
//! machine whose other core is busy writing, those walks are mostly cache
//! misses. [`Leaders`] keeps only the keys before a moving `bound` in its
//! ordered set, between `floor` and `capacity` of them. A change behind
//! the bound costs one comparison. When the set outgrows its capacity, the
//! bound moves forward and the keys behind it are dropped; when it falls
//! below its floor, it is refilled from every key, which takes at least
//! `capacity / 2 - floor` changes to happen again.
//!
//! Invariant: the set holds exactly the keys before the bound (all keys if
//! there is none), and at least `floor` of them whenever there is a bound.
//! The first `floor` keys of the set are therefore the first `floor` keys
//! of the whole order.

use std::collections::BTreeSet;

/// The leading keys of an order (see the module docs).
#[derive(Debug, Clone)]
pub struct Leaders<K> {
    kept: BTreeSet<K>,
    /// The first key not kept; `None` while every key is kept.
    bound: Option<K>,
    floor: usize,
    capacity: usize,
}

impl<K: Ord + Clone> Leaders<K> {
    /// Keeps at least `floor` and at most `capacity` keys; `capacity` must
    /// be at least twice `floor` for a refill to last.
    pub fn new(floor: usize, capacity: usize) -> Self {
        Leaders {
            kept: BTreeSet::new(),
            bound: None,
            floor,
            capacity: capacity.max(2 * floor).max(2),
        }
    }

    fn holds(&self, key: &K) -> bool {
        self.bound.as_ref().is_none_or(|bound| key < bound)
    }

    /// One key of the order changed from `old` to `new` (`None`: it was
    /// not there, or is gone). Answers true if the set fell below its
    /// floor and must be [`refill`](Leaders::refill)ed from every key.
    #[must_use]
    pub fn replace(&mut self, old: Option<K>, new: Option<K>) -> bool {
        if let Some(old) = old.filter(|old| self.holds(old)) {
            self.kept.remove(&old);
        }
        if let Some(new) = new.filter(|new| self.holds(new)) {
            self.kept.insert(new);
        }
        if self.kept.len() > self.capacity {
            self.shrink();
        }
        self.bound.is_some() && self.kept.len() < self.floor
    }

    /// Moves the bound forward to keep half the capacity.
    fn shrink(&mut self) {
        let Some(first_dropped) = self.kept.iter().nth(self.capacity / 2).cloned() else {
            return;
        };
        drop(self.kept.split_off(&first_dropped));
        self.bound = Some(first_dropped);
    }

    /// Starts over from every key of the order (each exactly once).
    pub fn refill(&mut self, keys: impl Iterator<Item = K>) {
        let mut keys: Vec<K> = keys.collect();
        let keep = self.capacity / 2;
        self.bound = None;
        if keys.len() > keep {
            keys.select_nth_unstable(keep);
            self.bound = Some(keys.swap_remove(keep));
            keys.truncate(keep);
        }
        self.kept = keys.into_iter().collect();
    }

    /// The first `n` keys of the whole order. Only kept keys can be
    /// answered: fewer than `n` only if the order has fewer, or if `n` is
    /// more than the [`floor`](Leaders::floor).
    pub fn first(&self, n: usize) -> impl Iterator<Item = &K> {
        self.kept.iter().take(n)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Applies `(key, new value)` changes to keys `0..keys`, where a key's
    /// place in the order is `(value, key)` and a value of 0 removes it.
    fn check(floor: usize, capacity: usize, changes: &[(u8, u8)]) -> Result<(), TestCaseError> {
        let mut leaders = Leaders::new(floor, capacity);
        let mut values = std::collections::BTreeMap::new();
        for &(key, value) in changes {
            let old = values.get(&key).map(|v| (*v, key));
            let new = (value > 0).then_some((value, key));
            match new {
                Some((v, _)) => values.insert(key, v),
                None => values.remove(&key),
            };
            if leaders.replace(old, new) {
                leaders.refill(values.iter().map(|(k, v)| (*v, *k)));
            }
            let mut all: Vec<(u8, u8)> = values.iter().map(|(k, v)| (*v, *k)).collect();
            all.sort();
            let got: Vec<&(u8, u8)> = leaders.first(usize::MAX).collect();
            prop_assert!(got.len() >= floor.min(all.len()));
            let want: Vec<&(u8, u8)> = all.iter().take(got.len()).collect();
            prop_assert_eq!(got, want);
            prop_assert!(leaders.kept.len() <= leaders.capacity);
        }
        Ok(())
    }

    #[test]
    fn falling_below_the_floor_asks_for_a_refill_and_the_refill_restores_the_order() {
        let mut leaders = Leaders::new(1, 2);
        for k in [5, 3, 4] {
            assert!(!leaders.replace(None, Some(k)));
        }
        assert_eq!(
            leaders.bound,
            Some(4),
            "three keys outgrow a capacity of two"
        );
        assert_eq!(leaders.first(5).collect::<Vec<_>>(), [&3]);
        assert!(
            leaders.replace(Some(3), None),
            "no key before the bound is left"
        );
        leaders.refill([5, 4].into_iter());
        assert_eq!(leaders.first(1).collect::<Vec<_>>(), [&4]);
        assert_eq!(leaders.bound, Some(5));
    }

    proptest! {
        #[test]
        fn the_first_keys_always_equal_a_sort_of_every_key(
            floor in 1..4usize,
            extra in 0..6usize,
            changes in proptest::collection::vec((0..24u8, 0..12u8), 1..300),
        ) {
            check(floor, 2 * floor + extra, &changes)?;
        }
    }
}
