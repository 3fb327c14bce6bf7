//! Per-session maps keyed by protocol-level statement and portal names.
//!
//! Most drivers use only the unnamed statement and the unnamed portal, and
//! look them up several times per query. The unnamed entry is therefore
//! kept in a field of its own, so the common case neither hashes nor
//! allocates a key.

use foldhash::{HashMap, HashMapExt};

/// Values by name. Names come from the client, so the hasher is seeded per
/// process. It is faster than the standard library's on short names.
pub struct NameMap<V> {
    unnamed: Option<V>,
    named: HashMap<Vec<u8>, V>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap { unnamed: None, named: HashMap::new() }
    }
}

impl<V> NameMap<V> {
    pub fn get(&self, name: &[u8]) -> Option<&V> {
        if name.is_empty() {
            return self.unnamed.as_ref();
        }
        self.named.get(name)
    }

    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut V> {
        if name.is_empty() {
            return self.unnamed.as_mut();
        }
        self.named.get_mut(name)
    }

    pub fn insert(&mut self, name: &[u8], value: V) {
        if name.is_empty() {
            self.unnamed = Some(value);
        } else {
            self.named.insert(name.to_vec(), value);
        }
    }

    /// Returns the entry under `name`, created with `V::default()` when missing.
    pub fn get_or_default(&mut self, name: &[u8]) -> &mut V
    where
        V: Default,
    {
        if name.is_empty() {
            return self.unnamed.get_or_insert_with(V::default);
        }
        self.named.entry(name.to_vec()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::NameMap;

    #[test]
    fn unnamed_and_named_entries_are_separate() {
        let mut map = NameMap::default();
        map.insert(b"", 1);
        map.insert(b"s1", 2);
        *map.get_or_default(b"s2") += 3;
        *map.get_or_default(b"") += 10;

        assert_eq!(map.get(b""), Some(&11));
        assert_eq!(map.get(b"s1"), Some(&2));
        assert_eq!(map.get(b"s2"), Some(&3));
        assert_eq!(map.get(b"s3"), None);
    }
}
