//! [`MediaStore`], [`FingerprintStore`] and [`TombstoneStore`] in SQLite: one row per record, the
//! record as JSON, and the columns the queries need (the same orderings as the DynamoDB table and
//! its GSI1). Limits ([`bounds`]) and the cursor envelope ([`cursor`]) are the domain's, as for
//! every metadata adapter. The job and idempotency stores share the database (`super::jobs`), so
//! a child job and its parent's progress commit in one transaction.

use std::path::Path;

use async_trait::async_trait;
use phoenix_domain::ports::{
    Fingerprint, FingerprintStore, MediaQuery, MediaStore, Page, StoreError, StoreResult, TombstoneStore, bounds,
    cursor,
};
use phoenix_domain::{MediaId, MediaRecord, ModelId};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params, params_from_iter};
use time::OffsetDateTime;

use super::sqlite::{Db, sql_err};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS media (
    model_id   TEXT NOT NULL,
    media_id   TEXT NOT NULL,
    status     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER,         -- unix seconds, as DynamoDB's TTL attribute
    doc        TEXT NOT NULL,
    PRIMARY KEY (model_id, media_id)
);
CREATE INDEX IF NOT EXISTS media_by_status ON media (model_id, status, media_id);
CREATE TABLE IF NOT EXISTS media_tags (
    model_id TEXT NOT NULL,
    tag      TEXT NOT NULL,
    media_id TEXT NOT NULL,
    PRIMARY KEY (model_id, tag, media_id)
);
CREATE TABLE IF NOT EXISTS media_galleries (
    model_id   TEXT NOT NULL,
    gallery_id TEXT NOT NULL,
    media_id   TEXT NOT NULL,
    PRIMARY KEY (model_id, gallery_id, media_id)
);
-- A write replaces a record's tag and gallery rows: found by media, not by a scan of the model's.
CREATE INDEX IF NOT EXISTS media_tags_by_media ON media_tags (model_id, media_id);
CREATE INDEX IF NOT EXISTS media_galleries_by_media ON media_galleries (model_id, media_id);
CREATE TABLE IF NOT EXISTS fingerprints (
    model_id TEXT NOT NULL,
    media_id TEXT NOT NULL,
    phash    TEXT NOT NULL,
    PRIMARY KEY (model_id, media_id)
);
CREATE TABLE IF NOT EXISTS tombstones (
    model_id TEXT NOT NULL,
    media_id TEXT NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (model_id, media_id)
);
";

/// Data folders made before the library queries existed get the category column (filled from
/// the stored records) on first open, in one transaction: a crash leaves the old schema.
const ADD_CATEGORY: &str = "
BEGIN;
ALTER TABLE media ADD COLUMN category TEXT;
UPDATE media SET category = json_extract(doc, '$.metadata.category');
COMMIT;
";
const CATEGORY_INDEX: &str = "CREATE INDEX IF NOT EXISTS media_by_category ON media (model_id, category, media_id);";
/// Data folders made before the trash get the `purge_after` column (unix nanoseconds, set only
/// on trashed records, filled from them) on first open, in one transaction; then the trash's
/// index, partial: only trashed records are in it, in the order the sweep reads them.
const ADD_PURGE_AFTER: &str = "
BEGIN;
ALTER TABLE media ADD COLUMN purge_after INTEGER;
UPDATE media SET purge_after = CAST(ROUND((julianday(json_extract(doc, '$.trashed.purge_after')) - 2440587.5)
    * 86400000) AS INTEGER) * 1000000
    WHERE status = 'deleted' AND json_extract(doc, '$.trashed.purge_after') IS NOT NULL;
COMMIT;
";
const TRASH_INDEX: &str = "CREATE INDEX IF NOT EXISTS media_trash ON media (purge_after, model_id, media_id)
    WHERE purge_after IS NOT NULL;";

#[derive(Clone)]
pub struct LocalMetadataStore {
    pub(super) db: Db,
}

impl LocalMetadataStore {
    /// One statement with text parameters, on the blocking pool.
    async fn execute<const N: usize>(&self, sql: &'static str, values: [String; N]) -> StoreResult<()> {
        self.db.run(move |conn| conn.execute(sql, params_from_iter(values)).map(drop).map_err(sql_err)).await
    }

    /// A page of `listing`: the documents `sql` selects with `values` (at most `limit`), decoded,
    /// and a cursor after the last one's `position` if the page is full.
    pub(super) async fn page<T, P: serde::Serialize>(
        &self,
        sql: String,
        values: Vec<Value>,
        limit: usize,
        listing: &str,
        decode: impl Fn(&str) -> StoreResult<T>,
        position: impl Fn(&T) -> P,
    ) -> StoreResult<Page<T>> {
        let docs: Vec<String> = self
            .db
            .run(move |conn| {
                let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
                stmt.query_map(params_from_iter(values), |row| row.get::<_, String>(0))
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)
            })
            .await?;
        let items = docs.iter().map(|doc| decode(doc)).collect::<StoreResult<Vec<T>>>()?;
        let next_cursor = match items.last() {
            Some(last) if items.len() == limit => Some(cursor::encode(listing, &position(last))?),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let db = Db::open(path, SCHEMA)?;
        db.with_blocking(|conn| {
            let has_category =
                conn.prepare("SELECT 1 FROM pragma_table_info('media') WHERE name = 'category'")?.exists([])?;
            if !has_category {
                conn.execute_batch(ADD_CATEGORY)?;
            }
            conn.execute_batch(CATEGORY_INDEX)?;
            let has_purge_after =
                conn.prepare("SELECT 1 FROM pragma_table_info('media') WHERE name = 'purge_after'")?.exists([])?;
            if !has_purge_after {
                conn.execute_batch(ADD_PURGE_AFTER)?;
            }
            conn.execute_batch(TRASH_INDEX)?;
            conn.execute_batch(super::jobs::SCHEMA)?;
            conn.execute_batch(super::batches::SCHEMA)?;
            conn.execute_batch(super::shares::SCHEMA)?;
            conn.execute_batch(super::galleries::SCHEMA)
        })?;
        Ok(Self { db })
    }
}

/// The record as stored. A record that cannot be encoded is a bug here, not a bad request.
fn encode(record: &MediaRecord) -> StoreResult<String> {
    serde_json::to_string(record)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("a media record cannot be encoded: {e}")))
}

/// A stored record. One that does not decode is corrupt data, which no retry mends: `Internal`.
fn decode(doc: &str) -> StoreResult<MediaRecord> {
    serde_json::from_str(doc).map_err(|e| StoreError::internal(anyhow::anyhow!("corrupt record: {e}")))
}

/// `purge_after` as the column holds it: unix nanoseconds.
fn nanos(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// Writes the record's row and its index rows (tags, galleries), replacing any old ones. A
/// trashed record has no category, tag or gallery entries (as in DynamoDB: only the trash lists
/// it) and carries its `purge_after` for the sweep.
fn write_row(tx: &rusqlite::Transaction<'_>, record: &MediaRecord, insert: bool) -> StoreResult<()> {
    let doc = encode(record)?;
    let (model, media) = (record.model_id.to_string(), record.media_id.to_string());
    let trashed = record.is_trashed();
    let category = record.metadata.category.as_ref().filter(|_| !trashed).map(|c| c.as_str().to_owned());
    let expires = record.expires_at.map(|t| t.unix_timestamp());
    let purge_after = record.purge_after().map(nanos);
    let sql = if insert {
        "INSERT INTO media (model_id, media_id, status, version, expires_at, doc, category, purge_after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    } else {
        "UPDATE media SET status = ?3, version = ?4, expires_at = ?5, doc = ?6, category = ?7, purge_after = ?8
         WHERE model_id = ?1 AND media_id = ?2"
    };
    let values =
        params![model, media, record.status.as_str(), record.version as i64, expires, doc, category, purge_after];
    // Cached statements: a batch writes thousands of records in one transaction.
    tx.prepare_cached(sql).map_err(sql_err)?.execute(values).map_err(sql_err)?;
    remove_index_rows(tx, &model, &media)?;
    if trashed {
        return Ok(());
    }
    for tag in &record.metadata.tags {
        tx.prepare_cached("INSERT INTO media_tags (model_id, tag, media_id) VALUES (?1, ?2, ?3)")
            .map_err(sql_err)?
            .execute(params![model, tag.as_str(), media])
            .map_err(sql_err)?;
    }
    for gallery in record.gallery_ids() {
        tx.prepare_cached("INSERT OR IGNORE INTO media_galleries (model_id, gallery_id, media_id) VALUES (?1, ?2, ?3)")
            .map_err(sql_err)?
            .execute(params![model, gallery.as_str(), media])
            .map_err(sql_err)?;
    }
    Ok(())
}

fn remove_index_rows(tx: &rusqlite::Transaction<'_>, model: &str, media: &str) -> StoreResult<()> {
    for table in ["media_tags", "media_galleries"] {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE model_id = ?1 AND media_id = ?2"))
            .map_err(sql_err)?
            .execute(params![model, media])
            .map_err(sql_err)?;
    }
    Ok(())
}

/// The conditional update of a record within `tx`: `NotFound` unless a live record is stored at
/// `record.version - 1` (`VersionConflict` if at another version), then its row and index rows.
/// `update_media` is this in a transaction of its own; a batch item's write, with its outcome.
pub(super) fn update_row(tx: &rusqlite::Transaction<'_>, record: &MediaRecord, now: i64) -> StoreResult<()> {
    let expected = bounds::previous_version(record)?;
    expect_version(tx, record.model_id.as_str(), &record.media_id.to_string(), now, expected)?;
    write_row(tx, record, false)
}

/// `NotFound` unless a live record is stored at `expected`, `VersionConflict` if at another version.
fn expect_version(
    tx: &rusqlite::Transaction<'_>,
    model: &str,
    media: &str,
    now: i64,
    expected: u64,
) -> StoreResult<()> {
    match stored_version(tx, model, media, now)? {
        None => Err(StoreError::NotFound),
        Some(v) if v != expected => Err(StoreError::VersionConflict { current: Some(v) }),
        Some(_) => Ok(()),
    }
}

fn stored_version(tx: &rusqlite::Transaction<'_>, model: &str, media: &str, now: i64) -> StoreResult<Option<u64>> {
    tx.prepare_cached(
        "SELECT version FROM media WHERE model_id = ?1 AND media_id = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
    )
    .map_err(sql_err)?
    .query_row(params![model, media, now], |row| row.get::<_, i64>(0))
    .optional()
    .map(|v| v.map(|v| v as u64))
    .map_err(sql_err)
}

fn read_live(conn: &rusqlite::Connection, model: &str, media: &str, now: i64) -> StoreResult<Option<String>> {
    conn.prepare_cached(
        "SELECT doc FROM media WHERE model_id = ?1 AND media_id = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
    )
    .map_err(sql_err)?
    .query_row(params![model, media, now], |row| row.get(0))
    .optional()
    .map_err(sql_err)
}

#[async_trait]
impl MediaStore for LocalMetadataStore {
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()> {
        bounds::record(record)?;
        let record = record.clone();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                let (model, media) = (record.model_id.to_string(), record.media_id.to_string());
                // An expired leftover counts as absent (DynamoDB's TTL would remove it eventually).
                let existing: Option<Option<i64>> = tx
                    .query_row(
                        "SELECT expires_at FROM media WHERE model_id = ?1 AND media_id = ?2",
                        params![model, media],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(sql_err)?;
                match existing {
                    None => {}
                    Some(Some(expires)) if expires <= now => {
                        tx.execute("DELETE FROM media WHERE model_id = ?1 AND media_id = ?2", params![model, media])
                            .map_err(sql_err)?;
                    }
                    Some(_) => return Err(StoreError::AlreadyExists),
                }
                write_row(&tx, &record, true)?;
                tx.commit().map_err(sql_err)
            })
            .await
    }

    async fn get_media(&self, model: &ModelId, media: &MediaId) -> StoreResult<MediaRecord> {
        let (model, media) = (model.to_string(), media.to_string());
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let doc = self.db.run(move |conn| read_live(conn, &model, &media, now)).await?;
        decode(&doc.ok_or(StoreError::NotFound)?)
    }

    async fn batch_get_media(&self, keys: &[(ModelId, MediaId)]) -> StoreResult<Vec<MediaRecord>> {
        bounds::batch_keys(keys)?;
        let keys: Vec<(String, String)> = keys.iter().map(|(m, id)| (m.to_string(), id.to_string())).collect();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let docs = self
            .db
            .run(move |conn| {
                let mut docs = Vec::with_capacity(keys.len());
                for (model, media) in &keys {
                    if let Some(doc) = read_live(conn, model, media, now)? {
                        docs.push(doc);
                    }
                }
                Ok(docs)
            })
            .await?;
        docs.iter().map(|d| decode(d)).collect()
    }

    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()> {
        bounds::record(record)?;
        bounds::previous_version(record)?;
        let record = record.clone();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                update_row(&tx, &record, now)?;
                tx.commit().map_err(sql_err)
            })
            .await
    }

    async fn list_media(&self, model: &ModelId, query: &MediaQuery) -> StoreResult<Page<MediaRecord>> {
        let limit = bounds::page_size(query.limit)?;
        query.check()?;
        let listing = query.listing(model);
        // The position is the last media id of the previous page.
        let after: Option<MediaId> = query.cursor.as_deref().map(|c| cursor::decode(c, &listing)).transpose()?;
        let Some((low_ms, high_ms)) = query.created_ms_range() else {
            return Ok(Page { items: Vec::new(), next_cursor: None });
        };
        // Newest first: media ids are ULIDs, so they sort by creation time and a creation
        // range is an id range (the DynamoDB table and its indexes sort the same way).
        let low = MediaId::first_of_ms(low_ms).to_string();
        let mut high = MediaId::last_of_ms(high_ms).to_string();
        if let Some(after) = after {
            high = high.min(after.to_string());
        }
        let mut sql = String::from("SELECT m.doc FROM media m");
        let mut values: Vec<Value> = Vec::new();
        if let Some(tag) = &query.tag {
            sql.push_str(" JOIN media_tags t ON t.model_id = m.model_id AND t.media_id = m.media_id AND t.tag = ?");
            values.push(Value::Text(tag.as_str().to_owned()));
        }
        if let Some(gallery) = &query.gallery {
            sql.push_str(
                " JOIN media_galleries g ON g.model_id = m.model_id AND g.media_id = m.media_id AND g.gallery_id = ?",
            );
            values.push(Value::Text(gallery.as_str().to_owned()));
        }
        sql.push_str(" WHERE m.model_id = ? AND m.media_id >= ? AND m.media_id");
        sql.push_str(if after.is_some() { " < ?" } else { " <= ?" });
        sql.push_str(" AND (m.expires_at IS NULL OR m.expires_at > ?)");
        values.extend([
            Value::Text(model.to_string()),
            Value::Text(low),
            Value::Text(high),
            Value::Integer(OffsetDateTime::now_utc().unix_timestamp()),
        ]);
        match query.status {
            Some(status) => {
                sql.push_str(" AND m.status = ?");
                values.push(Value::Text(status.as_str().to_owned()));
            }
            // The trash is in no listing but its own.
            None => sql.push_str(" AND m.status != 'deleted'"),
        }
        if let Some(category) = &query.category {
            sql.push_str(" AND m.category = ?");
            values.push(Value::Text(category.as_str().to_owned()));
        }
        sql.push_str(" ORDER BY m.media_id DESC LIMIT ?");
        values.push(Value::Integer(limit as i64));
        self.page(sql, values, limit, &listing, decode, |record| record.media_id).await
    }

    async fn list_trash_due(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<MediaRecord>> {
        let limit = bounds::page_size(limit)?;
        let due = nanos(now);
        let docs: Vec<String> = self
            .db
            .run(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT doc FROM media WHERE purge_after IS NOT NULL AND purge_after <= ?1
                         ORDER BY purge_after, model_id, media_id LIMIT ?2",
                    )
                    .map_err(sql_err)?;
                stmt.query_map(params![due, limit as i64], |row| row.get::<_, String>(0))
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)
            })
            .await?;
        docs.iter().map(|doc| decode(doc)).collect()
    }
}

#[async_trait]
impl FingerprintStore for LocalMetadataStore {
    async fn get_media_with_fingerprints(
        &self,
        model: &ModelId,
        media: &MediaId,
    ) -> StoreResult<(MediaRecord, Vec<Fingerprint>)> {
        let (model, media) = (model.to_string(), media.to_string());
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let (doc, prints) = self
            .db
            .run(move |conn| {
                let doc = read_live(conn, &model, &media, now)?;
                let mut stmt = conn
                    .prepare_cached("SELECT media_id, phash FROM fingerprints WHERE model_id = ?1")
                    .map_err(sql_err)?;
                let prints = stmt
                    .query_map(params![model], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)?;
                Ok((doc, prints))
            })
            .await?;
        let record = decode(&doc.ok_or(StoreError::NotFound)?)?;
        let prints = prints
            .into_iter()
            .filter_map(|(id, phash)| MediaId::parse(&id).ok().map(|media_id| Fingerprint { media_id, phash }))
            .collect();
        Ok((record, prints))
    }

    async fn put_fingerprint(&self, model: &ModelId, fingerprint: &Fingerprint) -> StoreResult<()> {
        self.execute(
            "INSERT OR REPLACE INTO fingerprints (model_id, media_id, phash) VALUES (?1, ?2, ?3)",
            [model.to_string(), fingerprint.media_id.to_string(), fingerprint.phash.clone()],
        )
        .await
    }

    async fn remove_fingerprint(&self, model: &ModelId, media: &MediaId) -> StoreResult<()> {
        self.execute(
            "DELETE FROM fingerprints WHERE model_id = ?1 AND media_id = ?2",
            [model.to_string(), media.to_string()],
        )
        .await
    }
}

#[async_trait]
impl TombstoneStore for LocalMetadataStore {
    async fn delete_media(&self, record: &MediaRecord) -> StoreResult<()> {
        let record = record.clone();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                let (model, media) = (record.model_id.to_string(), record.media_id.to_string());
                expect_version(&tx, &model, &media, now, record.version)?;
                let doc: String = tx
                    .query_row(
                        "SELECT doc FROM media WHERE model_id = ?1 AND media_id = ?2",
                        params![model, media],
                        |row| row.get(0),
                    )
                    .map_err(sql_err)?;
                tx.execute("DELETE FROM media WHERE model_id = ?1 AND media_id = ?2", params![model, media])
                    .map_err(sql_err)?;
                remove_index_rows(&tx, &model, &media)?;
                tx.execute("DELETE FROM fingerprints WHERE model_id = ?1 AND media_id = ?2", params![model, media])
                    .map_err(sql_err)?;
                tx.execute(
                    "INSERT OR REPLACE INTO tombstones (model_id, media_id, doc) VALUES (?1, ?2, ?3)",
                    params![model, media, doc],
                )
                .map_err(sql_err)?;
                tx.commit().map_err(sql_err)
            })
            .await
    }

    async fn get_tombstone(&self, model: &ModelId, media: &MediaId) -> StoreResult<Option<MediaRecord>> {
        let (model, media) = (model.to_string(), media.to_string());
        let doc: Option<String> = self
            .db
            .run(move |conn| {
                conn.query_row(
                    "SELECT doc FROM tombstones WHERE model_id = ?1 AND media_id = ?2",
                    params![model, media],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sql_err)
            })
            .await?;
        doc.as_deref().map(decode).transpose()
    }

    async fn remove_tombstone(&self, model: &ModelId, media: &MediaId) -> StoreResult<()> {
        self.execute(
            "DELETE FROM tombstones WHERE model_id = ?1 AND media_id = ?2",
            [model.to_string(), media.to_string()],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use phoenix_domain::MediaStatus;

    use super::*;

    #[tokio::test]
    async fn a_data_folder_from_before_the_trash_gains_its_column_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.sqlite");
        let model = ModelId::parse("m1").unwrap();
        let mut record = crate::conformance::sample_record(&model, &MediaId::new(), MediaStatus::Approved);
        let now = OffsetDateTime::now_utc();
        record.move_to_trash("a", now - Duration::from_secs(10), Duration::from_secs(5)).unwrap();
        {
            // The schema as it was: no purge_after column.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute_batch(ADD_CATEGORY).unwrap();
            conn.execute(
                "INSERT INTO media (model_id, media_id, status, version, doc) VALUES (?1, ?2, 'deleted', 2, ?3)",
                params![model.to_string(), record.media_id.to_string(), encode(&record).unwrap()],
            )
            .unwrap();
        }
        let store = LocalMetadataStore::open(&path).unwrap();
        assert_eq!(store.list_trash_due(now, 10).await.unwrap(), vec![record.clone()]);
        assert!(store.list_trash_due(now - Duration::from_secs(6), 10).await.unwrap().is_empty());
        drop(store);
        LocalMetadataStore::open(&path).expect("opening again migrates nothing");
    }
}
