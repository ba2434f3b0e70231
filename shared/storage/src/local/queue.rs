//! Durable in-process queues in SQLite with SQS semantics: at-least-once delivery, a visibility
//! timeout per receive, a receive count, and a move to the dead-letter queue on the receive after
//! `max_receive` receives.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use phoenix_domain::ports::{Queue, QueueName, QueueStats, ReceivedMessage, StoreError, StoreResult};
use rusqlite::params;
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::sqlite::{Db, sql_err};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id            TEXT PRIMARY KEY,
    queue         TEXT NOT NULL,
    body          TEXT NOT NULL,
    sent_at       INTEGER NOT NULL,  -- unix milliseconds
    visible_at    INTEGER NOT NULL,  -- unix milliseconds
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_at, sent_at);
CREATE INDEX IF NOT EXISTS messages_receipt ON messages (receipt);
";

/// SQS allows at most 15 minutes of delay and 12 hours of visibility timeout.
const MAX_DELAY: Duration = Duration::from_secs(900);
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// Receives after which the next receive moves the message to `dead_letter`.
    pub max_receive: u32,
    pub dead_letter: Option<QueueName>,
}

#[derive(Clone)]
pub struct LocalQueue {
    db: Db,
    settings: Arc<HashMap<QueueName, QueueSettings>>,
    arrivals: Arc<Notify>,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl LocalQueue {
    /// Opens (creating) the queues in `path`. Only the named queues exist; a dead-letter queue
    /// must be named too.
    pub fn open(path: &Path, queues: Vec<(QueueName, QueueSettings)>) -> anyhow::Result<Self> {
        let settings: HashMap<_, _> = queues.into_iter().collect();
        for (name, s) in &settings {
            if let Some(dlq) = &s.dead_letter {
                anyhow::ensure!(settings.contains_key(dlq), "queue {} redrives to unknown queue {}", name.0, dlq.0);
            }
        }
        Ok(Self { db: Db::open(path, SCHEMA)?, settings: Arc::new(settings), arrivals: Arc::new(Notify::new()) })
    }

    /// A queue this store was not opened with is a wiring bug, not a bad request: `Internal`.
    fn settings(&self, queue: &QueueName) -> StoreResult<&QueueSettings> {
        self.settings.get(queue).ok_or_else(|| StoreError::internal(anyhow::anyhow!("no queue named {}", queue.0)))
    }

    async fn receive_once(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        let settings = self.settings(queue)?.clone();
        let name = queue.0;
        let max = max.clamp(1, 10) as i64;
        let visibility_ms = visibility.min(MAX_VISIBILITY).as_millis() as i64;
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                let now = now_ms();
                let mut out = Vec::new();
                loop {
                    let candidates: Vec<(String, String, i64, i64)> = {
                        let mut stmt = tx
                            .prepare_cached(
                                "SELECT id, body, sent_at, receive_count FROM messages
                                 WHERE queue = ?1 AND visible_at <= ?2 ORDER BY sent_at, id LIMIT ?3",
                            )
                            .map_err(sql_err)?;
                        stmt.query_map(params![name, now, max - out.len() as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                        })
                        .map_err(sql_err)?
                        .collect::<Result<_, _>>()
                        .map_err(sql_err)?
                    };
                    if candidates.is_empty() {
                        break;
                    }
                    let mut redriven = false;
                    for (id, body, sent_at, count) in candidates {
                        if let (Some(dlq), true) = (&settings.dead_letter, count >= i64::from(settings.max_receive)) {
                            tx.execute(
                                "UPDATE messages SET queue = ?2, visible_at = ?3, receive_count = 0, receipt = NULL
                                 WHERE id = ?1",
                                params![id, dlq.0, now],
                            )
                            .map_err(sql_err)?;
                            redriven = true;
                            continue;
                        }
                        let receipt = format!("{id}.{}", ulid::Ulid::new());
                        tx.execute(
                            "UPDATE messages SET visible_at = ?2, receive_count = receive_count + 1, receipt = ?3
                             WHERE id = ?1",
                            params![id, now + visibility_ms, receipt],
                        )
                        .map_err(sql_err)?;
                        out.push(ReceivedMessage {
                            message_id: id,
                            receipt,
                            body,
                            receive_count: (count + 1) as u32,
                            sent_at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(sent_at) * 1_000_000)
                                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                        });
                    }
                    // Messages moved to the DLQ left room in this batch: look again.
                    if !redriven || out.len() as i64 >= max {
                        break;
                    }
                }
                tx.commit().map_err(sql_err)?;
                Ok(out)
            })
            .await
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn send(&self, queue: &QueueName, body: &str, delay: Duration) -> StoreResult<String> {
        self.settings(queue)?;
        if delay > MAX_DELAY {
            return Err(StoreError::Invalid(format!("delay {delay:?} is over the 15-minute maximum")));
        }
        let id = ulid::Ulid::new().to_string();
        let (name, body, message_id) = (queue.0, body.to_owned(), id.clone());
        let now = now_ms();
        let visible_at = now + delay.as_millis() as i64;
        self.db
            .run(move |conn| {
                conn.execute(
                    "INSERT INTO messages (id, queue, body, sent_at, visible_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![message_id, name, body, now, visible_at],
                )
                .map_err(sql_err)
            })
            .await?;
        self.arrivals.notify_waiters();
        Ok(id)
    }

    async fn receive(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.arrivals.notified();
            let batch = self.receive_once(queue, max, visibility).await?;
            if !batch.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(batch);
            }
            // Wake on a send, or poll for delayed and timed-out messages becoming visible.
            let nap = (deadline - tokio::time::Instant::now()).min(Duration::from_millis(200));
            let _ = tokio::time::timeout(nap, arrived).await;
        }
    }

    async fn delete(&self, queue: &QueueName, receipt: &str) -> StoreResult<()> {
        self.settings(queue)?;
        let (name, receipt) = (queue.0, receipt.to_owned());
        self.db
            .run(move |conn| {
                conn.execute("DELETE FROM messages WHERE queue = ?1 AND receipt = ?2", params![name, receipt])
                    .map_err(sql_err)
                    .map(|_| ())
            })
            .await
    }

    async fn change_visibility(&self, queue: &QueueName, receipt: &str, visibility: Duration) -> StoreResult<()> {
        self.settings(queue)?;
        let (name, receipt) = (queue.0, receipt.to_owned());
        let visible_at = now_ms() + visibility.min(MAX_VISIBILITY).as_millis() as i64;
        let changed = self
            .db
            .run(move |conn| {
                conn.execute(
                    "UPDATE messages SET visible_at = ?3 WHERE queue = ?1 AND receipt = ?2",
                    params![name, receipt, visible_at],
                )
                .map_err(sql_err)
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::Invalid("the receipt handle is no longer valid".into()));
        }
        self.arrivals.notify_waiters();
        Ok(())
    }

    async fn depth(&self, queue: &QueueName) -> StoreResult<u64> {
        self.settings(queue)?;
        let name = queue.0;
        self.db
            .run(move |conn| {
                conn.query_row("SELECT COUNT(*) FROM messages WHERE queue = ?1", params![name], |r| r.get::<_, i64>(0))
                    .map_err(sql_err)
                    .map(|n| n as u64)
            })
            .await
    }

    async fn stats(&self, queue: &QueueName) -> StoreResult<QueueStats> {
        self.settings(queue)?;
        let name = queue.0;
        let now = now_ms();
        // Visible: due now (never received, or its visibility timeout over). In flight: received
        // and still hidden (being worked on, or backing off). Delayed: never received, not due.
        self.db
            .run(move |conn| {
                conn.query_row(
                    "SELECT
                        COALESCE(SUM(visible_at <= ?2), 0),
                        COALESCE(SUM(visible_at > ?2 AND receive_count > 0), 0),
                        COALESCE(SUM(visible_at > ?2 AND receive_count = 0), 0)
                     FROM messages WHERE queue = ?1",
                    params![name, now],
                    |r| {
                        Ok(QueueStats {
                            visible: r.get::<_, i64>(0)? as u64,
                            in_flight: r.get::<_, i64>(1)? as u64,
                            delayed: r.get::<_, i64>(2)? as u64,
                        })
                    },
                )
                .map_err(sql_err)
            })
            .await
    }
}
