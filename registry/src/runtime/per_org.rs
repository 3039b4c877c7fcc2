//! What the runtime keeps per release (loaded releases, recent refusals),
//! bounded per organization: an organization at its bound starts over, and
//! no organization's entries are ever evicted by another's.

use std::collections::HashMap;

/// Entries by organization, then by key; at most `max` per organization.
#[derive(Debug)]
pub(super) struct PerOrg<V> {
    orgs: HashMap<String, HashMap<String, V>>,
    max: usize,
}

impl<V: Clone> PerOrg<V> {
    pub(super) fn new(max: usize) -> PerOrg<V> {
        PerOrg {
            orgs: HashMap::new(),
            max: max.max(1),
        }
    }

    pub(super) fn get(&self, org: &str, key: &str) -> Option<V> {
        self.orgs.get(org)?.get(key).cloned()
    }

    pub(super) fn insert(&mut self, org: &str, key: &str, value: V) {
        let keys = self.orgs.entry(org.to_owned()).or_default();
        if keys.len() >= self.max && !keys.contains_key(key) {
            keys.clear();
        }
        keys.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_org_at_its_bound_starts_over_without_touching_another() {
        let mut cache = PerOrg::new(4);
        for i in 0..3 {
            cache.insert("globex", &format!("g{i}"), i);
        }
        for i in 0..4 {
            cache.insert("acme", &format!("a{i}"), i);
        }
        // The fifth of acme's: acme starts over.
        cache.insert("acme", "a4", 4);
        assert_eq!(cache.get("acme", "a0"), None);
        assert_eq!(cache.get("acme", "a4"), Some(4));
        // However long acme goes on, globex keeps all of its entries.
        for i in 5..100 {
            cache.insert("acme", &format!("a{i}"), i);
            for g in 0..3 {
                assert_eq!(cache.get("globex", &format!("g{g}")), Some(g));
            }
            assert!(cache.orgs["acme"].len() <= 4);
        }
    }

    #[test]
    fn replacing_an_entry_does_not_start_over() {
        let mut cache = PerOrg::new(2);
        cache.insert("acme", "a", 1);
        cache.insert("acme", "b", 1);
        cache.insert("acme", "a", 2);
        assert_eq!(cache.get("acme", "a"), Some(2));
        assert_eq!(cache.get("acme", "b"), Some(1));
    }
}
