//! util::vecmap — a map kept in a vector, for the few small maps of the
//! daemon (its children, the scanners' hints) and of a queue run (its
//! lanes).
//!
//! These maps hold tens of entries, at most a few thousand (bounded by
//! their users), and are looked up by a linear search. std's HashMap
//! would bring hashbrown, SipHash and the random seed into the router
//! binary (about 8 KB on mipsel) for no measurable gain at these sizes.

/// Keys are unique; order is not kept (`remove` swaps the last entry in).
#[derive(Debug)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K: PartialEq, V> VecMap<K, V> {
    pub const fn new() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }

    /// Insert or replace; the old value of `key`, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.swap_remove(i).1)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<K: PartialEq, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::VecMap;

    #[test]
    fn insert_get_remove() {
        let mut m = VecMap::new();
        assert!(m.is_empty());
        assert_eq!(m.insert(1, "a"), None);
        assert_eq!(m.insert(2, "b"), None);
        assert_eq!(m.insert(3, "c"), None);
        assert_eq!(m.insert(2, "B"), Some("b"));
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(&2), Some(&"B"));
        assert_eq!(m.remove(&1), Some("a"));
        assert_eq!(m.remove(&1), None);
        assert_eq!(m.get(&1), None);
        let mut vals: Vec<_> = m.values().copied().collect();
        vals.sort();
        assert_eq!(vals, ["B", "c"]);
        assert_eq!(m.iter().count(), 2);
        m.clear();
        assert!(m.is_empty() && m.get(&3).is_none());
    }
}
