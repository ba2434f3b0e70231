//! [`BatchStore`] on the metadata store's SQLite database: one row per batch, per chunk and per
//! item outcome (each as JSON, with the columns the queries need). Sharing the database with the
//! media records is what makes an item's write atomic: the record (with its tag and gallery rows,
//! written by the same code as `update_media`) and the item's outcome commit together.
//!
//! `write_items` applies a whole group in one SQLite transaction (one commit, one fsync) with a
//! SAVEPOINT per item: an item whose outcome exists already (`AlreadyExists`) or whose record is
//! not at the expected version (`VersionConflict`, `NotFound`) rolls back to its savepoint, so
//! neither its record nor its outcome is written, and its neighbours are untouched.

use std::collections::HashMap;

use async_trait::async_trait;
use phoenix_domain::BatchId;
use phoenix_domain::ModelId;
use phoenix_domain::batches::{Batch, BatchChunk, BatchItem, BatchStatus, ItemOutcome};
use phoenix_domain::ports::{BatchQuery, BatchStore, ItemWrite, Page, StoreError, StoreResult, bounds, cursor};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use super::jobs::{Row, decode, encode, now_secs};
use super::metadata::{LocalMetadataStore, update_row};
use super::sqlite::sql_err;
use crate::batches::{batch_is_live, check_seq, items_listing};
use crate::jobs::previous_version;

/// Created on open, with the media and job tables (`CREATE … IF NOT EXISTS`). `expires_at` is
/// unix seconds (the batch's, copied onto its chunks and items, as DynamoDB's TTL attribute).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
    batch_id   TEXT PRIMARY KEY,
    model_id   TEXT NOT NULL,
    status     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_model ON batches (model_id, batch_id);
CREATE INDEX IF NOT EXISTS batches_by_status ON batches (status, model_id);
CREATE TABLE IF NOT EXISTS batch_chunks (
    batch_id   TEXT NOT NULL,
    chunk      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (batch_id, chunk)
);
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    outcome    TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (batch_id, seq)
);
";

/// The live batch row's version and document (an expired row counts as absent).
fn live_batch(conn: &rusqlite::Connection, id: &str, now: i64) -> StoreResult<Option<(u64, String)>> {
    conn.prepare_cached("SELECT version, doc FROM batches WHERE batch_id = ?1 AND expires_at > ?2")
        .map_err(sql_err)?
        .query_row(params![id, now], |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, String>(1)?)))
        .optional()
        .map_err(sql_err)
}

impl Row for Batch {
    fn live(&self, conn: &rusqlite::Connection, now: i64) -> StoreResult<Option<(u64, String)>> {
        live_batch(conn, &self.batch_id.to_string(), now)
    }

    fn write(&self, tx: &Transaction<'_>) -> StoreResult<()> {
        let doc = encode("batch", self)?;
        tx.execute(
            "INSERT OR REPLACE INTO batches (batch_id, model_id, status, version, expires_at, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                self.batch_id.to_string(),
                self.model_id.as_str(),
                self.status.as_str(),
                self.version as i64,
                self.expires_at.unix_timestamp(),
                doc
            ],
        )
        .map_err(sql_err)
        .map(drop)
    }
}

/// Runs `f` inside a savepoint of `tx`: released when it succeeds, rolled back to when it fails
/// (so the item's writes vanish and the group goes on). The outer error is a failure of the
/// savepoint itself, after which the group cannot go on.
fn in_savepoint(tx: &Transaction<'_>, f: impl FnOnce() -> StoreResult<()>) -> StoreResult<StoreResult<()>> {
    tx.prepare_cached("SAVEPOINT item").map_err(sql_err)?.execute([]).map_err(sql_err)?;
    let result = f();
    if result.is_err() {
        tx.prepare_cached("ROLLBACK TO item").map_err(sql_err)?.execute([]).map_err(sql_err)?;
    }
    tx.prepare_cached("RELEASE item").map_err(sql_err)?.execute([]).map_err(sql_err)?;
    Ok(result)
}

/// One item's write within the group's transaction: its outcome (if it has none yet) and its
/// record (conditional on the version, with its index rows), both or neither.
fn write_one(
    tx: &Transaction<'_>,
    write: &ItemWrite,
    now: i64,
    expiries: &mut HashMap<BatchId, Option<i64>>,
) -> StoreResult<StoreResult<()>> {
    let item = &write.item;
    let checked = check_seq(item.seq)
        .and_then(|()| {
            write.record.as_ref().map_or(Ok(()), |r| bounds::record(r).and(bounds::previous_version(r).map(drop)))
        })
        .and_then(|()| encode("batch item", item));
    let doc = match checked {
        Ok(doc) => doc,
        Err(e) => return Ok(Err(e)),
    };
    // The items carry their batch's expiry; a batch that is gone takes no items.
    let expires = match expiries.get(&item.batch_id) {
        Some(expires) => *expires,
        None => {
            let expires: Option<i64> = tx
                .prepare_cached("SELECT expires_at FROM batches WHERE batch_id = ?1 AND expires_at > ?2")
                .map_err(sql_err)?
                .query_row(params![item.batch_id.to_string(), now], |row| row.get(0))
                .optional()
                .map_err(sql_err)?;
            *expiries.entry(item.batch_id).or_insert(expires)
        }
    };
    let Some(expires) = expires else {
        return Ok(Err(StoreError::NotFound));
    };
    in_savepoint(tx, || {
        let inserted = tx
            .prepare_cached(
                "INSERT INTO batch_items (batch_id, seq, outcome, expires_at, doc) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (batch_id, seq) DO NOTHING",
            )
            .map_err(sql_err)?
            .execute(params![item.batch_id.to_string(), item.seq, item.outcome.as_str(), expires, doc])
            .map_err(sql_err)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
        match &write.record {
            Some(record) => update_row(tx, record, now),
            None => Ok(()),
        }
    })
}

/// The same failure for each write of a group that could not commit.
fn for_each(e: &StoreError) -> StoreError {
    match e {
        StoreError::Internal(_) => StoreError::internal(anyhow::anyhow!("batch items: {e}")),
        _ => StoreError::unavailable(anyhow::anyhow!("batch items: {e}")),
    }
}

impl LocalMetadataStore {
    /// The documents `sql` selects with `values`, decoded.
    async fn docs<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        sql: &'static str,
        values: Vec<Value>,
    ) -> StoreResult<Vec<T>> {
        let docs: Vec<String> = self
            .db
            .run(move |conn| {
                let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
                stmt.query_map(rusqlite::params_from_iter(values), |row| row.get::<_, String>(0))
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)
            })
            .await?;
        docs.iter().map(|doc| decode(what, doc)).collect()
    }
}

#[async_trait]
impl BatchStore for LocalMetadataStore {
    async fn create_batch(&self, batch: &Batch, chunks: &[BatchChunk]) -> StoreResult<()> {
        let batch = batch.clone();
        let mut docs = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            docs.push((chunk.chunk, encode("batch chunk", chunk)?));
        }
        let now = now_secs();
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                if batch.live(&tx, now)?.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
                let id = batch.batch_id.to_string();
                // An expired leftover with this id counts as absent: it goes, with what it held.
                for table in ["batch_chunks", "batch_items"] {
                    tx.execute(&format!("DELETE FROM {table} WHERE batch_id = ?1"), params![id]).map_err(sql_err)?;
                }
                batch.write(&tx)?;
                let expires = batch.expires_at.unix_timestamp();
                for (chunk, doc) in &docs {
                    tx.prepare_cached(
                        "INSERT INTO batch_chunks (batch_id, chunk, expires_at, doc) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(sql_err)?
                    .execute(params![id, chunk, expires, doc])
                    .map_err(sql_err)?;
                }
                tx.commit().map_err(sql_err)
            })
            .await
    }

    async fn get_batch(&self, id: &BatchId) -> StoreResult<Batch> {
        let id = id.to_string();
        let now = now_secs();
        let row = self.db.run(move |conn| live_batch(conn, &id, now)).await?;
        let batch: Batch = decode("batch", &row.ok_or(StoreError::NotFound)?.1)?;
        // The column holds whole seconds; the record the instant.
        if !batch_is_live(&batch, OffsetDateTime::now_utc()) {
            return Err(StoreError::NotFound);
        }
        Ok(batch)
    }

    async fn update_batch(&self, batch: &Batch) -> StoreResult<()> {
        self.replace_row(batch, previous_version(batch.version)?).await
    }

    async fn get_chunk(&self, id: &BatchId, chunk: u32) -> StoreResult<BatchChunk> {
        let values = vec![Value::Text(id.to_string()), Value::Integer(chunk.into()), Value::Integer(now_secs())];
        let sql = "SELECT doc FROM batch_chunks WHERE batch_id = ?1 AND chunk = ?2 AND expires_at > ?3";
        self.docs("batch chunk", sql, values).await?.pop().ok_or(StoreError::NotFound)
    }

    async fn put_chunk_counts(&self, chunk: &BatchChunk) -> StoreResult<()> {
        let (id, number, counts) = (chunk.batch_id.to_string(), chunk.chunk, chunk.counts);
        let now = now_secs();
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                let doc: String = tx
                    .query_row(
                        "SELECT doc FROM batch_chunks WHERE batch_id = ?1 AND chunk = ?2 AND expires_at > ?3",
                        params![id, number, now],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(sql_err)?
                    .ok_or(StoreError::NotFound)?;
                // Only the counts change: the snapshot is what the batch was submitted with.
                let mut stored: BatchChunk = decode("batch chunk", &doc)?;
                stored.counts = counts;
                tx.execute(
                    "UPDATE batch_chunks SET doc = ?3 WHERE batch_id = ?1 AND chunk = ?2",
                    params![id, number, encode("batch chunk", &stored)?],
                )
                .map_err(sql_err)?;
                tx.commit().map_err(sql_err)
            })
            .await
    }

    async fn list_chunks(&self, id: &BatchId) -> StoreResult<Vec<BatchChunk>> {
        let values = vec![Value::Text(id.to_string()), Value::Integer(now_secs())];
        let sql = "SELECT doc FROM batch_chunks WHERE batch_id = ?1 AND expires_at > ?2 ORDER BY chunk";
        self.docs("batch chunk", sql, values).await
    }

    async fn get_items(&self, id: &BatchId, from: u32, to: u32) -> StoreResult<Vec<BatchItem>> {
        let values = vec![
            Value::Text(id.to_string()),
            Value::Integer(from.into()),
            Value::Integer(to.into()),
            Value::Integer(now_secs()),
        ];
        let sql = "SELECT doc FROM batch_items WHERE batch_id = ?1 AND seq >= ?2 AND seq < ?3 AND expires_at > ?4
                   ORDER BY seq";
        self.docs("batch item", sql, values).await
    }

    async fn get_item(&self, id: &BatchId, seq: u32) -> StoreResult<BatchItem> {
        let values = vec![Value::Text(id.to_string()), Value::Integer(seq.into()), Value::Integer(now_secs())];
        let sql = "SELECT doc FROM batch_items WHERE batch_id = ?1 AND seq = ?2 AND expires_at > ?3";
        self.docs("batch item", sql, values).await?.pop().ok_or(StoreError::NotFound)
    }

    async fn write_items(&self, writes: &[ItemWrite]) -> Vec<StoreResult<()>> {
        if writes.is_empty() {
            return Vec::new();
        }
        let count = writes.len();
        let writes = writes.to_vec();
        let now = now_secs();
        let group = self
            .db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                let mut expiries = HashMap::new();
                let mut results = Vec::with_capacity(writes.len());
                for write in &writes {
                    results.push(write_one(&tx, write, now, &mut expiries)?);
                }
                tx.commit().map_err(sql_err)?;
                Ok(results)
            })
            .await;
        // A group that could not commit wrote nothing: each of its writes failed alike.
        group.unwrap_or_else(|e| (0..count).map(|_| Err(for_each(&e))).collect())
    }

    async fn revise_item(&self, item: &BatchItem, from: ItemOutcome) -> StoreResult<()> {
        let doc = encode("batch item", item)?;
        let (id, seq, outcome, now) = (item.batch_id.to_string(), item.seq, item.outcome.as_str(), now_secs());
        self.db
            .run(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE batch_items SET outcome = ?1, doc = ?2
                         WHERE batch_id = ?3 AND seq = ?4 AND outcome = ?5 AND expires_at > ?6",
                    )
                    .map_err(sql_err)?
                    .execute(params![outcome, doc, id, seq, from.as_str(), now])
                    .map_err(sql_err)?;
                if changed == 1 {
                    return Ok(());
                }
                let exists = conn
                    .prepare_cached("SELECT 1 FROM batch_items WHERE batch_id = ?1 AND seq = ?2 AND expires_at > ?3")
                    .map_err(sql_err)?
                    .query_row(params![id, seq, now], |_| Ok(()))
                    .optional()
                    .map_err(sql_err)?;
                Err(match exists {
                    Some(()) => StoreError::VersionConflict { current: None },
                    None => StoreError::NotFound,
                })
            })
            .await
    }

    async fn list_items(
        &self,
        id: &BatchId,
        outcome: Option<ItemOutcome>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<BatchItem>> {
        let limit = bounds::page_size(limit)?;
        let listing = items_listing(id, outcome);
        // The position is the place of the previous page's last item.
        let after: Option<u32> = cursor.as_deref().map(|c| cursor::decode(c, &listing)).transpose()?;
        let mut sql = String::from("SELECT doc FROM batch_items WHERE batch_id = ? AND expires_at > ?");
        let mut values = vec![Value::Text(id.to_string()), Value::Integer(now_secs())];
        if let Some(outcome) = outcome {
            sql.push_str(" AND outcome = ?");
            values.push(Value::Text(outcome.as_str().to_owned()));
        }
        if let Some(after) = after {
            sql.push_str(" AND seq > ?");
            values.push(Value::Integer(after.into()));
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        values.push(Value::Integer(limit as i64));
        self.page(sql, values, limit, &listing, |doc| decode("batch item", doc), |item: &BatchItem| item.seq).await
    }

    async fn list_batches(&self, query: &BatchQuery) -> StoreResult<Page<Batch>> {
        let limit = bounds::page_size(query.limit)?;
        let listing = query.listing();
        // The position is the last batch id of the previous page.
        let after: Option<BatchId> = query.cursor.as_deref().map(|c| cursor::decode(c, &listing)).transpose()?;
        let mut sql = String::from("SELECT doc FROM batches WHERE expires_at > ?");
        let mut values = vec![Value::Integer(now_secs())];
        if let Some(model) = &query.model {
            sql.push_str(" AND model_id = ?");
            values.push(Value::Text(model.as_str().to_owned()));
        }
        if let Some(after) = after {
            sql.push_str(" AND batch_id < ?");
            values.push(Value::Text(after.to_string()));
        }
        // Batch ids are ULIDs: id order is submission order, as the DynamoDB indexes sort them.
        sql.push_str(" ORDER BY batch_id DESC LIMIT ?");
        values.push(Value::Integer(limit as i64));
        self.page(sql, values, limit, &listing, |doc| decode("batch", doc), |batch: &Batch| batch.batch_id).await
    }

    async fn count_batches(&self, model: Option<&ModelId>, status: BatchStatus) -> StoreResult<u64> {
        let model = model.map(|m| m.as_str().to_owned());
        let now = now_secs();
        self.db
            .run(move |conn| {
                let (sql, values) = match model {
                    Some(model) => (
                        "SELECT COUNT(*) FROM batches WHERE status = ?1 AND model_id = ?2 AND expires_at > ?3",
                        vec![Value::Text(status.as_str().to_owned()), Value::Text(model), Value::Integer(now)],
                    ),
                    None => (
                        "SELECT COUNT(*) FROM batches WHERE status = ?1 AND expires_at > ?2",
                        vec![Value::Text(status.as_str().to_owned()), Value::Integer(now)],
                    ),
                };
                conn.prepare_cached(sql)
                    .map_err(sql_err)?
                    .query_row(rusqlite::params_from_iter(values), |row| row.get::<_, i64>(0))
                    .map(|n| n as u64)
                    .map_err(sql_err)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use phoenix_domain::batches::CHUNK_SIZE;
    use phoenix_domain::ports::MediaStore;
    use phoenix_domain::{MediaId, MediaStatus, Tag};

    use super::*;
    use crate::conformance::{sample_batch, sample_chunks, sample_outcome, sample_record};

    /// Not a check (no timed assertion): measures `write_items` on 10,000 items in chunks of 100,
    /// each a record's change (with a tag row) and its outcome. Run with
    /// `cargo test -p phoenix-storage --lib write_items_rate -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement, not a test"]
    async fn write_items_rate() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = LocalMetadataStore::open(&dir.path().join("metadata.sqlite")).expect("open");
        let model = ModelId::parse("bench").expect("model");
        let batch = sample_batch(&model, BatchStatus::Running);
        store.create_batch(&batch, &sample_chunks(&batch, 10_000)).await.expect("create_batch");
        let mut records = Vec::with_capacity(10_000);
        for _ in 0..10_000 {
            let record = sample_record(&model, &MediaId::new(), MediaStatus::Approved);
            store.create_media(&record).await.expect("create_media");
            records.push(record);
        }
        let tag = Tag::parse("batch-added").expect("tag");
        let writes: Vec<ItemWrite> = records
            .into_iter()
            .enumerate()
            .map(|(seq, mut record)| {
                record.version += 1;
                record.metadata.tags.push(tag.clone());
                let item =
                    BatchItem { media_id: record.media_id, ..sample_outcome(&batch, seq as u32, ItemOutcome::Applied) };
                ItemWrite { record: Some(record), item }
            })
            .collect();
        let started = std::time::Instant::now();
        for chunk in writes.chunks(CHUNK_SIZE) {
            for result in store.write_items(chunk).await {
                result.expect("write_items");
            }
        }
        let elapsed = started.elapsed();
        println!("write_items: 10,000 items in {elapsed:?}: {:.0} items/s", 10_000.0 / elapsed.as_secs_f64());
        assert_eq!(store.get_items(&batch.batch_id, 0, 10_000).await.expect("get_items").len(), 10_000);
    }
}
