//! The trainer's pair index table: an open-addressing hash table from a pair key to a value,
//! with linear probing and backward-shift deletion.
//!
//! It exists instead of a `HashMap` for one reason: a caller that knows the keys it will look up
//! next can [`prefetch`](PairTable::prefetch) their buckets, so that a merge's few hundred
//! index updates wait on memory together instead of one after another (the index of a large
//! corpus is several times the size of the last-level cache, and each lookup is otherwise a
//! miss). Keys and values share a bucket, so a lookup that finds its key at home touches one
//! cache line.

/// A key no pair has: `pair_key` of two ids below `u32::MAX`.
const EMPTY: u64 = u64::MAX;

/// Buckets in a new table.
const MIN_BUCKETS: usize = 64;

struct Bucket<V> {
    key: u64,
    value: V,
}

pub(crate) struct PairTable<V> {
    buckets: Vec<Bucket<V>>,
    /// `64 - log2(buckets.len())`: the home bucket is the top bits of the key's hash.
    shift: u32,
    len: usize,
}

impl<V: Default> Default for PairTable<V> {
    fn default() -> Self {
        Self::with_buckets(MIN_BUCKETS)
    }
}

impl<V: Default> PairTable<V> {
    fn with_buckets(n: usize) -> Self {
        debug_assert!(n.is_power_of_two());
        PairTable {
            buckets: (0..n)
                .map(|_| Bucket {
                    key: EMPTY,
                    value: V::default(),
                })
                .collect(),
            shift: 64 - n.trailing_zeros(),
            len: 0,
        }
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The home bucket of `key`. A multiplicative hash with a different constant from the one
    /// that picks the index shard, so that the keys of one shard still spread over its table.
    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> self.shift) as usize
    }

    /// The bucket holding `key`, or the empty bucket where it would go.
    #[inline]
    fn probe(&self, key: u64) -> Result<usize, usize> {
        debug_assert_ne!(key, EMPTY);
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            let k = self.buckets[i].key;
            if k == key {
                return Ok(i);
            }
            if k == EMPTY {
                return Err(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Hints the CPU to fetch the home bucket of `key`.
    #[inline]
    pub(crate) fn prefetch(&self, key: u64) {
        crate::train::prefetch(self.buckets.as_ptr().wrapping_add(self.home(key)));
    }

    pub(crate) fn get(&self, key: u64) -> Option<&V> {
        self.probe(key).ok().map(|i| &self.buckets[i].value)
    }

    pub(crate) fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        self.probe(key).ok().map(|i| &mut self.buckets[i].value)
    }

    /// The value of `key`, inserted as `V::default()` first when absent.
    #[inline]
    pub(crate) fn get_or_default(&mut self, key: u64) -> &mut V {
        let i = match self.probe(key) {
            Ok(i) => i,
            Err(i) => self.insert_at(i, key, V::default()),
        };
        &mut self.buckets[i].value
    }

    /// Inserts `key` (absent: `at` is [`PairTable::probe`]'s empty bucket for it); returns its
    /// bucket.
    fn insert_at(&mut self, at: usize, key: u64, value: V) -> usize {
        // Load factor at most 3/4: linear probing stays short.
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            self.grow();
            let i = self.probe(key).expect_err("absent");
            self.place(i, key, value)
        } else {
            self.place(at, key, value)
        }
    }

    #[inline]
    fn place(&mut self, i: usize, key: u64, value: V) -> usize {
        self.buckets[i] = Bucket { key, value };
        self.len += 1;
        i
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, Self::with_buckets(self.buckets.len() * 2));
        for b in old.buckets {
            if b.key != EMPTY {
                let i = self.probe(b.key).expect_err("keys are distinct");
                self.place(i, b.key, b.value);
            }
        }
    }

    /// Removes `key` if present, returning its value.
    pub(crate) fn remove(&mut self, key: u64) -> Option<V> {
        let i = self.probe(key).ok()?;
        Some(self.remove_at(i))
    }

    /// Empties bucket `i` and shifts back the entries of its probe run that may move into it,
    /// so that no tombstones are left.
    fn remove_at(&mut self, mut i: usize) -> V {
        let mask = self.mask();
        let value = std::mem::take(&mut self.buckets[i].value);
        self.buckets[i].key = EMPTY;
        self.len -= 1;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let k = self.buckets[j].key;
            if k == EMPTY {
                break;
            }
            // The entry at `j` may move to the hole at `i` if `i` lies on its probe path, i.e.
            // between its home and `j` (cyclically).
            let h = self.home(k);
            if (j.wrapping_sub(h) & mask) >= (j.wrapping_sub(i) & mask) {
                self.buckets.swap(i, j);
                i = j;
            }
        }
        value
    }

    /// The entry for `key`: found, or absent (with the bucket where it would go).
    #[inline]
    pub(crate) fn entry(&mut self, key: u64) -> Entry<'_, V> {
        match self.probe(key) {
            Ok(at) => Entry::Occupied(Occupied { table: self, at }),
            Err(at) => Entry::Vacant(Vacant {
                table: self,
                at,
                key,
            }),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.buckets
            .iter()
            .filter(|b| b.key != EMPTY)
            .map(|b| (b.key, &b.value))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

pub(crate) enum Entry<'a, V> {
    Occupied(Occupied<'a, V>),
    Vacant(Vacant<'a, V>),
}

pub(crate) struct Occupied<'a, V> {
    table: &'a mut PairTable<V>,
    at: usize,
}

impl<V: Default> Occupied<'_, V> {
    pub(crate) fn get_mut(&mut self) -> &mut V {
        &mut self.table.buckets[self.at].value
    }

    pub(crate) fn remove(self) -> V {
        self.table.remove_at(self.at)
    }
}

pub(crate) struct Vacant<'a, V> {
    table: &'a mut PairTable<V>,
    at: usize,
    key: u64,
}

impl<V: Default> Vacant<'_, V> {
    pub(crate) fn insert(self, value: V) {
        self.table.insert_at(self.at, self.key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Random inserts, updates and removals agree with a `HashMap`, across many growths; a
    /// small key set at a high load factor gives long probe runs (some wrapping around the
    /// end of the table) and many backward shifts.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut t: PairTable<i64> = PairTable::default();
        let mut m: HashMap<u64, i64> = HashMap::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct keys (many hits and removals), in two shapes.
            let key = if step % 3 == 0 {
                (x % 512) << 40
            } else {
                x % 4096
            };
            match x >> 61 {
                0..=3 => {
                    *t.get_or_default(key) += 1;
                    *m.entry(key).or_default() += 1;
                }
                4 => assert_eq!(t.remove(key), m.remove(&key)),
                5 => match t.entry(key) {
                    Entry::Occupied(mut e) => {
                        *e.get_mut() -= 1;
                        if *e.get_mut() <= 0 {
                            e.remove();
                            m.remove(&key);
                        } else {
                            *m.get_mut(&key).expect("present") -= 1;
                        }
                    }
                    Entry::Vacant(e) => {
                        assert!(!m.contains_key(&key));
                        e.insert(7);
                        m.insert(key, 7);
                    }
                },
                _ => assert_eq!(t.get(key), m.get(&key)),
            }
            assert_eq!(t.len(), m.len());
        }
        let mut a: Vec<(u64, i64)> = t.iter().map(|(k, &v)| (k, v)).collect();
        let mut b: Vec<(u64, i64)> = m.into_iter().collect();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        for (k, v) in b {
            assert_eq!(t.get_mut(k).copied(), Some(v));
        }
    }
}
