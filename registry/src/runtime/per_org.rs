//! What the runtime keeps per release (loaded releases, recent refusals),
//! bounded in total without letting one organization push out another's:
//! when the bound is reached, the organization holding the most entries
//! starts over, so a tenant loading release after release evicts its own.

use std::collections::HashMap;

/// Entries by organization, then by key; at most `max` in all.
#[derive(Debug)]
pub(super) struct PerOrg<V> {
    orgs: HashMap<String, HashMap<String, V>>,
    total: usize,
    max: usize,
}

impl<V: Clone> PerOrg<V> {
    pub(super) fn new(max: usize) -> PerOrg<V> {
        PerOrg {
            orgs: HashMap::new(),
            total: 0,
            max: max.max(1),
        }
    }

    pub(super) fn get(&self, org: &str, key: &str) -> Option<V> {
        self.orgs.get(org)?.get(key).cloned()
    }

    pub(super) fn insert(&mut self, org: &str, key: &str, value: V) {
        let present = self
            .orgs
            .get(org)
            .is_some_and(|keys| keys.contains_key(key));
        if !present && self.total >= self.max {
            // The largest organization starts over; between equals, the one
            // inserting.
            let largest = self
                .orgs
                .iter()
                .max_by_key(|(name, keys)| (keys.len(), name.as_str() == org))
                .map(|(name, _)| name.clone());
            if let Some(largest) = largest
                && let Some(evicted) = self.orgs.remove(&largest)
            {
                self.total -= evicted.len();
            }
        }
        let keys = self.orgs.entry(org.to_owned()).or_default();
        if keys.insert(key.to_owned(), value).is_none() {
            self.total += 1;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_org_loading_past_the_bound_evicts_its_own_entries_not_anothers() {
        let mut cache = PerOrg::new(4);
        cache.insert("globex", "g", 0);
        for i in 0..3 {
            cache.insert("acme", &format!("a{i}"), i);
        }
        assert_eq!(cache.len(), 4);
        // The fifth entry: acme holds the most and starts over.
        cache.insert("acme", "a3", 3);
        assert_eq!(cache.get("globex", "g"), Some(0));
        assert_eq!(cache.get("acme", "a0"), None);
        assert_eq!(cache.get("acme", "a3"), Some(3));
        assert_eq!(cache.len(), 2);
        // However long acme goes on, globex keeps its entry.
        for i in 4..100 {
            cache.insert("acme", &format!("a{i}"), i);
            assert_eq!(cache.get("globex", "g"), Some(0));
            assert!(cache.len() <= 4);
        }
    }

    #[test]
    fn replacing_an_entry_does_not_evict() {
        let mut cache = PerOrg::new(2);
        cache.insert("acme", "a", 1);
        cache.insert("globex", "g", 1);
        cache.insert("acme", "a", 2);
        assert_eq!(cache.get("acme", "a"), Some(2));
        assert_eq!(cache.get("globex", "g"), Some(1));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn between_equals_the_inserting_org_starts_over() {
        let mut cache = PerOrg::new(2);
        cache.insert("acme", "a", 1);
        cache.insert("globex", "g", 1);
        cache.insert("globex", "h", 2);
        assert_eq!(cache.get("acme", "a"), Some(1));
        assert_eq!(cache.get("globex", "h"), Some(2));
        assert_eq!(cache.get("globex", "g"), None);
    }
}
