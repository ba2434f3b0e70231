//! One SQLite connection per store, used from blocking threads so the async runtime never waits
//! on disk.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use phoenix_domain::StoreError;
use rusqlite::Connection;

#[derive(Clone)]
pub(crate) struct Db(Arc<Mutex<Connection>>);

impl Db {
    pub(crate) fn open(path: &Path, schema: &str) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(schema).context("creating schema")?;
        Ok(Self(Arc::new(Mutex::new(conn))))
    }

    /// Runs `f` with the connection on this thread (start-up work such as migrations).
    pub(crate) fn with_blocking<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> anyhow::Result<T> {
        let conn = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&conn).context("migrating schema")
    }

    /// Runs `f` with the connection on a blocking thread.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
        // The closure panicked (a bug) or the runtime is shutting down.
        .map_err(StoreError::internal)?
    }
}

pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    StoreError::unavailable(e)
}
