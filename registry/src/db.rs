//! The database: one pool over SQLite (the embedded default) or PostgreSQL,
//! the schema migrations, and the mapping of database failures to what callers
//! should say about them.
//!
//! Every query is written once, in SQL that both databases accept (`$1`
//! placeholders, `TEXT`/`BIGINT`, `RETURNING`), and runs through sqlx's `Any`
//! driver, so the two backends cannot drift apart. The one exception is the
//! catalog's text search (an FTS5 trigram index on SQLite, `pg_trgm` on
//! PostgreSQL), behind one function of the domain (`domain::search`).

use crate::changes::Changes;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// One schema migration: the same SQL on both databases, or one text each
/// where they differ (catalog search).
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

impl Migration {
    const fn portable(version: i64, name: &'static str, sql: &'static str) -> Migration {
        Migration {
            version,
            name,
            sqlite: sql,
            postgres: sql,
        }
    }
}

/// The migrations, in order. Each runs once, in its own transaction.
const MIGRATIONS: &[Migration] = &[
    Migration::portable(1, "init", include_str!("../migrations/0001_init.sql")),
    Migration::portable(2, "kv", include_str!("../migrations/0002_kv.sql")),
    Migration::portable(
        3,
        "kv_org_locks",
        include_str!("../migrations/0003_kv_org_locks.sql"),
    ),
    Migration {
        version: 4,
        name: "catalog_search",
        sqlite: include_str!("../migrations/0004_catalog_search.sqlite.sql"),
        postgres: include_str!("../migrations/0004_catalog_search.postgres.sql"),
    },
    Migration {
        version: 5,
        name: "kv_bytes",
        sqlite: include_str!("../migrations/0005_kv_bytes.sqlite.sql"),
        postgres: include_str!("../migrations/0005_kv_bytes.postgres.sql"),
    },
    Migration::portable(
        6,
        "referrers",
        include_str!("../migrations/0006_referrers.sql"),
    ),
    Migration::portable(7, "secrets", include_str!("../migrations/0007_secrets.sql")),
    Migration::portable(
        8,
        "webhooks",
        include_str!("../migrations/0008_webhooks.sql"),
    ),
    Migration::portable(
        9,
        "console sessions",
        include_str!("../migrations/0009_console_sessions.sql"),
    ),
    Migration::portable(
        10,
        "embedded store",
        include_str!("../migrations/0010_embedded_store.sql"),
    ),
    Migration::portable(
        11,
        "version tags",
        include_str!("../migrations/0011_version_tags.sql"),
    ),
];

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (WAL mode).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A connection pool and the backend it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    changes: Arc<Changes>,
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL {0:?} (expected sqlite:// or postgres://)")]
    UnsupportedUrl(String),
    /// sqlx failed.
    #[error("{context}: {source}")]
    Sqlx {
        /// What was being done.
        context: String,
        /// The failure.
        source: sqlx::Error,
    },
}

fn sqlx_error(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> DbError {
    let context = context.into();
    move |source| DbError::Sqlx { context, source }
}

/// Unix time in milliseconds: how every timestamp is stored.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Db {
    /// The embedded default: `<data_dir>/warden.db`, created if missing.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Db, DbError> {
        let url = format!("sqlite://{}?mode=rwc", data_dir.join("warden.db").display());
        Db::connect(&url).await
    }

    /// Connects to `url` (`sqlite://...` or `postgres://...`) and applies any
    /// pending migrations.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(redact(url)));
        };
        let options = AnyConnectOptions::from_str(url)
            .map_err(sqlx_error(format!("parsing {}", redact(url))))?;
        let pool = AnyPoolOptions::new()
            // SQLite has one writer at a time anyway; a few readers are plenty.
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            // A database that is down must turn into a quick 503, not a
            // hang: this is the longest a request waits before the change
            // watcher notices (then `api::database_gate` answers at once).
            .acquire_timeout(Duration::from_secs(2))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            connection
                                .execute(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                                )
                                .await?;
                        }
                        // Prepared statements are planned with their
                        // parameters every time: a catalog search for a rare
                        // text uses the trigram index, a common one the
                        // name order (a generic plan would pick one for all).
                        Backend::Postgres => {
                            connection
                                .execute("SET plan_cache_mode = force_custom_plan")
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            // A SQLite connection whose COMMIT failed (a full disk) keeps its
            // transaction, and with it the write lock, until someone rolls it
            // back; returned to the pool so, it would keep every other writer
            // at "database is locked" even after space returns. Every
            // connection is rolled back as it is released (on a connection
            // with no transaction, a no-op that SQLite refuses), and one
            // that had a transaction left is closed.
            .after_release(move |connection, _| {
                Box::pin(async move {
                    // A ROLLBACK that succeeds found a transaction nobody
                    // owned: that connection's state is not what sqlx
                    // thinks, so it is closed rather than kept.
                    if backend == Backend::Sqlite && connection.execute("ROLLBACK").await.is_ok() {
                        return Ok(false);
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(sqlx_error(format!("connecting to {}", redact(url))))?;
        let db = Db {
            pool,
            backend,
            changes: Arc::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which organizations changed: advanced by every committed change, read
    /// by what caches the database's data.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Holds the start-up lock until [`StartupLock::release`]: on
    /// PostgreSQL, a session advisory lock on a connection of its own, so
    /// that replicas starting at the same moment migrate and bootstrap one
    /// after the other (a crashed holder's lock ends with its session). On
    /// SQLite, whose file has one server, nothing.
    pub async fn startup_lock(&self) -> Result<StartupLock, sqlx::Error> {
        if self.backend != Backend::Postgres {
            return Ok(StartupLock(None));
        }
        // Detached: a connection that holds the lock never goes back to the
        // pool; closing it releases the lock.
        let mut connection = self.pool.acquire().await?.detach();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(STARTUP_LOCK)
            .execute(&mut connection)
            .await?;
        Ok(StartupLock(Some(connection)))
    }

    /// Takes the advisory lock named `name` for the rest of the transaction
    /// open on `connection` (PostgreSQL; on SQLite, whose writers take
    /// turns anyway, nothing): whoever takes the same name waits until that
    /// transaction ends.
    pub async fn lock_in_transaction(
        &self,
        connection: &mut sqlx::AnyConnection,
        name: &str,
    ) -> Result<(), sqlx::Error> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(name.as_bytes());
        let key = i64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(connection)
            .await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), DbError> {
        let lock = self
            .startup_lock()
            .await
            .map_err(sqlx_error("waiting for the start-up lock"))?;
        let migrated = self.migrate_locked().await;
        lock.release().await;
        migrated
    }

    async fn migrate_locked(&self) -> Result<(), DbError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS warden_migrations (
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .map_err(sqlx_error("creating the migrations table"))?;
        for migration in MIGRATIONS {
            let (version, name) = (migration.version, migration.name);
            let sql = match self.backend {
                Backend::Sqlite => migration.sqlite,
                Backend::Postgres => migration.postgres,
            };
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(sqlx_error("starting a migration"))?;
            // Claiming the version first makes a second replica starting at the
            // same moment fail on the primary key instead of applying it twice.
            let claimed = sqlx::query(
                "INSERT INTO warden_migrations (version, name, applied_at) VALUES ($1, $2, $3)
                 ON CONFLICT (version) DO NOTHING",
            )
            .bind(version)
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(sqlx_error(format!("migration {version} ({name})")))?;
            if claimed.rows_affected() == 0 {
                continue;
            }
            for statement in statements(sql) {
                // Our own migration text, compiled into the binary.
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await
                    .map_err(sqlx_error(format!("migration {version} ({name})")))?;
            }
            tx.commit()
                .await
                .map_err(sqlx_error(format!("committing migration {version}")))?;
            tracing::info!(version, name, "applied migration");
        }
        Ok(())
    }
}

/// The key of the advisory lock under which a start migrates and
/// bootstraps (`WARDEN` in ASCII).
const STARTUP_LOCK: i64 = 0x5741_5244_454e;

/// The start-up lock, held until released (or the process ends).
pub struct StartupLock(Option<sqlx::AnyConnection>);

impl StartupLock {
    /// Releases the lock.
    pub async fn release(self) {
        if let Some(connection) = self.0 {
            // Closing the session releases its advisory locks.
            if let Err(error) = sqlx::Connection::close(connection).await {
                tracing::warn!("closing the start-up lock's connection: {error}");
            }
        }
    }
}

/// The statements of a migration file: split on `;` at the end of a line,
/// comments dropped. (Our migrations have no `;` inside strings.)
pub(crate) fn statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(";\n")
        .map(|s| s.trim().trim_end_matches(';').trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Whether `error` means the database is unreachable (so: 503, try again)
/// rather than that a query is wrong.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    ) || matches!(error, sqlx::Error::Database(e) if e.code().is_some_and(|c| {
        // PostgreSQL: admin shutdown, crash shutdown, cannot connect now;
        // SQLite: busy, locked.
        matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "5" | "6")
    }))
}

/// Whether `error` is PostgreSQL stopping a statement at its
/// `statement_timeout` (SQLSTATE 57014, query canceled).
pub fn is_timed_out(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("57014"))
}

/// Whether `error` means the database's disk is full: SQLite's
/// `SQLITE_FULL` (13, "database or disk is full", also extended codes), or
/// PostgreSQL's disk full (SQLSTATE 53100) and out of memory (53200), or
/// the OS's ENOSPC under an I/O error.
pub fn is_storage_full(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            e.code().is_some_and(|code| {
                let code = code.as_ref();
                code == "53100" || code.parse::<i32>().is_ok_and(|sqlite| sqlite & 0xff == 13)
            }) || e.message().contains("database or disk is full")
        }
        sqlx::Error::Io(io) => crate::oci::is_storage_full(io),
        _ => false,
    }
}

/// Whether `error` is a unique-constraint violation (a duplicate).
pub fn is_duplicate(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://warden:s3cret@db:5432/warden"),
            "postgres://warden:***@db:5432/warden"
        );
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn migrations_split_into_statements() {
        let parts = statements("-- c\nCREATE TABLE a (x TEXT);\n\nCREATE INDEX i ON a (x);\n");
        assert_eq!(
            parts,
            vec!["CREATE TABLE a (x TEXT)", "CREATE INDEX i ON a (x)"]
        );
    }
}
