//! In-memory stand-ins for the ports the gallery use cases name (galleries, media records,
//! objects), with the adapters' conditional-write semantics (tests only).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;

use super::manage::GalleryPorts;
use super::{Gallery, Section, SectionId, Slug, Visibility};
use crate::ids::{GalleryId, MediaId, ModelId, ObjectKey};
use crate::media::{MediaRecord, MediaStatus};
use crate::ports::{
    GalleryStore, ListPage, MediaQuery, MediaStore, ObjectInfo, ObjectStore, Page, PresignedRequest, Presigner,
    PutOptions, StoreError, StoreResult,
};

#[derive(Default)]
pub struct Fakes {
    galleries: Mutex<BTreeMap<GalleryId, Gallery>>,
    media: Mutex<HashMap<MediaId, MediaRecord>>,
    objects: Mutex<BTreeMap<String, Bytes>>,
    fail_gallery_update: AtomicBool,
}

/// An empty gallery of model `m1` with one section, `main` (for the pure operations).
pub fn gallery() -> Gallery {
    let now = OffsetDateTime::now_utc();
    Gallery {
        gallery_id: super::new_gallery_id(),
        model_id: ModelId::parse("m1").unwrap(),
        title: "Summer".into(),
        slug: Slug::parse("summer").unwrap(),
        description: None,
        visibility: Visibility::Private,
        cover: None,
        sections: vec![Section { section_id: SectionId::parse("main").unwrap(), title: None, items: vec![] }],
        version: 1,
        created_at: now,
        updated_at: now,
        publication: None,
        batch_marks: Vec::new(),
    }
}

/// An approved 1280 x 960 photo of model `m1` with a web rendition set (tiny, small and medium
/// in WebP and JPEG, and a square cover crop).
pub fn approved() -> MediaRecord {
    let mut record = crate::media::fakes::processed_record();
    record.status = MediaStatus::Approved;
    let id = record.media_id;
    record.source = Some(
        serde_json::from_value(serde_json::json!({
            "etag": "e", "bytes": 10, "format": "jpeg", "width": 1280, "height": 960, "orientation": 1,
            "sha256": "00".repeat(32), "placeholder": "3OcRJYB4d3h/iIeHeEh3eIhw+j2w", "dominant_color": "#a0b0c0"
        }))
        .unwrap(),
    );
    let rendition = |preset: &str, format: &str, ext: &str, width: u32, height: u32| {
        serde_json::from_value(serde_json::json!({
            "preset": preset, "preset_version": 1, "format": format, "width": width, "height": height, "bytes": 1,
            "key": format!("derived/m1/{id}/{preset}.{ext}"), "source_etag": "e"
        }))
        .unwrap()
    };
    record.derivatives = vec![
        rendition("tiny", "jpeg", "jpg", 32, 24),
        rendition("small", "webp", "webp", 320, 240),
        rendition("small", "jpeg", "jpg", 320, 240),
        rendition("medium", "webp", "webp", 640, 480),
        rendition("medium", "jpeg", "jpg", 640, 480),
        rendition("cover-square", "webp", "webp", 600, 600),
    ];
    record
}

impl Fakes {
    pub fn ports(&self) -> GalleryPorts<'_> {
        GalleryPorts { galleries: self, media: self, objects: self }
    }

    pub fn add(&self, record: MediaRecord) -> MediaId {
        let id = record.media_id;
        self.media.lock().unwrap().insert(id, record);
        id
    }

    pub fn media(&self, id: &MediaId) -> MediaRecord {
        self.media.lock().unwrap()[id].clone()
    }

    /// Changes a stored record as another writer would (its version moves on).
    pub fn edit(&self, id: &MediaId, change: impl FnOnce(&mut MediaRecord)) {
        let mut media = self.media.lock().unwrap();
        let record = media.get_mut(id).unwrap();
        change(record);
        record.version += 1;
    }

    pub fn set_status(&self, id: &MediaId, status: MediaStatus) {
        self.edit(id, |r| r.status = status);
    }

    pub fn gallery(&self, id: &GalleryId) -> Gallery {
        self.galleries.lock().unwrap()[id].clone()
    }

    pub fn object(&self, key: &ObjectKey) -> Option<Bytes> {
        self.objects.lock().unwrap().get(key.as_str()).cloned()
    }

    pub fn objects_under(&self, prefix: &str) -> Vec<String> {
        self.objects.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect()
    }

    /// Changes a gallery as a person's write would (a new version).
    pub fn edit_gallery(&self, id: &GalleryId, change: impl FnOnce(&mut Gallery)) {
        let mut galleries = self.galleries.lock().unwrap();
        let gallery = galleries.get_mut(id).unwrap();
        change(gallery);
        gallery.version += 1;
    }

    /// The next gallery update meets a concurrent writer (a version conflict).
    pub fn fail_next_gallery_update(&self) {
        self.fail_gallery_update.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl GalleryStore for Fakes {
    async fn create_gallery(&self, gallery: &Gallery) -> StoreResult<()> {
        let mut galleries = self.galleries.lock().unwrap();
        if galleries.contains_key(&gallery.gallery_id) || galleries.values().any(|g| g.slug == gallery.slug) {
            return Err(StoreError::AlreadyExists);
        }
        galleries.insert(gallery.gallery_id.clone(), gallery.clone());
        Ok(())
    }
    async fn get_gallery(&self, id: &GalleryId) -> StoreResult<Gallery> {
        self.galleries.lock().unwrap().get(id).cloned().ok_or(StoreError::NotFound)
    }
    async fn gallery_id_by_slug(&self, slug: &Slug) -> StoreResult<GalleryId> {
        let galleries = self.galleries.lock().unwrap();
        galleries.values().find(|g| &g.slug == slug).map(|g| g.gallery_id.clone()).ok_or(StoreError::NotFound)
    }
    async fn update_gallery(&self, gallery: &Gallery, _previous_slug: &Slug) -> StoreResult<()> {
        let mut galleries = self.galleries.lock().unwrap();
        let current = galleries.get(&gallery.gallery_id).map(|g| g.version).ok_or(StoreError::NotFound)?;
        if self.fail_gallery_update.swap(false, Ordering::SeqCst) || current + 1 != gallery.version {
            return Err(StoreError::VersionConflict { current: Some(current) });
        }
        if galleries.values().any(|g| g.slug == gallery.slug && g.gallery_id != gallery.gallery_id) {
            return Err(StoreError::AlreadyExists);
        }
        galleries.insert(gallery.gallery_id.clone(), gallery.clone());
        Ok(())
    }
    async fn delete_gallery(&self, gallery: &Gallery) -> StoreResult<()> {
        let mut galleries = self.galleries.lock().unwrap();
        match galleries.get(&gallery.gallery_id).map(|g| g.version) {
            None => Err(StoreError::NotFound),
            Some(v) if v != gallery.version => Err(StoreError::VersionConflict { current: Some(v) }),
            Some(_) => {
                galleries.remove(&gallery.gallery_id);
                Ok(())
            }
        }
    }
    async fn list_galleries(&self, model: &ModelId, limit: usize, _: Option<String>) -> StoreResult<Page<Gallery>> {
        let galleries = self.galleries.lock().unwrap();
        let items = galleries.values().rev().filter(|g| &g.model_id == model).take(limit).cloned().collect();
        Ok(Page { items, next_cursor: None })
    }
    async fn galleries_due(&self, now: time::OffsetDateTime, limit: usize) -> StoreResult<Vec<Gallery>> {
        let galleries = self.galleries.lock().unwrap();
        let mut due: Vec<Gallery> =
            galleries.values().filter(|g| g.rights_due_at().is_some_and(|at| at <= now)).cloned().collect();
        due.sort_by_key(|g| g.rights_due_at());
        due.truncate(limit);
        Ok(due)
    }
}

#[async_trait]
impl MediaStore for Fakes {
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()> {
        self.add(record.clone());
        Ok(())
    }
    async fn get_media(&self, _: &ModelId, media: &MediaId) -> StoreResult<MediaRecord> {
        self.media.lock().unwrap().get(media).cloned().ok_or(StoreError::NotFound)
    }
    async fn batch_get_media(&self, keys: &[(ModelId, MediaId)]) -> StoreResult<Vec<MediaRecord>> {
        crate::ports::bounds::batch_keys(keys)?;
        let media = self.media.lock().unwrap();
        Ok(keys.iter().filter_map(|(_, id)| media.get(id).cloned()).collect())
    }
    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()> {
        let mut media = self.media.lock().unwrap();
        match media.get(&record.media_id).map(|r| r.version) {
            None => Err(StoreError::NotFound),
            Some(v) if v + 1 != record.version => Err(StoreError::VersionConflict { current: Some(v) }),
            Some(_) => {
                media.insert(record.media_id, record.clone());
                Ok(())
            }
        }
    }
    async fn list_media(&self, model: &ModelId, query: &MediaQuery) -> StoreResult<Page<MediaRecord>> {
        let media = self.media.lock().unwrap();
        let items = media.values().filter(|r| &r.model_id == model && query.matches(r)).cloned().collect();
        Ok(Page { items, next_cursor: None })
    }
    async fn list_trash_due(&self, _: OffsetDateTime, _: usize) -> StoreResult<Vec<MediaRecord>> {
        unreachable!("galleries never sweep the trash")
    }
}

#[async_trait]
impl Presigner for Fakes {
    async fn presign_put(&self, _: &ObjectKey, _: &str, _: u64, _: Duration) -> StoreResult<PresignedRequest> {
        unreachable!("galleries presign nothing")
    }
    async fn presign_get(&self, _: &ObjectKey, _: Duration) -> StoreResult<PresignedRequest> {
        unreachable!("galleries presign nothing")
    }
}

fn info(key: &ObjectKey, body: &Bytes) -> ObjectInfo {
    ObjectInfo { key: key.clone(), size: body.len() as u64, etag: "e".into(), content_type: None, cache_control: None }
}

#[async_trait]
impl ObjectStore for Fakes {
    async fn put(&self, key: &ObjectKey, body: Bytes, _: PutOptions) -> StoreResult<ObjectInfo> {
        let info = info(key, &body);
        self.objects.lock().unwrap().insert(key.to_string(), body);
        Ok(info)
    }
    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> StoreResult<(ObjectInfo, Bytes)> {
        let body = self.object(key).ok_or(StoreError::NotFound)?;
        if body.len() as u64 > max_bytes {
            return Err(StoreError::Invalid("too large".into()));
        }
        Ok((info(key, &body), body))
    }
    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectInfo> {
        self.object(key).map(|b| info(key, &b)).ok_or(StoreError::NotFound)
    }
    async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
        self.objects.lock().unwrap().remove(key.as_str());
        Ok(())
    }
    async fn list(&self, prefix: &str, _: Option<String>, _: usize) -> StoreResult<ListPage> {
        let keys = self.objects_under(prefix).iter().map(|k| ObjectKey::parse(k).unwrap()).collect();
        Ok(ListPage { keys, next: None })
    }
}
