//! A SQLite connection shared by the embedded stores, used from tokio's
//! blocking pool so that queries never stall the runtime.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use rusqlite::Connection;

use super::{StoreError, StoreResult};

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and applies the
    /// `migrations` it has not had yet, in order, each in a transaction;
    /// `PRAGMA user_version` counts those applied.
    pub async fn open(path: &Path, migrations: &'static [&'static str]) -> StoreResult<Self> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> StoreResult<Connection> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut conn = Connection::open(&path).map_err(|e| {
                StoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
            })?;
            // WAL with synchronous=NORMAL: a committed transaction survives
            // the process being killed; `FULL` would add an fsync per commit
            // to survive power loss too.
            conn.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                 PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;",
            )
            .map_err(internal)?;
            migrate(&mut conn, migrations)?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::Internal("database lock poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }
}

fn migrate(conn: &mut Connection, migrations: &[&str]) -> StoreResult<()> {
    let applied: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(internal)? as usize;
    if applied > migrations.len() {
        return Err(StoreError::Unavailable(format!(
            "the database was written by a newer version (schema {applied}; this one knows {})",
            migrations.len()
        )));
    }
    for (i, sql) in migrations.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(internal)?;
        tx.execute_batch(sql).map_err(internal)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(internal)?;
        tx.commit().map_err(internal)?;
    }
    Ok(())
}

pub fn internal(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(e.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        internal(e)
    }
}
