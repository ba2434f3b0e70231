//! [`ShareLinkStore`] on the metadata store's SQLite database: one row per link (as JSON, with the
//! columns its listings need) and one per access. `expires_at` is unix seconds: the link's
//! retention ([`ShareLink::retained_until`]), as DynamoDB's TTL attribute; past it the link and
//! its accesses count as absent.

use async_trait::async_trait;
use phoenix_domain::ports::{Page, ShareLinkStore, StoreError, StoreResult, bounds, cursor};
use phoenix_domain::shares::{ShareAccess, ShareLink};
use phoenix_domain::{GalleryId, ModelId, ShareLinkId};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Transaction, params};

use super::jobs::{Row, decode, encode, now_secs};
use super::metadata::LocalMetadataStore;
use super::sqlite::sql_err;
use crate::shares::{accesses_listing, links_listing};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS share_links (
    link_id    TEXT PRIMARY KEY,
    model_id   TEXT NOT NULL,
    gallery_id TEXT NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS share_links_by_gallery ON share_links (model_id, gallery_id, link_id);
CREATE TABLE IF NOT EXISTS share_accesses (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    link_id    TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS share_accesses_by_link ON share_accesses (link_id, seq);
";

fn live_link(conn: &rusqlite::Connection, id: &str, now: i64) -> StoreResult<Option<(u64, String)>> {
    conn.prepare_cached("SELECT version, doc FROM share_links WHERE link_id = ?1 AND expires_at > ?2")
        .map_err(sql_err)?
        .query_row(params![id, now], |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, String>(1)?)))
        .optional()
        .map_err(sql_err)
}

impl Row for ShareLink {
    fn live(&self, conn: &rusqlite::Connection, now: i64) -> StoreResult<Option<(u64, String)>> {
        live_link(conn, &self.link_id.to_string(), now)
    }

    fn write(&self, tx: &Transaction<'_>) -> StoreResult<()> {
        let doc = encode("share link", self)?;
        tx.execute(
            "INSERT OR REPLACE INTO share_links (link_id, model_id, gallery_id, version, expires_at, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                self.link_id.to_string(),
                self.model_id.as_str(),
                self.gallery_id.as_str(),
                self.version as i64,
                self.retained_until().unix_timestamp(),
                doc
            ],
        )
        .map_err(sql_err)
        .map(drop)
    }
}

#[async_trait]
impl ShareLinkStore for LocalMetadataStore {
    async fn create_link(&self, link: &ShareLink) -> StoreResult<()> {
        if link.version != 1 {
            return Err(StoreError::Invalid(format!("a new link has version 1, not {}", link.version)));
        }
        self.create_row(link).await
    }

    async fn get_link(&self, id: &ShareLinkId) -> StoreResult<ShareLink> {
        let id = id.to_string();
        let now = now_secs();
        let row = self.db.run(move |conn| live_link(conn, &id, now)).await?;
        decode("share link", &row.ok_or(StoreError::NotFound)?.1)
    }

    async fn update_link(&self, link: &ShareLink) -> StoreResult<()> {
        self.replace_row(link, crate::jobs::previous_version(link.version)?).await
    }

    async fn list_links(
        &self,
        model: &ModelId,
        gallery: Option<&GalleryId>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<ShareLink>> {
        let limit = bounds::page_size(limit)?;
        let listing = links_listing(model, gallery);
        let after: Option<ShareLinkId> = cursor.as_deref().map(|c| cursor::decode(c, &listing)).transpose()?;
        let mut sql = String::from("SELECT doc FROM share_links WHERE model_id = ? AND expires_at > ?");
        let mut values = vec![Value::Text(model.as_str().to_owned()), Value::Integer(now_secs())];
        if let Some(gallery) = gallery {
            sql.push_str(" AND gallery_id = ?");
            values.push(Value::Text(gallery.as_str().to_owned()));
        }
        if let Some(after) = after {
            sql.push_str(" AND link_id < ?");
            values.push(Value::Text(after.to_string()));
        }
        sql.push_str(" ORDER BY link_id DESC LIMIT ?");
        values.push(Value::Integer(limit as i64));
        self.page(sql, values, limit, &listing, |doc| decode("share link", doc), |link: &ShareLink| link.link_id).await
    }

    async fn record_access(&self, link: &ShareLink, access: &ShareAccess) -> StoreResult<()> {
        if access.link_id != link.link_id {
            return Err(StoreError::Invalid("an access belongs to the link it is recorded with".into()));
        }
        let doc = encode("share access", access)?;
        let (id, expires) = (link.link_id.to_string(), link.retained_until().unix_timestamp());
        self.db
            .run(move |conn| {
                conn.execute(
                    "INSERT INTO share_accesses (link_id, expires_at, doc) VALUES (?1, ?2, ?3)",
                    params![id, expires, doc],
                )
                .map(drop)
                .map_err(sql_err)
            })
            .await
    }

    async fn list_accesses(
        &self,
        id: &ShareLinkId,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<ShareAccess>> {
        let limit = bounds::page_size(limit)?;
        let listing = accesses_listing(id);
        // The position is the previous page's last row (rows only ever grow).
        let after: Option<i64> = cursor.as_deref().map(|c| cursor::decode(c, &listing)).transpose()?;
        let (id, now) = (id.to_string(), now_secs());
        let rows: Vec<(i64, String)> = self
            .db
            .run(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT seq, doc FROM share_accesses WHERE link_id = ?1 AND expires_at > ?2 AND seq < ?3
                         ORDER BY seq DESC LIMIT ?4",
                    )
                    .map_err(sql_err)?;
                stmt.query_map(params![id, now, after.unwrap_or(i64::MAX), limit as i64], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(sql_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_err)
            })
            .await?;
        let items = rows.iter().map(|(_, doc)| decode("share access", doc)).collect::<StoreResult<Vec<_>>>()?;
        let next_cursor = match rows.last() {
            Some((seq, _)) if rows.len() == limit => Some(cursor::encode(&listing, seq)?),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}
