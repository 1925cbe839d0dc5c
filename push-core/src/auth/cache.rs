//! Remembers the site's answer for a set of cookies, and asks the site only
//! once for lookups of the same cookies that happen at the same time.
//!
//! A page load often opens several connections with the same cookies, and a
//! reconnect storm after a deploy opens thousands at once: every tab of
//! every user. Two things keep that load off the site's PHP workers:
//!
//! - answers are reused for `auth_cache_ttl`, so a tab that connects later
//!   is answered from memory;
//! - lookups of the same key that overlap wait for the one call already in
//!   flight instead of making their own. This holds even with the cache off
//!   (`auth_cache_ttl = 0`): the answer is then shared with the lookups that
//!   waited for it, and forgotten at once.
//!
//! Both come from `moka`'s concurrent cache, whose `try_get_with` merges
//! lookups of one key and evicts by size without a global lock.
//!
//! Only definitive answers (a user, a guest) are kept. "The site could not
//! be asked" is handed to the lookups that waited for that call, and then
//! forgotten, so the next lookup asks again and the daemon recovers as soon
//! as the site does.
//!
//! Keys are SHA-256 digests of the namespace and the Cookie header, so the
//! cache never holds a cookie value, and two different cookie sets cannot
//! share an entry by accident.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::future::Cache;
use sha2::{Digest, Sha256};

use super::Identity;

pub type Key = [u8; 32];

/// What the site said about a cookie set: a user, or a guest (`None`).
pub type Verdict = Option<Identity>;

/// moka refuses (panics on) a TTL over 1000 years. The config refuses a TTL
/// over a day; an embedding program that builds settings by hand gets its
/// TTL cut to that.
const LONGEST_TTL: Duration = crate::config::defaults::AUTH_CACHE_TTL_MAX;

/// Where a lookup's verdict came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A stored answer.
    Cache,
    /// This lookup waited for an identical one's call to the site.
    Merged,
    /// This lookup asked the site itself.
    Asked,
}

/// Why a lookup has no verdict.
#[derive(Debug)]
pub enum LookupError<E> {
    /// The call failed: this lookup's own, or the one it waited for.
    Failed(Arc<E>),
    /// Another lookup's call was still going after this long.
    GaveUpWaiting(Duration),
}

pub struct AuthCache {
    answers: Cache<Key, Verdict>,
}

impl AuthCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        let answers = Cache::builder()
            .max_capacity(u64::try_from(capacity).unwrap_or(u64::MAX))
            .time_to_live(ttl.min(LONGEST_TTL))
            .build();
        Self { answers }
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

    /// The verdict for `key`: from the cache, from an identical lookup's call
    /// in flight, or else from `ask`. A failure of `ask` is shared with the
    /// lookups that waited for it, and not stored.
    ///
    /// With `patience`, a lookup waiting for another one's call gives up
    /// after that long. A lookup that is making the call itself never gives
    /// up here: dropping it would throw away a call the site may already
    /// have answered, and `ask` bounds its own time.
    pub async fn get_or_ask<E>(
        &self,
        key: Key,
        ask: impl Future<Output = Result<Verdict, E>>,
        patience: Option<Duration>,
    ) -> Result<(Verdict, Source), LookupError<E>>
    where
        E: Send + Sync + 'static,
    {
        // A plain read first, only to tell a stored answer from a merged one
        // in the metrics; try_get_with would return either the same way.
        if let Some(verdict) = self.answers.get(&key).await {
            return Ok((verdict, Source::Cache));
        }
        let asked = AtomicBool::new(false);
        let lookup = self.answers.try_get_with(key, async {
            asked.store(true, Ordering::Relaxed);
            ask.await
        });
        let verdict = match patience {
            None => lookup.await,
            Some(patience) => {
                let mut lookup = std::pin::pin!(lookup);
                tokio::select! {
                    verdict = &mut lookup => verdict,
                    () = tokio::time::sleep(patience) => {
                        if !asked.load(Ordering::Relaxed) {
                            return Err(LookupError::GaveUpWaiting(patience));
                        }
                        lookup.await
                    }
                }
            }
        }
        .map_err(LookupError::Failed)?;
        let source = if asked.load(Ordering::Relaxed) {
            Source::Asked
        } else {
            Source::Merged
        };
        Ok((verdict, source))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use futures_util::future::join_all;

    use super::*;

    fn user(id: &str) -> Verdict {
        Some(Identity {
            user_id: id.to_owned(),
            rooms: Vec::new(),
        })
    }

    /// A site that takes a while to answer, and counts its calls.
    async fn slow_site(
        calls: &AtomicUsize,
        answer: Result<Verdict, String>,
    ) -> Result<Verdict, String> {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer
    }

    #[test]
    fn keys_differ_by_namespace_and_cookie() {
        assert_ne!(AuthCache::key("/", "a=1"), AuthCache::key("/chat", "a=1"));
        assert_ne!(AuthCache::key("/", "a=1"), AuthCache::key("/", "a=2"));
    }

    #[tokio::test]
    async fn answers_are_reused_until_they_expire() {
        let cache = AuthCache::new(Duration::from_millis(100), 10);
        let key = AuthCache::key("/", "a=1");
        let calls = AtomicUsize::new(0);
        let first = cache
            .get_or_ask(key, slow_site(&calls, Ok(user("1"))), None)
            .await
            .unwrap();
        assert_eq!(first, (user("1"), Source::Asked));
        let second = cache
            .get_or_ask(key, slow_site(&calls, Ok(user("2"))), None)
            .await
            .unwrap();
        assert_eq!(second, (user("1"), Source::Cache));
        tokio::time::sleep(Duration::from_millis(150)).await;
        let third = cache
            .get_or_ask(key, slow_site(&calls, Ok(user("3"))), None)
            .await
            .unwrap();
        assert_eq!(third, (user("3"), Source::Asked));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn overlapping_lookups_make_one_call_even_with_the_cache_off() {
        for (ttl, capacity) in [
            (Duration::from_secs(60), 10),
            (Duration::ZERO, 10),
            (Duration::from_secs(60), 0),
        ] {
            let cache = AuthCache::new(ttl, capacity);
            let key = AuthCache::key("/", "a=1");
            let calls = AtomicUsize::new(0);
            let lookups =
                (0..8).map(|_| cache.get_or_ask(key, slow_site(&calls, Ok(user("1"))), None));
            let results = join_all(lookups).await;
            assert_eq!(
                calls.load(Ordering::SeqCst),
                1,
                "ttl {ttl:?}, capacity {capacity}"
            );
            let asked = results
                .iter()
                .filter(|result| result.as_ref().unwrap().1 == Source::Asked)
                .count();
            assert_eq!(asked, 1);
            assert!(
                results
                    .iter()
                    .all(|result| result.as_ref().unwrap().0 == user("1"))
            );

            if ttl.is_zero() || capacity == 0 {
                // Nothing kept: a later lookup asks again.
                cache.answers.run_pending_tasks().await;
                cache
                    .get_or_ask(key, slow_site(&calls, Ok(user("1"))), None)
                    .await
                    .unwrap();
                assert_eq!(
                    calls.load(Ordering::SeqCst),
                    2,
                    "ttl {ttl:?}, capacity {capacity}"
                );
            }
        }
    }

    #[tokio::test]
    async fn failures_are_shared_with_waiters_but_not_kept() {
        let cache = AuthCache::new(Duration::from_secs(60), 10);
        let key = AuthCache::key("/", "a=1");
        let calls = AtomicUsize::new(0);
        let lookups =
            (0..4).map(|_| cache.get_or_ask(key, slow_site(&calls, Err("503".to_owned())), None));
        let results = join_all(lookups).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(
            results
                .iter()
                .all(|result| matches!(result, Err(LookupError::Failed(e)) if **e == "503"))
        );
        let retry = cache
            .get_or_ask(key, slow_site(&calls, Ok(user("1"))), None)
            .await
            .unwrap();
        assert_eq!(retry, (user("1"), Source::Asked));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn only_waiters_give_up_waiting() {
        let cache = AuthCache::new(Duration::from_secs(60), 10);
        let key = AuthCache::key("/", "a=1");
        let calls = AtomicUsize::new(0);
        let patience = Some(Duration::from_millis(10));
        // The first lookup makes the 50 ms call and sees it through; the
        // second only waits for it, and gives up.
        let (asker, waiter) = tokio::join!(
            cache.get_or_ask(key, slow_site(&calls, Ok(user("1"))), patience),
            cache.get_or_ask(key, slow_site(&calls, Ok(user("1"))), patience),
        );
        assert_eq!(asker.unwrap(), (user("1"), Source::Asked));
        assert!(matches!(waiter, Err(LookupError::GaveUpWaiting(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stays_within_capacity() {
        let cache = AuthCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            let key = AuthCache::key("/", &i.to_string());
            cache
                .get_or_ask(key, async { Ok::<_, String>(user("x")) }, None)
                .await
                .unwrap();
        }
        cache.answers.run_pending_tasks().await;
        assert!(cache.answers.entry_count() <= 3);
    }
}
