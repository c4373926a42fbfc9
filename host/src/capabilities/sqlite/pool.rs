//! The guests' connections to one database file: a bounded set of [`RawConnection`]s, handed to
//! one guest resource at a time and given back with no transaction open.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use crate::capabilities::sqlite::raw::{RawConnection, SqlError};
use crate::telemetry::{metrics, StatementCounters, StatementKind};

/// How long a guest waits for a free connection before its statement fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The guests' connections to one database file.
#[derive(Clone)]
pub(super) struct GuestPool {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    /// Connections opened and free.
    idle: Mutex<Vec<RawConnection>>,
    /// One permit per connection the pool may have: taken while a resource holds one.
    permits: Arc<Semaphore>,
    /// The database's write turn: one connection at a time writes, from its first write to the
    /// end of its transaction; the others wait in line here (first come, first served, without
    /// a thread) instead of in SQLite's busy handler, which sleeps in growing steps. The line
    /// is bounded: each connection in it holds one of the pool's permits.
    write_turn: Arc<TurnLock<()>>,
    /// The database's statement counters (`shop_database_statements_total`).
    statements: StatementCounters,
    /// Set while a checkpoint runs, so that one runs at a time.
    checkpointing: AtomicBool,
    /// The connection checkpoints run on, opened with the first.
    checkpointer: Mutex<Option<RawConnection>>,
}

/// How long the WAL may grow before a checkpoint copies it into the file (SQLite's own default
/// for its automatic checkpoint, in frames of one page).
const CHECKPOINT_FRAMES: i32 = 1000;

impl Shared {
    /// Checkpoints the database on a blocking thread, unless a checkpoint runs already.
    fn checkpoint_in_background(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.clone();
        runtime.spawn_blocking(move || {
            let mut checkpointer = shared
                .checkpointer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if checkpointer.is_none() {
                match RawConnection::open(&shared.path) {
                    Ok(conn) => *checkpointer = Some(conn),
                    Err(error) => tracing::warn!(%error, "cannot open a connection to checkpoint"),
                }
            }
            if let Some(conn) = checkpointer.as_mut() {
                if let Err(error) = conn.checkpoint() {
                    tracing::warn!(%error, path = %shared.path.display(), "a WAL checkpoint failed");
                }
            }
            shared.checkpointing.store(false, Ordering::Release);
        });
    }
}

impl std::fmt::Debug for GuestPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestPool")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl GuestPool {
    /// A pool of at most `size` connections to the file at `path` (the database `label`),
    /// opened as they are needed.
    pub(super) fn new(label: &str, path: PathBuf, size: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                path,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(size.max(1) as usize)),
                write_turn: Arc::new(TurnLock::new(())),
                statements: metrics().statements("sqlite", label),
                checkpointing: AtomicBool::new(false),
                checkpointer: Mutex::new(None),
            }),
        }
    }

    /// A connection of its own for one guest resource: a free one, or a new one while the pool
    /// has room, else the first to come back within [`ACQUIRE_TIMEOUT`].
    pub(super) async fn acquire(&self) -> Result<PooledConnection, SqlError> {
        let permit =
            tokio::time::timeout(ACQUIRE_TIMEOUT, self.shared.permits.clone().acquire_owned())
                .await
                .map_err(|_| SqlError::Io("no database connection came free in time".into()))?
                .map_err(|_| SqlError::Io("the database is closed".into()))?;
        let idle = self
            .shared
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                // Opening reads the file and may wait on a lock: not on the caller's thread.
                let path = self.shared.path.clone();
                tokio::task::spawn_blocking(move || RawConnection::open(&path))
                    .await
                    .map_err(|err| SqlError::Io(format!("opening the database failed: {err}")))?
                    .map_err(SqlError::Io)?
            }
        };
        Ok(PooledConnection {
            conn: Some(conn),
            shared: self.shared.clone(),
            write_turn: None,
            _permit: permit,
        })
    }
}

/// A connection held by one guest resource; it goes back to its pool when dropped.
pub(super) struct PooledConnection {
    conn: Option<RawConnection>,
    shared: Arc<Shared>,
    /// The database's write turn while this connection writes. A field, so it is given up only
    /// after `Drop::drop` has rolled back what the connection left open.
    write_turn: Option<OwnedMutexGuard<()>>,
    _permit: OwnedSemaphorePermit,
}

impl GuestPool {
    /// Counts a statement of `kind` run on the database.
    pub(super) fn count(&self, kind: StatementKind) {
        self.shared.statements.count(kind);
    }
}

impl PooledConnection {
    /// Waits for the database's write turn (in line, until `deadline`), unless this connection
    /// has it already. Past the deadline the statement fails as SQLite's busy one does.
    pub(super) async fn take_write_turn(&mut self, deadline: Instant) -> Result<(), SqlError> {
        if self.write_turn.is_some() {
            return Ok(());
        }
        let line = self.shared.write_turn.clone().lock_owned();
        let turn = tokio::time::timeout_at(deadline.into(), line)
            .await
            .map_err(|_| {
                SqlError::Io(
                    "database is locked: other writers held it until the request's deadline".into(),
                )
            })?;
        self.write_turn = Some(turn);
        Ok(())
    }

    /// Gives the write turn to the next in line once no transaction is open on the connection
    /// (after an autocommitted write, a COMMIT, a ROLLBACK, or a failure that ended it); then,
    /// if the WAL has grown long, checkpoints it in the background.
    pub(super) fn end_write_turn_if_done(&mut self) {
        if self.write_turn.is_some() && !self.in_transaction() {
            self.write_turn = None;
            if self.wal_frames() >= CHECKPOINT_FRAMES {
                self.shared.checkpoint_in_background();
            }
        }
    }

    /// Whether the connection holds the database's write turn: its writes may run inline.
    pub(super) fn has_write_turn(&self) -> bool {
        self.write_turn.is_some()
    }
}

impl std::ops::Deref for PooledConnection {
    type Target = RawConnection;

    fn deref(&self) -> &RawConnection {
        self.conn
            .as_ref()
            .expect("a pooled connection holds its connection until dropped")
    }
}

impl std::ops::DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut RawConnection {
        self.conn
            .as_mut()
            .expect("a pooled connection holds its connection until dropped")
    }
}

impl Drop for PooledConnection {
    /// Back to the pool with no transaction open: a transaction its resource left open is
    /// rolled back here (a rollback never waits for a lock). One that cannot be rolled back is
    /// closed, and the pool opens another in its place when needed.
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if let Err(error) = conn.rollback() {
            tracing::warn!(%error, "rolling back a dropped SQLite connection failed; closing it");
            return;
        }
        self.shared
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}
