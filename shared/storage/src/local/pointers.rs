//! The local runtime's memory of gallery pointers. A public read of a published gallery starts
//! with its pointer (the version the public sees); on one machine every writer of pointers (the
//! API's publish, rollback and edits, the publisher, the rights sweep) runs in the one process
//! and shares one object store, so the pointers can live in memory without ever going stale: a
//! write through this store replaces the remembered value once the write is done, and a read
//! that raced a write is not remembered (decision 0012). In AWS the publisher writes pointers
//! from another function, so the API reads each one from S3 (behind the CDN).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use phoenix_domain::keys::is_published_pointer;
use phoenix_domain::ports::{ListPage, ObjectInfo, PresignedRequest, Presigner, PutOptions};
use phoenix_domain::{ObjectKey, ObjectStore, StoreError, StoreResult};

/// Pointers remembered at most; past it, an arbitrary one is forgotten (and read again when
/// asked: forgetting is always safe).
const REMEMBERED: usize = 10_000;

/// An object store that remembers the gallery pointers read and written through it; every other
/// key goes straight to `inner`. Correct only where every pointer write goes through this one
/// instance (the local runtime).
pub struct RememberedPointers<S> {
    inner: S,
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    /// Counts pointer writes: a read that started before one is not remembered.
    writes: u64,
    /// A pointer, or `None` for a gallery known to have none.
    pointers: HashMap<ObjectKey, Option<(ObjectInfo, Bytes)>>,
}

impl Memory {
    fn remember(&mut self, key: &ObjectKey, value: Option<(ObjectInfo, Bytes)>) {
        if self.pointers.len() >= REMEMBERED
            && !self.pointers.contains_key(key)
            && let Some(any) = self.pointers.keys().next().cloned()
        {
            self.pointers.remove(&any);
        }
        self.pointers.insert(key.clone(), value);
    }
}

impl<S> RememberedPointers<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, memory: Mutex::new(Memory::default()) }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a pointer write: what it left, or (the write failed, the object's state unknown)
    /// nothing, so the next read goes to the store.
    fn written(&self, key: &ObjectKey, left: Option<Option<(ObjectInfo, Bytes)>>) {
        let mut memory = self.memory();
        memory.writes += 1;
        match left {
            Some(value) => memory.remember(key, value),
            None => {
                memory.pointers.remove(key);
            }
        }
    }
}

#[async_trait]
impl<S: ObjectStore> Presigner for RememberedPointers<S> {
    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> StoreResult<PresignedRequest> {
        self.inner.presign_put(key, content_type, content_length, expires_in).await
    }

    async fn presign_get(&self, key: &ObjectKey, expires_in: Duration) -> StoreResult<PresignedRequest> {
        self.inner.presign_get(key, expires_in).await
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for RememberedPointers<S> {
    async fn put(&self, key: &ObjectKey, body: Bytes, options: PutOptions) -> StoreResult<ObjectInfo> {
        if !is_published_pointer(key) {
            return self.inner.put(key, body, options).await;
        }
        let result = self.inner.put(key, body.clone(), options).await;
        self.written(key, result.as_ref().ok().map(|info| Some((info.clone(), body))));
        result
    }

    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> StoreResult<(ObjectInfo, Bytes)> {
        if !is_published_pointer(key) {
            return self.inner.get(key, max_bytes).await;
        }
        let writes = {
            let memory = self.memory();
            match memory.pointers.get(key) {
                Some(Some((info, body))) if info.size <= max_bytes => return Ok((info.clone(), body.clone())),
                Some(None) => return Err(StoreError::NotFound),
                // Larger than asked for: the store says so, in its words.
                _ => memory.writes,
            }
        };
        let result = self.inner.get(key, max_bytes).await;
        let read = match &result {
            Ok(found) => Some(Some(found.clone())),
            Err(StoreError::NotFound) => Some(None),
            Err(_) => None,
        };
        let mut memory = self.memory();
        // A write since the read began may have made what was read stale: leave it unremembered.
        if let (Some(value), true) = (read, memory.writes == writes) {
            memory.remember(key, value);
        }
        result
    }

    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectInfo> {
        self.inner.head(key).await
    }

    async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
        if !is_published_pointer(key) {
            return self.inner.delete(key).await;
        }
        let result = self.inner.delete(key).await;
        self.written(key, result.as_ref().ok().map(|()| None));
        result
    }

    async fn list(&self, prefix: &str, cursor: Option<String>, limit: usize) -> StoreResult<ListPage> {
        self.inner.list(prefix, cursor, limit).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use phoenix_domain::GalleryId;
    use phoenix_domain::keys::{published_document, published_pointer};
    use tokio::sync::Notify;

    use super::*;
    use crate::local::LocalObjectStore;

    /// The local store, whose pointer reads can be held between reading and answering, and
    /// whose writes can be made to fail after writing.
    struct Gated {
        files: LocalObjectStore,
        hold_reads: AtomicBool,
        read_done: Notify,
        release: Notify,
        fail_writes: AtomicBool,
    }

    #[async_trait]
    impl Presigner for Gated {
        async fn presign_put(&self, k: &ObjectKey, c: &str, l: u64, e: Duration) -> StoreResult<PresignedRequest> {
            self.files.presign_put(k, c, l, e).await
        }
        async fn presign_get(&self, k: &ObjectKey, e: Duration) -> StoreResult<PresignedRequest> {
            self.files.presign_get(k, e).await
        }
    }

    #[async_trait]
    impl ObjectStore for Gated {
        async fn put(&self, key: &ObjectKey, body: Bytes, options: PutOptions) -> StoreResult<ObjectInfo> {
            let info = self.files.put(key, body, options).await?;
            match self.fail_writes.load(Ordering::SeqCst) {
                true => Err(StoreError::unavailable(anyhow::anyhow!("the write's answer was lost"))),
                false => Ok(info),
            }
        }
        async fn get(&self, key: &ObjectKey, max_bytes: u64) -> StoreResult<(ObjectInfo, Bytes)> {
            let read = self.files.get(key, max_bytes).await;
            if self.hold_reads.swap(false, Ordering::SeqCst) {
                self.read_done.notify_one();
                self.release.notified().await;
            }
            read
        }
        async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectInfo> {
            self.files.head(key).await
        }
        async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
            self.files.delete(key).await
        }
        async fn list(&self, prefix: &str, cursor: Option<String>, limit: usize) -> StoreResult<ListPage> {
            self.files.list(prefix, cursor, limit).await
        }
    }

    fn gated(dir: &tempfile::TempDir) -> Arc<RememberedPointers<Gated>> {
        let files = LocalObjectStore::open(dir.path(), "http://127.0.0.1:9/storage".into(), b"key".to_vec()).unwrap();
        Arc::new(RememberedPointers::new(Gated {
            files,
            hold_reads: AtomicBool::new(false),
            read_done: Notify::new(),
            release: Notify::new(),
            fail_writes: AtomicBool::new(false),
        }))
    }

    async fn put(store: &dyn ObjectStore, key: &ObjectKey, body: &'static str) -> StoreResult<ObjectInfo> {
        store.put(key, Bytes::from_static(body.as_bytes()), PutOptions::default()).await
    }

    async fn read(store: &dyn ObjectStore, key: &ObjectKey) -> StoreResult<Bytes> {
        store.get(key, 1024).await.map(|(_, body)| body)
    }

    #[tokio::test]
    async fn it_is_an_object_store_like_any_other() {
        let dir = tempfile::tempdir().unwrap();
        crate::conformance::object_store_suite(gated(&dir).as_ref()).await;
    }

    #[tokio::test]
    async fn pointers_come_from_memory_and_every_write_through_it_shows_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = gated(&dir);
        let gallery = GalleryId::parse("g-1").unwrap();
        let (pointer, document) = (published_pointer(&gallery), published_document(&gallery, 1));
        assert!(matches!(read(store.as_ref(), &pointer).await, Err(StoreError::NotFound)));
        put(store.as_ref(), &pointer, "v1").await.unwrap();
        put(store.as_ref(), &document, "doc").await.unwrap();

        // Changed behind its back (no writer does this in the local runtime): a pointer is
        // served from memory, every other key from the store.
        put(&store.inner.files, &pointer, "behind").await.unwrap();
        put(&store.inner.files, &document, "doc, rewritten").await.unwrap();
        assert_eq!(read(store.as_ref(), &pointer).await.unwrap(), "v1");
        assert_eq!(read(store.as_ref(), &document).await.unwrap(), "doc, rewritten");

        put(store.as_ref(), &pointer, "v2").await.unwrap();
        assert_eq!(read(store.as_ref(), &pointer).await.unwrap(), "v2");
        store.delete(&pointer).await.unwrap();
        assert!(matches!(read(store.as_ref(), &pointer).await, Err(StoreError::NotFound)));
        // A pointer over the size asked for is refused as the store refuses it.
        put(store.as_ref(), &pointer, "a pointer of some length").await.unwrap();
        assert!(matches!(store.get(&pointer, 4).await, Err(StoreError::Invalid(_))));
    }

    #[tokio::test]
    async fn a_read_that_raced_a_write_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = gated(&dir);
        let pointer = published_pointer(&GalleryId::parse("g-2").unwrap());
        put(&store.inner.files, &pointer, "v1").await.unwrap();

        // A read takes v1 from the store; before it answers, a publish writes v2.
        store.inner.hold_reads.store(true, Ordering::SeqCst);
        let reader = tokio::spawn({
            let store = store.clone();
            async move { read(store.as_ref(), &published_pointer(&GalleryId::parse("g-2").unwrap())).await }
        });
        store.inner.read_done.notified().await;
        put(store.as_ref(), &pointer, "v2").await.unwrap();
        store.inner.release.notify_one();
        assert_eq!(reader.await.unwrap().unwrap(), "v1", "the read began before the write");
        // What the raced read saw is not what is remembered.
        assert_eq!(read(store.as_ref(), &pointer).await.unwrap(), "v2");
    }

    #[tokio::test]
    async fn a_write_whose_outcome_is_unknown_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = gated(&dir);
        let pointer = published_pointer(&GalleryId::parse("g-3").unwrap());
        put(store.as_ref(), &pointer, "v1").await.unwrap();
        store.inner.fail_writes.store(true, Ordering::SeqCst);
        assert!(put(store.as_ref(), &pointer, "v2").await.is_err());
        store.inner.fail_writes.store(false, Ordering::SeqCst);
        // The write reached the files though it reported a failure: the next read sees it.
        assert_eq!(read(store.as_ref(), &pointer).await.unwrap(), "v2");
    }
}
