//! [`GalleryStore`] on the metadata store's SQLite database: one row per gallery (the gallery as
//! JSON, with the columns the queries need); the slug's uniqueness is a `UNIQUE` column, so a
//! write that would give two galleries one slug fails as a whole (`AlreadyExists`).

use async_trait::async_trait;
use phoenix_domain::galleries::{Gallery, Slug};
use phoenix_domain::ports::{GalleryStore, Page, StoreError, StoreResult, bounds, cursor, galleries_listing};
use phoenix_domain::{GalleryId, ModelId};
use rusqlite::types::Value;
use rusqlite::{ErrorCode, OptionalExtension, params};
use time::OffsetDateTime;

use super::metadata::LocalMetadataStore;
use super::sqlite::sql_err;

/// Created on open, with the media tables (`CREATE … IF NOT EXISTS`).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS galleries (
    gallery_id TEXT PRIMARY KEY,
    model_id   TEXT NOT NULL,
    slug       TEXT NOT NULL UNIQUE,
    version    INTEGER NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS galleries_by_model ON galleries (model_id, gallery_id);
-- Galleries whose current published version shows a media with a usage-rights expiry, by the
-- earliest (Unix nanoseconds): what the rights sweep reads. Written with the gallery's row.
CREATE TABLE IF NOT EXISTS gallery_rights_due (
    gallery_id TEXT PRIMARY KEY,
    due        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS gallery_rights_due_by_due ON gallery_rights_due (due, gallery_id);
";

/// Puts the gallery's row in `gallery_rights_due`, or takes it out.
fn set_rights_due(conn: &rusqlite::Connection, id: &str, due: Option<i64>) -> StoreResult<()> {
    match due {
        Some(due) => conn.execute(
            "INSERT INTO gallery_rights_due (gallery_id, due) VALUES (?1, ?2)
             ON CONFLICT (gallery_id) DO UPDATE SET due = excluded.due",
            params![id, due],
        ),
        None => conn.execute("DELETE FROM gallery_rights_due WHERE gallery_id = ?1", params![id]),
    }
    .map(drop)
    .map_err(sql_err)
}

fn rights_due(gallery: &Gallery) -> Option<i64> {
    gallery.rights_due_at().map(|at| i64::try_from(at.unix_timestamp_nanos()).unwrap_or(i64::MAX))
}

fn encode(gallery: &Gallery) -> StoreResult<String> {
    serde_json::to_string(gallery)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("a gallery cannot be encoded: {e}")))
}

fn decode(doc: &str) -> StoreResult<Gallery> {
    serde_json::from_str(doc).map_err(|e| StoreError::internal(anyhow::anyhow!("corrupt gallery: {e}")))
}

/// A write refused by the slug's `UNIQUE` constraint (or the id's key) is `AlreadyExists`.
fn write_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::AlreadyExists,
        _ => sql_err(e),
    }
}

fn stored_version(conn: &rusqlite::Connection, id: &str) -> StoreResult<Option<u64>> {
    conn.prepare_cached("SELECT version FROM galleries WHERE gallery_id = ?1")
        .map_err(sql_err)?
        .query_row(params![id], |row| row.get::<_, i64>(0))
        .optional()
        .map_err(sql_err)
        .map(|v| v.map(|v| v as u64))
}

/// `VersionConflict` with the stored version, or `NotFound`.
fn refusal(conn: &rusqlite::Connection, id: &str) -> StoreError {
    match stored_version(conn, id) {
        Ok(Some(current)) => StoreError::VersionConflict { current: Some(current) },
        Ok(None) => StoreError::NotFound,
        Err(e) => e,
    }
}

#[async_trait]
impl GalleryStore for LocalMetadataStore {
    async fn create_gallery(&self, gallery: &Gallery) -> StoreResult<()> {
        let doc = encode(gallery)?;
        let values = (gallery.gallery_id.to_string(), gallery.model_id.to_string(), gallery.slug.to_string());
        let version = gallery.version as i64;
        let due = rights_due(gallery);
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                tx.execute(
                    "INSERT INTO galleries (gallery_id, model_id, slug, version, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![values.0, values.1, values.2, version, doc],
                )
                .map_err(write_err)?;
                set_rights_due(&tx, &values.0, due)?;
                tx.commit().map_err(sql_err)
            })
            .await
    }

    async fn get_gallery(&self, id: &GalleryId) -> StoreResult<Gallery> {
        let id = id.to_string();
        let doc = self
            .db
            .run(move |conn| {
                conn.prepare_cached("SELECT doc FROM galleries WHERE gallery_id = ?1")
                    .map_err(sql_err)?
                    .query_row(params![id], |row| row.get::<_, String>(0))
                    .optional()
                    .map_err(sql_err)
            })
            .await?;
        decode(&doc.ok_or(StoreError::NotFound)?)
    }

    async fn gallery_id_by_slug(&self, slug: &Slug) -> StoreResult<GalleryId> {
        let slug = slug.to_string();
        let id = self
            .db
            .run(move |conn| {
                conn.prepare_cached("SELECT gallery_id FROM galleries WHERE slug = ?1")
                    .map_err(sql_err)?
                    .query_row(params![slug], |row| row.get::<_, String>(0))
                    .optional()
                    .map_err(sql_err)
            })
            .await?;
        GalleryId::parse(&id.ok_or(StoreError::NotFound)?)
            .map_err(|e| StoreError::internal(anyhow::anyhow!("a stored gallery id: {e}")))
    }

    async fn update_gallery(&self, gallery: &Gallery, _previous_slug: &Slug) -> StoreResult<()> {
        let expected = bounds_previous(gallery)?;
        let doc = encode(gallery)?;
        let (id, slug, version) = (gallery.gallery_id.to_string(), gallery.slug.to_string(), gallery.version as i64);
        let due = rights_due(gallery);
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                let changed = tx
                    .execute(
                        "UPDATE galleries SET slug = ?2, version = ?3, doc = ?4 WHERE gallery_id = ?1 AND version = ?5",
                        params![id, slug, version, doc, expected as i64],
                    )
                    .map_err(write_err)?;
                if changed == 0 {
                    return Err(refusal(&tx, &id));
                }
                set_rights_due(&tx, &id, due)?;
                tx.commit().map_err(sql_err)
            })
            .await
    }

    async fn delete_gallery(&self, gallery: &Gallery) -> StoreResult<()> {
        let (id, version) = (gallery.gallery_id.to_string(), gallery.version as i64);
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                let changed = tx
                    .execute("DELETE FROM galleries WHERE gallery_id = ?1 AND version = ?2", params![id, version])
                    .map_err(sql_err)?;
                if changed == 0 {
                    return Err(refusal(&tx, &id));
                }
                set_rights_due(&tx, &id, None)?;
                tx.commit().map_err(sql_err)
            })
            .await
    }

    async fn list_galleries(&self, model: &ModelId, limit: usize, after: Option<String>) -> StoreResult<Page<Gallery>> {
        let limit = bounds::page_size(limit)?;
        let listing = galleries_listing(model);
        let mut sql = "SELECT doc FROM galleries WHERE model_id = ?".to_owned();
        let mut values = vec![Value::Text(model.to_string())];
        if let Some(raw) = after {
            let position: String = cursor::decode(&raw, &listing)?;
            sql.push_str(" AND gallery_id < ?");
            values.push(Value::Text(position));
        }
        sql.push_str(" ORDER BY gallery_id DESC LIMIT ?");
        values.push(Value::Integer(limit as i64));
        self.page(sql, values, limit, &listing, decode, |g: &Gallery| g.gallery_id.to_string()).await
    }

    async fn galleries_due(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<Gallery>> {
        let limit = bounds::page_size(limit)? as i64;
        let now = i64::try_from(now.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        let docs = self
            .db
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT g.doc FROM gallery_rights_due d JOIN galleries g ON g.gallery_id = d.gallery_id
                         WHERE d.due <= ?1 ORDER BY d.due, d.gallery_id LIMIT ?2",
                    )
                    .map_err(sql_err)?;
                let rows = statement.query_map(params![now, limit], |row| row.get::<_, String>(0)).map_err(sql_err)?;
                rows.collect::<Result<Vec<String>, _>>().map_err(sql_err)
            })
            .await?;
        docs.iter().map(|doc| decode(doc)).collect()
    }
}

/// The version an update is conditional on: the gallery's own minus one (writers bump first).
fn bounds_previous(gallery: &Gallery) -> StoreResult<u64> {
    gallery.version.checked_sub(1).ok_or_else(|| StoreError::Invalid("a gallery's version starts at 1".into()))
}
