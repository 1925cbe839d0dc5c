//! Remembers the site's answer for a set of cookies for a short while.
//!
//! A page load often opens several connections with the same cookies, and a
//! reconnect storm after a deploy opens thousands. Asking the site once per
//! cookie set and reusing the answer for `auth_cache_ttl` keeps that load off
//! the site's PHP workers.
//!
//! Keys are SHA-256 digests of the namespace and the Cookie header, so the
//! cache never holds a cookie value, and two different cookie sets cannot
//! share an entry by accident. The cache is bounded: when full, expired
//! entries are dropped first, then the entry closest to expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::Identity;

pub type Key = [u8; 32];

/// What the site said about a cookie set: a user, or a guest (`None`).
pub type Verdict = Option<Identity>;

struct Entry {
    verdict: Verdict,
    expires: Instant,
}

pub struct AuthCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl AuthCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn key(namespace: &str, cookie: &str) -> Key {
        let mut hasher = Sha256::new();
        hasher.update(namespace.as_bytes());
        // The namespace cannot hold a NUL, so this separator makes the
        // (namespace, cookie) split unambiguous.
        hasher.update([0]);
        hasher.update(cookie.as_bytes());
        hasher.finalize().into()
    }

    pub fn get(&self, key: &Key) -> Option<Verdict> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(key)
            .filter(|entry| entry.expires > Instant::now())
            .map(|entry| entry.verdict.clone())
    }

    pub fn insert(&self, key: Key, verdict: Verdict) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, entry| entry.expires > now);
            if entries.len() >= self.capacity
                && let Some(soonest) = entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.expires)
                    .map(|(key, _)| *key)
            {
                entries.remove(&soonest);
            }
        }
        entries.insert(
            key,
            Entry {
                verdict,
                expires: now + self.ttl,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> Verdict {
        Some(Identity {
            user_id: id.to_owned(),
            rooms: Vec::new(),
        })
    }

    #[test]
    fn keys_differ_by_namespace_and_cookie() {
        assert_ne!(AuthCache::key("/", "a=1"), AuthCache::key("/chat", "a=1"));
        assert_ne!(AuthCache::key("/", "a=1"), AuthCache::key("/", "a=2"));
    }

    #[test]
    fn entries_expire() {
        let cache = AuthCache::new(Duration::from_millis(20), 10);
        let key = AuthCache::key("/", "a=1");
        cache.insert(key, user("1"));
        assert_eq!(cache.get(&key), Some(user("1")));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get(&key), None);
    }

    #[test]
    fn stays_within_capacity() {
        let cache = AuthCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            cache.insert(AuthCache::key("/", &i.to_string()), user("x"));
        }
        assert_eq!(cache.entries.lock().unwrap().len(), 3);
    }

    #[test]
    fn zero_ttl_disables_caching() {
        let cache = AuthCache::new(Duration::ZERO, 10);
        let key = AuthCache::key("/", "a=1");
        cache.insert(key, user("1"));
        assert_eq!(cache.get(&key), None);
    }
}
