//! [`LaneControl`] in SQLite: one row per paused lane, so a pause survives a restart of the local
//! server as a disabled event source mapping survives a redeploy. The local drain asks
//! `is_paused` before each receive; the answer is one primary-key read.

use std::path::Path;

use async_trait::async_trait;
use phoenix_domain::jobs::Lane;
use phoenix_domain::ports::{LaneControl, StoreResult};
use rusqlite::params;
use time::OffsetDateTime;

use super::sqlite::{Db, sql_err};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS paused_lanes (
    lane      TEXT PRIMARY KEY,
    paused_at INTEGER NOT NULL  -- unix seconds
);
";

/// Lane switches kept in a SQLite file: the local server keeps them in `queues.sqlite`, next to
/// the messages they hold back.
#[derive(Clone)]
pub struct LocalLanes {
    db: Db,
}

impl LocalLanes {
    /// Opens (creating) the lane switches in the database at `path`; a database that other
    /// stores use too is fine (each store has its own tables).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self { db: Db::open(path, SCHEMA)? })
    }
}

#[async_trait]
impl LaneControl for LocalLanes {
    async fn set_paused(&self, lane: Lane, paused: bool) -> StoreResult<()> {
        let name = lane.as_str();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.db
            .run(move |conn| {
                if paused {
                    // Pausing a paused lane keeps its first pause time.
                    conn.execute(
                        "INSERT OR IGNORE INTO paused_lanes (lane, paused_at) VALUES (?1, ?2)",
                        params![name, now],
                    )
                } else {
                    conn.execute("DELETE FROM paused_lanes WHERE lane = ?1", params![name])
                }
                .map(drop)
                .map_err(sql_err)
            })
            .await
    }

    async fn is_paused(&self, lane: Lane) -> StoreResult<bool> {
        let name = lane.as_str();
        self.db
            .run(move |conn| {
                conn.prepare_cached("SELECT 1 FROM paused_lanes WHERE lane = ?1")
                    .map_err(sql_err)?
                    .exists(params![name])
                    .map_err(sql_err)
            })
            .await
    }
}
