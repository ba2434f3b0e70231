//! Media records in SQLite: one row per record, the record as JSON, and the columns the queries
//! need (the same orderings as the DynamoDB table and its GSI1).

use std::path::Path;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use phoenix_domain::ports::{MediaQuery, MetadataStore, Page, StoreError, StoreResult};
use phoenix_domain::{MediaId, MediaRecord, ModelId};
use rusqlite::{OptionalExtension, params};
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
";

#[derive(Clone)]
pub struct LocalMetadataStore {
    db: Db,
}

impl LocalMetadataStore {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self { db: Db::open(path, SCHEMA)? })
    }
}

fn encode(record: &MediaRecord) -> StoreResult<String> {
    serde_json::to_string(record).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn decode(doc: &str) -> StoreResult<MediaRecord> {
    serde_json::from_str(doc).map_err(|e| StoreError::unavailable(anyhow::anyhow!("corrupt record: {e}")))
}

/// A page position, bound to the listing it came from so it cannot be replayed elsewhere.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    model: String,
    status: Option<String>,
    after: MediaId,
}

fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

fn decode_cursor(raw: &str, model: &str, status: Option<&str>) -> StoreResult<String> {
    let cursor: Cursor = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| StoreError::Invalid("cursor is not one this service issued".into()))?;
    if cursor.model != model || cursor.status.as_deref() != status {
        return Err(StoreError::Invalid("cursor is not one this listing returned".into()));
    }
    Ok(cursor.after.to_string())
}

#[async_trait]
impl MetadataStore for LocalMetadataStore {
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()> {
        let doc = encode(record)?;
        let (model, media, status, version) =
            (record.model_id.to_string(), record.media_id.to_string(), record.status.as_str(), record.version as i64);
        let expires = record.expires_at.map(|t| t.unix_timestamp());
        self.db
            .run(move |conn| {
                let inserted = conn
                    .execute(
                        "INSERT INTO media (model_id, media_id, status, version, expires_at, doc)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                        params![model, media, status, version, expires, doc],
                    )
                    .map_err(sql_err)?;
                if inserted == 0 { Err(StoreError::AlreadyExists) } else { Ok(()) }
            })
            .await
    }

    async fn get_media(&self, model: &ModelId, media: &MediaId) -> StoreResult<MediaRecord> {
        let (model, media) = (model.to_string(), media.to_string());
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let doc: Option<String> = self
            .db
            .run(move |conn| {
                conn.query_row(
                    "SELECT doc FROM media WHERE model_id = ?1 AND media_id = ?2
                     AND (expires_at IS NULL OR expires_at > ?3)",
                    params![model, media, now],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sql_err)
            })
            .await?;
        decode(&doc.ok_or(StoreError::NotFound)?)
    }

    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()> {
        let expected =
            record.version.checked_sub(1).ok_or_else(|| StoreError::Invalid("a record's version starts at 1".into()))?
                as i64;
        let doc = encode(record)?;
        let (model, media, status, version) =
            (record.model_id.to_string(), record.media_id.to_string(), record.status.as_str(), record.version as i64);
        let expires = record.expires_at.map(|t| t.unix_timestamp());
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                let current: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM media WHERE model_id = ?1 AND media_id = ?2",
                        params![model, media],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(sql_err)?;
                match current {
                    None => return Err(StoreError::NotFound),
                    Some(v) if v != expected => {
                        return Err(StoreError::VersionConflict { current: Some(v as u64) });
                    }
                    Some(_) => {}
                }
                tx.execute(
                    "UPDATE media SET status = ?3, version = ?4, expires_at = ?5, doc = ?6
                     WHERE model_id = ?1 AND media_id = ?2",
                    params![model, media, status, version, expires, doc],
                )
                .map_err(sql_err)?;
                tx.commit().map_err(sql_err)
            })
            .await
    }

    async fn list_media(&self, model: &ModelId, query: &MediaQuery) -> StoreResult<Page<MediaRecord>> {
        let model = model.to_string();
        let status = query.status.map(|s| s.as_str());
        let after = query.cursor.as_deref().map(|c| decode_cursor(c, &model, status)).transpose()?;
        let limit = query.limit.clamp(1, 1000) as i64;
        let cursor_model = model.clone();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let rows: Vec<(String, String)> = self
            .db
            .run(move |conn| {
                // Unbounded upper key: a cursor-less page starts past any real key.
                let after = after.unwrap_or_else(|| "\u{10FFFF}".to_owned());
                // Newest first: media ids are ULIDs, so they sort by creation time (the
                // DynamoDB table and its GSI1 sort the same way).
                let sql = "SELECT media_id, doc FROM media WHERE model_id = ?1 AND (?2 IS NULL OR status = ?2)
                           AND media_id < ?3 AND (expires_at IS NULL OR expires_at > ?4)
                           ORDER BY media_id DESC LIMIT ?5";
                let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
                let rows = stmt
                    .query_map(params![model, status, after, now, limit], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                    })
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)?;
                Ok(rows)
            })
            .await?;
        let items = rows.iter().map(|(_, doc)| decode(doc)).collect::<StoreResult<Vec<_>>>()?;
        let next_cursor = match items.last() {
            Some(last) if rows.len() as i64 == limit => Some(encode_cursor(&Cursor {
                model: cursor_model,
                status: status.map(str::to_owned),
                after: last.media_id,
            })),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}
