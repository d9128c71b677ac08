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
    /// `migrations` it has not had yet, in order, in one transaction;
    /// `PRAGMA user_version` counts those applied.
    pub async fn open(path: &Path, migrations: &'static [&'static str]) -> StoreResult<Self> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> StoreResult<Connection> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            // Processes opening a new database at once can find it locked
            // while another switches it to WAL (SQLite does not wait for
            // that lock): try again for a while.
            let mut tries = 0;
            loop {
                match setup(&path, migrations) {
                    Err(SetupError::Busy(e)) if tries < 50 => {
                        tries += 1;
                        tracing::debug!(error = %e, "database busy while opening; retrying");
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                    Err(SetupError::Busy(e)) => return Err(internal(e)),
                    Err(SetupError::Other(e)) => return Err(e),
                    Ok(conn) => return Ok(conn),
                }
            }
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

enum SetupError {
    Busy(rusqlite::Error),
    Other(StoreError),
}

impl From<rusqlite::Error> for SetupError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
            SetupError::Busy(e)
        } else {
            SetupError::Other(internal(e))
        }
    }
}

fn setup(path: &Path, migrations: &[&str]) -> Result<Connection, SetupError> {
    let mut conn = Connection::open(path).map_err(|e| {
        SetupError::Other(StoreError::Unavailable(format!(
            "cannot open {}: {e}",
            path.display()
        )))
    })?;
    // WAL with synchronous=NORMAL: a committed transaction survives the
    // process being killed; `FULL` would add an fsync per commit to survive
    // power loss too.
    conn.execute_batch(
        "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL; \
         PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    )?;
    migrate(&mut conn, migrations)?;
    super::sqlite_search::register_functions(&conn)?;
    // Every statement the stores run stays prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Applies the migrations not applied yet, under the database's write lock
/// so that processes opening one database at once apply each exactly once.
fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), SetupError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let applied = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if applied > migrations.len() {
        return Err(SetupError::Other(StoreError::Unavailable(format!(
            "the database was written by a newer version (schema {applied}; this one knows {})",
            migrations.len()
        ))));
    }
    for sql in &migrations[applied..] {
        tx.execute_batch(sql)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {}", migrations.len()))?;
    tx.commit()?;
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
