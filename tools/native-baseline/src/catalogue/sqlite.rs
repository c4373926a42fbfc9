//! The reads through SQLite's C API (rusqlite): each worker thread of the runtime opens its own
//! read-only connection on first use and keeps its prepared statements, and a read runs right
//! on the thread that handles the request: no pool, no channel, no hand-off to another thread.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, Row};

use super::{Money, Product, ReadError, Timestamp, COUNT, FIND, LIST};

/// How long a read waits for a lock it needs (the host's busy timeout): a WAL reader rarely
/// waits, but may when a writer checkpoints.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

thread_local! {
    /// This thread's connection, opened on its first read.
    static CONNECTION: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// Reads one SQLite file from whichever thread calls.
#[derive(Clone)]
pub struct Reader {
    path: Arc<PathBuf>,
}

impl Reader {
    /// A reader of the existing file at `path`: opened once here to fail early if it cannot be.
    pub fn open(path: &Path) -> Result<Self, String> {
        let reader = Self {
            path: Arc::new(path.to_owned()),
        };
        reader
            .with_connection(|connection| connection.query_row(COUNT, [], |_| Ok(())))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(reader)
    }

    /// One product by id.
    pub fn find(&self, id: i64) -> Result<Option<Product>, ReadError> {
        self.with_connection(|connection| {
            let mut statement = connection.prepare_cached(FIND)?;
            let mut rows = statement.query([id])?;
            rows.next()?.map(product).transpose()
        })
    }

    /// How many products there are.
    pub fn count(&self) -> Result<i64, ReadError> {
        self.with_connection(|connection| {
            connection
                .prepare_cached(COUNT)?
                .query_row([], |row| row.get(0))
        })
    }

    /// One page of products in id order.
    pub fn list(&self, limit: i64, offset: i64) -> Result<Vec<Product>, ReadError> {
        self.with_connection(|connection| {
            let mut statement = connection.prepare_cached(LIST)?;
            let products = statement.query_map([limit, offset], product)?;
            products.collect()
        })
    }

    /// Runs `read` on this thread's connection, opening it first if the thread has none.
    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, ReadError> {
        CONNECTION.with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = Some(open(&self.path)?);
            }
            let connection = slot.as_ref().ok_or("no connection")?;
            Ok(read(connection)?)
        })
    }
}

/// A read-only connection with the host's busy timeout. NO_MUTEX: it never leaves its thread.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    Ok(connection)
}

fn product(row: &Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        price: Money(row.get(3)?),
        stock: row.get(4)?,
        created_at: timestamp(row, 5)?,
        updated_at: timestamp(row, 6)?,
    })
}

fn timestamp(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    let text: String = row.get(index)?;
    Timestamp::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            format!("not a timestamp: {text:?}").into(),
        )
    })
}
