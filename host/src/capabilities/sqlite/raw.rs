//! A guest's SQLite connection on SQLite's C API, with no worker thread between the guest and
//! the database: a statement that only reads runs on the calling thread, within a short time
//! budget and without waiting for a lock, and so does a write of a connection that holds its
//! database's write turn (`pool.rs`: no other connection of the host can hold the lock then);
//! anything else runs where waiting costs nothing (`host.rs` moves the connection to a
//! blocking thread for it). Commits never checkpoint: the WAL is checkpointed off the
//! requests' path, on a blocking thread, once it has grown (`pool.rs`).
//!
//! Profiled on GET /api/products/{id}/: with sqlx's SQLite driver every statement, and the
//! ping when a connection went back to its pool, was a round trip to the connection's worker
//! thread, two context switches each; a fifth of the host's time went to those switches.

use std::collections::HashMap;
use std::ffi::{c_int, c_void, CStr, CString};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;

use crate::capabilities::bounds::{self, ResultBudget};
use crate::capabilities::sqlite::authorizer::confine_handle;

/// The oldest SQLite the host runs guests' SQL on: 3.50.4 fixes the memory-safety bugs known
/// in the versions before it (CVE-2025-29087 in `concat_ws`, CVE-2025-6965, ...).
pub const MIN_SQLITE_VERSION: c_int = 3_050_004;

/// Checks the SQLite library the host links (refusing one older than [`MIN_SQLITE_VERSION`])
/// and, once per process, caps the heap it may take for every connection together
/// (`--sqlite-heap-limit`; past it a statement fails with "out of memory", the host goes on).
pub fn init_library() -> Result<(), String> {
    // SAFETY: plain reads of the library's version.
    let (number, version) = unsafe {
        (
            ffi::sqlite3_libversion_number(),
            CStr::from_ptr(ffi::sqlite3_libversion()).to_string_lossy(),
        )
    };
    if number < MIN_SQLITE_VERSION {
        return Err(format!(
            "the SQLite library is {version}, which has known memory-safety bugs: \
             the host needs 3.50.4 or later"
        ));
    }
    static HEAP: Once = Once::new();
    HEAP.call_once(|| {
        let limit = i64::try_from(bounds::get().sqlite_heap_limit).unwrap_or(i64::MAX);
        // SAFETY: process-wide settings, safe to call at any time.
        unsafe {
            ffi::sqlite3_hard_heap_limit64(limit);
            ffi::sqlite3_soft_heap_limit64(limit / 2);
        }
    });
    Ok(())
}
/// A value as SQLite stores it: the interface's `value`, which `host.rs` converts (this file
/// knows nothing of the bindings, which name the resource that holds a connection).
#[derive(Debug)]
pub(super) enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

/// A statement's answer: its column names and its rows.
#[derive(Debug, Default)]
pub(super) struct QueryResult {
    pub(super) columns: Vec<String>,
    pub(super) rows: Vec<Vec<Value>>,
}

/// A statement's failure as the guest sees it (the interface's `error`, converted in `host.rs`).
#[derive(Debug)]
pub(super) enum SqlError {
    /// The database file is full.
    DatabaseFull,
    /// Anything else, in words.
    Io(String),
}

/// How long a statement may run on the calling thread before it is stopped and run again on a
/// blocking thread: a lookup by key takes some microseconds, so only a scan gets there.
const INLINE_BUDGET: Duration = Duration::from_millis(2);

/// How much of its thread's own CPU time a write inside a transaction may spend on the calling
/// thread before it is stopped (which takes its transaction with it): as long as a guest's own
/// code runs before it yields its thread (an epoch tick of the runtime, 10 ms). At 2 ms a busy
/// machine stopped one checkout write in some 30,000: a virtual machine's stolen time and
/// interrupts can count as the thread's own, and a write of microseconds had "spent" them.
const INLINE_WRITE_BUDGET: Duration = Duration::from_millis(10);

/// How long a write inside a transaction may stall on the calling thread (on the disk, say)
/// before it is stopped: its budget is the thread's own CPU time, not the clock (see
/// [`RawConnection::run_inline`]), and this bounds the rest.
const INLINE_STALL: Duration = Duration::from_millis(100);

/// How many virtual machine steps SQLite takes between two looks at the budget.
const BUDGET_CHECK_STEPS: c_int = 1000;

/// How long a statement on a blocking thread waits for another connection's lock.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; past it the cache starts again.
const STATEMENT_CACHE: usize = 64;

/// The longest statement text kept prepared: the services' statements are a few hundred bytes;
/// a longer one is prepared for its call only, so the cache never holds more than 64 × this.
const CACHED_SQL_BYTES: usize = 2048;

/// A prepared statement for one call: kept in the connection's cache, or to be finalized when
/// the call is done.
struct Prepared {
    statement: NonNull<ffi::sqlite3_stmt>,
    kept: bool,
}

impl Prepared {
    /// Ends the call: finalizes the statement unless the cache keeps it.
    fn done(self) {
        if !self.kept {
            // SAFETY: prepared for this call only, and used no more.
            unsafe { ffi::sqlite3_finalize(self.statement.as_ptr()) };
        }
    }
}

/// A statement's failure: SQLite's result code (or 0 for the host's own refusals) and the
/// error the guest gets.
pub(super) struct Failure {
    code: c_int,
    error: SqlError,
}

impl Failure {
    fn own(message: String) -> Self {
        Self {
            code: 0,
            error: SqlError::Io(message),
        }
    }
}

/// Why a parameter could not be bound.
enum BindFailure {
    /// SQLite refused the value (the connection holds its message).
    Sqlite(c_int),
    /// A named parameter, which has no position among the guest's values.
    Unsupported(String),
}

/// Why a statement did not run on the calling thread. Nothing it did is left: run it again on
/// a blocking thread.
#[derive(Debug)]
pub(super) enum NotInline {
    /// It writes, controls a transaction, holds several statements, or needs a lock it would
    /// have to wait for, or passed its budget.
    Blocking,
    /// It failed, and would fail the same way anywhere.
    Failed(SqlError),
}

/// One open SQLite connection, confined to its file, with its prepared statements.
pub(super) struct RawConnection {
    db: NonNull<ffi::sqlite3>,
    /// Single statements by their text, prepared once per connection.
    statements: HashMap<String, NonNull<ffi::sqlite3_stmt>>,
    /// When the running statement must stop (read by the progress handler), boxed so that its
    /// address, given to SQLite, stays put while the connection moves.
    budget: Box<Budget>,
    /// The frames in the WAL after this connection's last commit (set by the WAL hook, boxed
    /// for the same reason).
    wal_frames: Box<AtomicI32>,
    /// The parameters of the running statement that borrow the guest's text or bytes, to be
    /// unbound once it is reset (kept here so that a call allocates nothing for them).
    borrowed: Vec<c_int>,
}

/// What the progress handler stops a statement for: an instant (the inline budget, or the
/// request's deadline), or its request ending (the flag, set from another thread).
#[derive(Default)]
struct Budget {
    until: Option<Instant>,
    /// The calling thread's CPU time at which to stop (see [`thread_cpu_time`]).
    cpu_until: Option<Duration>,
    cancelled: Option<Arc<AtomicBool>>,
}

impl Budget {
    fn spent(&self) -> bool {
        self.until.is_some_and(|until| Instant::now() >= until)
            || self
                .cpu_until
                .is_some_and(|until| thread_cpu_time().is_some_and(|spent| spent >= until))
            || self
                .cancelled
                .as_ref()
                .is_some_and(|cancelled| cancelled.load(Ordering::Relaxed))
    }
}

/// How a statement that may wait runs: until the request's deadline at most, and stopped at
/// once when `cancelled` is set (its request ended: a 504, a client gone).
pub(super) struct Watch {
    pub(super) deadline: Option<Instant>,
    pub(super) cancelled: Arc<AtomicBool>,
}

// SAFETY: the connection is opened with SQLITE_OPEN_NOMUTEX (SQLite's multi-thread mode): it
// may be used from any thread, one at a time, which `&mut self` on every call guarantees.
unsafe impl Send for RawConnection {}

impl RawConnection {
    /// Opens (creating if missing) the database at `path` in WAL mode, with foreign keys on
    /// and normal syncing, and confines the connection to that file.
    pub(super) fn open(path: &Path) -> Result<Self, String> {
        let name = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("{} holds a NUL byte", path.display()))?;
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_NOMUTEX;
        let mut db = ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `db` receives the handle (or NULL when out of
        // memory), which must be closed even when opening failed.
        let code = unsafe { ffi::sqlite3_open_v2(name.as_ptr(), &mut db, flags, ptr::null()) };
        let db = NonNull::new(db).ok_or("out of memory opening a SQLite database")?;
        let mut conn = Self {
            db,
            statements: HashMap::new(),
            borrowed: Vec::new(),
            budget: Box::default(),
            wal_frames: Box::default(),
        };
        if code != ffi::SQLITE_OK {
            return Err(conn.message());
        }
        // SAFETY: `db` is open; the progress handler's data is the boxed budget, which lives
        // as long as the connection (it is dropped after `sqlite3_close_v2`).
        unsafe {
            ffi::sqlite3_extended_result_codes(db.as_ptr(), 1);
            ffi::sqlite3_busy_timeout(db.as_ptr(), BUSY_TIMEOUT.as_millis() as c_int);
            let budget: *mut Budget = &mut *conn.budget;
            ffi::sqlite3_progress_handler(
                db.as_ptr(),
                BUDGET_CHECK_STEPS,
                Some(past_budget),
                budget.cast(),
            );
            // In place of SQLite's automatic checkpoint (a commit past 1,000 frames would copy
            // them into the file and sync it, on whichever thread committed): the hook only
            // notes the WAL's length, and the pool checkpoints off the requests' path.
            let frames: *const AtomicI32 = &*conn.wal_frames;
            ffi::sqlite3_wal_hook(db.as_ptr(), Some(note_wal_frames), frames.cast_mut().cast());
        }
        // Before the confinement, which refuses PRAGMAs that set something.
        conn.exec_plain(
            c"PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )?;
        // The file's quota (`--max-database-bytes`): past it a write fails with SQLITE_FULL,
        // which the guest gets as `database-full`. Set per connection, as SQLite keeps it.
        let page_size = conn.pragma_integer(c"PRAGMA page_size")?.max(512);
        let pages = bounds::get().max_database_bytes / page_size as u64;
        let quota = CString::new(format!("PRAGMA max_page_count = {}", pages.max(1)))
            .expect("no NUL in a number");
        conn.exec_plain(&quota)?;
        // SAFETY: `db` is open and nothing else uses it.
        unsafe { confine_handle(db.as_ptr()) }?;
        Ok(conn)
    }

    /// Runs `sql` on the calling thread if it is one statement, it needs no lock it would wait
    /// for, and it only reads or `may_write` (the connection holds its database's write turn),
    /// within [`INLINE_BUDGET`].
    pub(super) fn run_inline(
        &mut self,
        sql: &str,
        parameters: &[Value],
        may_write: bool,
    ) -> Result<QueryResult, NotInline> {
        let prepared = match self.cached(sql) {
            Ok(Some(prepared)) => prepared,
            Ok(None) => return Err(NotInline::Blocking),
            Err(error) => return Err(NotInline::Failed(error)),
        };
        let ran = self.run_inline_prepared(prepared.statement, parameters, may_write);
        prepared.done();
        ran
    }

    fn run_inline_prepared(
        &mut self,
        statement: NonNull<ffi::sqlite3_stmt>,
        parameters: &[Value],
        may_write: bool,
    ) -> Result<QueryResult, NotInline> {
        // SAFETY: a statement of this connection.
        let reads_only = unsafe { ffi::sqlite3_stmt_readonly(statement.as_ptr()) } != 0;
        if !reads_only && !may_write {
            return Err(NotInline::Blocking);
        }
        let in_transaction = self.in_transaction();
        let started = Instant::now();
        let write_in_transaction = !reads_only && in_transaction;
        // Read only for such a write: a look at the clock is a system call.
        let cpu_at_start = write_in_transaction.then(thread_cpu_time).flatten();
        if write_in_transaction {
            // SQLite takes the whole transaction with a write it stops, so such a write is
            // stopped only once it has spent its budget of the thread's own CPU time: on a busy
            // machine a thread waiting for a core spends the clock's time too, and a write of a
            // few microseconds failed its request with it.
            self.set_mode(Some(started + INLINE_STALL), None);
            self.budget.cpu_until = cpu_at_start.map(|now| now + INLINE_WRITE_BUDGET);
        } else {
            self.set_mode(Some(started + INLINE_BUDGET), None);
        }
        let mut result = QueryResult {
            columns: Vec::new(),
            rows: Vec::new(),
        };
        let ran = self.run_statement(statement, parameters, 0, &mut result);
        // No budget outlives its statement (the host's own statements set none).
        *self.budget = Budget::default();
        match ran {
            Ok(_) => Ok(result),
            // A write SQLite stopped inside a transaction may take the whole transaction with
            // it: run again, it would run outside the transaction its guest believes open.
            Err(failure)
                if must_wait(failure.code) && write_in_transaction && !self.in_transaction() =>
            {
                let cpu = thread_cpu_time()
                    .zip(cpu_at_start)
                    .map(|(now, then)| now.saturating_sub(then));
                tracing::warn!(
                    code = failure.code,
                    wall = ?started.elapsed(),
                    cpu = ?cpu,
                    statement = %sql_head(statement),
                    "a write inside a transaction was stopped on the request's thread"
                );
                Err(NotInline::Failed(SqlError::Io(
                    "interrupted: the statement ran past its time on the request's thread, \
                     and SQLite rolled its transaction back"
                        .into(),
                )))
            }
            // Stopped before it changed anything that stays: it runs again where it may wait.
            Err(failure) if must_wait(failure.code) => Err(NotInline::Blocking),
            Err(failure) => Err(NotInline::Failed(failure.error)),
        }
    }

    /// The frames in the database's WAL after this connection's last commit.
    pub(super) fn wal_frames(&self) -> i32 {
        self.wal_frames.load(Ordering::Relaxed)
    }

    /// Copies what the WAL holds into the database file as far as no reader still needs it,
    /// waiting for no one (SQLite's PASSIVE checkpoint): for a blocking thread. It runs on the
    /// C API, not as a statement, so the connection's confinement (which refuses the PRAGMA)
    /// does not stand in its way.
    pub(super) fn checkpoint(&mut self) -> Result<(), String> {
        // SAFETY: `db` is open; "main" is NUL-terminated; the counts are not asked for.
        let code = unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                self.db.as_ptr(),
                c"main".as_ptr(),
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        match code {
            ffi::SQLITE_OK | ffi::SQLITE_BUSY => Ok(()),
            _ => Err(self.message()),
        }
    }

    /// Runs every statement of `sql` in turn, waiting up to [`BUSY_TIMEOUT`] for locks: for a
    /// blocking thread. Parameters are bound as sqlx binds them (`$n` and `?n` by number, `?`
    /// in order across the statements). `watch` stops it at its request's deadline, or as soon
    /// as its request ends.
    pub(super) fn run(
        &mut self,
        sql: &str,
        parameters: &[Value],
        watch: Watch,
    ) -> Result<QueryResult, SqlError> {
        self.set_mode(watch.deadline, Some(watch.cancelled));
        let result = self.run_all(sql, parameters);
        *self.budget = Budget::default();
        result.map_err(|error| match error {
            SqlError::Io(message) if message == "interrupted" => SqlError::Io(
                "interrupted: the request's deadline passed or the request ended".into(),
            ),
            other => other,
        })
    }

    fn run_all(&mut self, sql: &str, parameters: &[Value]) -> Result<QueryResult, SqlError> {
        let mut result = QueryResult {
            columns: Vec::new(),
            rows: Vec::new(),
        };
        if let Some(prepared) = self.cached(sql)? {
            let ran = self.run_statement(prepared.statement, parameters, 0, &mut result);
            prepared.done();
            return ran.map(|_| result).map_err(|failure| failure.error);
        }
        // Several statements (or none): each prepared once, for this call only.
        let mut rest = sql;
        let mut anonymous = 0;
        while let Some((statement, tail)) = self.prepare(rest)? {
            let ran = self.run_statement(statement, parameters, anonymous, &mut result);
            // SAFETY: prepared above, used no more.
            unsafe { ffi::sqlite3_finalize(statement.as_ptr()) };
            anonymous += ran.map_err(|failure| failure.error)?;
            rest = tail;
        }
        Ok(result)
    }

    /// Whether a transaction is open on the connection.
    pub(super) fn in_transaction(&self) -> bool {
        // SAFETY: `db` is open.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) == 0 }
    }

    /// The rows the connection's last INSERT, UPDATE or DELETE changed.
    pub(super) fn changes(&self) -> u64 {
        // SAFETY: `db` is open.
        u64::try_from(unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) }).unwrap_or(0)
    }

    /// The rowid of the connection's last successful INSERT.
    pub(super) fn last_insert_rowid(&self) -> i64 {
        // SAFETY: `db` is open.
        unsafe { ffi::sqlite3_last_insert_rowid(self.db.as_ptr()) }
    }

    /// Rolls back the open transaction, if any.
    pub(super) fn rollback(&mut self) -> Result<(), String> {
        if self.in_transaction() {
            self.exec_plain(c"ROLLBACK")?;
        }
        Ok(())
    }

    /// The connection's prepared statement for `sql`, if `sql` is exactly one statement;
    /// `None` for several statements or none.
    fn cached(&mut self, sql: &str) -> Result<Option<Prepared>, SqlError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(Some(Prepared {
                statement: *statement,
                kept: true,
            }));
        }
        let Some((statement, tail)) = self.prepare(sql)? else {
            return Ok(None);
        };
        if !tail.trim_start().is_empty() {
            // SAFETY: prepared above, never used.
            unsafe { ffi::sqlite3_finalize(statement.as_ptr()) };
            return Ok(None);
        }
        if sql.len() > CACHED_SQL_BYTES {
            // Not kept: the caller finalizes it when the call is over.
            return Ok(Some(Prepared {
                statement,
                kept: false,
            }));
        }
        if self.statements.len() >= STATEMENT_CACHE {
            self.finalize_all();
        }
        self.statements.insert(sql.to_owned(), statement);
        Ok(Some(Prepared {
            statement,
            kept: true,
        }))
    }

    /// Prepares the first statement of `sql`: it and the text after it, or `None` if `sql`
    /// holds only blanks and comments.
    fn prepare<'s>(
        &mut self,
        sql: &'s str,
    ) -> Result<Option<(NonNull<ffi::sqlite3_stmt>, &'s str)>, SqlError> {
        let mut rest = sql;
        loop {
            let mut statement = ptr::null_mut();
            let mut tail = ptr::null();
            let length = c_int::try_from(rest.len())
                .map_err(|_| SqlError::Io("the statement is too long".into()))?;
            // SAFETY: `rest` is valid for `length` bytes (no NUL needed when the length is
            // given); `tail` points into it, or at its end.
            let code = unsafe {
                ffi::sqlite3_prepare_v3(
                    self.db.as_ptr(),
                    rest.as_ptr().cast(),
                    length,
                    ffi::SQLITE_PREPARE_PERSISTENT,
                    &mut statement,
                    &mut tail,
                )
            };
            if code != ffi::SQLITE_OK {
                return Err(self.error());
            }
            let used = (tail as usize).saturating_sub(rest.as_ptr() as usize);
            // SQLite stops at a statement's end, which is a character boundary (`;`).
            let after = rest.get(used..).unwrap_or("");
            match NonNull::new(statement) {
                Some(statement) => return Ok(Some((statement, after))),
                // Only a `;` or a comment was read: look past it.
                None if !after.is_empty() && after.len() < rest.len() => rest = after,
                None => return Ok(None),
            }
        }
    }

    /// Binds `parameters` to `statement`, steps it to its end adding its rows to `result`, and
    /// resets it. Answers how many anonymous parameters it used.
    fn run_statement(
        &mut self,
        statement: NonNull<ffi::sqlite3_stmt>,
        parameters: &[Value],
        anonymous: usize,
        result: &mut QueryResult,
    ) -> Result<usize, Failure> {
        let stmt = statement.as_ptr();
        let mut borrowed = std::mem::take(&mut self.borrowed);
        let outcome = self.step_all(stmt, parameters, anonymous, result, &mut borrowed);
        // SAFETY: a statement of this connection. Its error, if any, was read above. Only the
        // values that borrow `parameters` are unbound: numbers stay bound (every call binds
        // every parameter again), because SQLite re-prepares a statement whose plan read a
        // parameter (a `LIMIT $n`) whenever that parameter goes from NULL to a number.
        unsafe {
            ffi::sqlite3_reset(stmt);
            for index in borrowed.drain(..) {
                ffi::sqlite3_bind_null(stmt, index);
            }
        }
        self.borrowed = borrowed;
        outcome
    }

    fn step_all(
        &mut self,
        stmt: *mut ffi::sqlite3_stmt,
        parameters: &[Value],
        anonymous: usize,
        result: &mut QueryResult,
        borrowed: &mut Vec<c_int>,
    ) -> Result<usize, Failure> {
        let used = bind(stmt, parameters, anonymous, borrowed).map_err(|failure| match failure {
            BindFailure::Sqlite(code) => self.failure(code),
            BindFailure::Unsupported(name) => Failure::own(format!(
                "parameter {name} is not supported: parameters are numbered ($1, ?1) or anonymous (?)"
            )),
        })?;
        // SAFETY: a prepared statement of this connection, bound above.
        let columns = unsafe { ffi::sqlite3_column_count(stmt) };
        if result.columns.is_empty() && columns > 0 {
            result.columns = (0..columns).map(|i| column_name(stmt, i)).collect();
        }
        // SQLite counts a statement's steps over all its runs, and looks at the budget each
        // time that count passes another BUDGET_CHECK_STEPS, also once more as a run ends,
        // after its last step: past its COMMIT when it autocommits, which it then answers with
        // SQLITE_INTERRUPT all the same. A kept statement of a few steps (an INSERT, a COMMIT)
        // was looked at so now and then, always once it had done all it does, and its caller
        // ran it again (twice-written rows, a claim that refused its own request). Counted from
        // this run, a statement shorter than that is never stopped, and a longer one that is
        // stopped as it ends is told from one stopped on its way by the rows it counted.
        // SAFETY: as above; resets the statement's step counter and reads nothing.
        unsafe { ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_VM_STEP, 1) };
        let changes_before = self.total_changes();
        let mut budget = ResultBudget::new();
        loop {
            // SAFETY: as above.
            match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_ROW => {
                    // Measured before anything is copied: a row past the bound is never held.
                    let bytes = (0..columns).map(|i| column_size(stmt, i)).sum();
                    budget.add_row(bytes).map_err(Failure::own)?;
                    let values = (0..columns)
                        .map(|i| column_value(stmt, i))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            Failure::own("cannot read a value: its text is not UTF-8".into())
                        })?;
                    result.rows.push(values);
                }
                ffi::SQLITE_DONE => return Ok(used),
                // Stopped as it ended: its rows were all stepped, its changes made (SQLite
                // counts a statement's changes only once it ends without rolling them back).
                code if code & 0xff == ffi::SQLITE_INTERRUPT
                    && self.total_changes() > changes_before =>
                {
                    return Ok(used)
                }
                code => return Err(self.failure(code)),
            }
        }
    }

    /// The rows changed by the connection's statements that ended, since it was opened.
    fn total_changes(&self) -> i64 {
        // SAFETY: `db` is open.
        unsafe { ffi::sqlite3_total_changes64(self.db.as_ptr()) }
    }

    /// The failure of a call that answered `code`, with the connection's message for it.
    fn failure(&self, code: c_int) -> Failure {
        Failure {
            code,
            error: guest_error(code & 0xff, &self.message()),
        }
    }

    /// Sets how the next statements run: inline (no `cancelled` flag: stop at `until`, and
    /// never wait for a lock), or on a blocking thread (stop at `until`, the request's
    /// deadline, or once `cancelled` is set; wait for locks up to [`BUSY_TIMEOUT`], never past
    /// the deadline).
    fn set_mode(&mut self, until: Option<Instant>, cancelled: Option<Arc<AtomicBool>>) {
        let wait = match (&cancelled, until) {
            (None, _) => Duration::ZERO,
            (Some(_), None) => BUSY_TIMEOUT,
            (Some(_), Some(until)) => until
                .saturating_duration_since(Instant::now())
                .min(BUSY_TIMEOUT),
        };
        *self.budget = Budget {
            until,
            cpu_until: None,
            cancelled,
        };
        let wait = wait.as_millis() as c_int;
        // SAFETY: `db` is open.
        unsafe { ffi::sqlite3_busy_timeout(self.db.as_ptr(), wait) };
    }

    /// The integer a PRAGMA that reads a setting answers, on the host's behalf.
    fn pragma_integer(&mut self, sql: &CStr) -> Result<i64, String> {
        let mut statement = ptr::null_mut();
        // SAFETY: `db` is open and `sql` NUL-terminated; the statement is finalized below.
        unsafe {
            let code = ffi::sqlite3_prepare_v2(
                self.db.as_ptr(),
                sql.as_ptr(),
                -1,
                &mut statement,
                ptr::null_mut(),
            );
            if code != ffi::SQLITE_OK || statement.is_null() {
                return Err(self.message());
            }
            let value = (ffi::sqlite3_step(statement) == ffi::SQLITE_ROW)
                .then(|| ffi::sqlite3_column_int64(statement, 0));
            ffi::sqlite3_finalize(statement);
            value.ok_or_else(|| self.message())
        }
    }

    /// Runs SQL with no parameters and no rows, on the host's behalf.
    fn exec_plain(&mut self, sql: &CStr) -> Result<(), String> {
        // SAFETY: `db` is open and `sql` NUL-terminated; no callback, no error string.
        let code = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if code == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.message())
        }
    }

    /// The connection's last error as the guest sees it: what the host refused named as such,
    /// a full database as `database-full`, anything else with SQLite's message.
    fn error(&self) -> SqlError {
        // SAFETY: `db` is open.
        let code = unsafe { ffi::sqlite3_extended_errcode(self.db.as_ptr()) };
        guest_error(code & 0xff, &self.message())
    }

    /// SQLite's message for the connection's last error.
    fn message(&self) -> String {
        // SAFETY: `db` is a connection handle (even a failed open has one); the message is
        // NUL-terminated and valid until the next call on the connection.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db.as_ptr())) }
            .to_string_lossy()
            .into_owned()
    }

    fn finalize_all(&mut self) {
        for (_, statement) in self.statements.drain() {
            // SAFETY: prepared on this connection, and out of the cache now.
            unsafe { ffi::sqlite3_finalize(statement.as_ptr()) };
        }
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        self.finalize_all();
        // SAFETY: every statement is finalized; the handle is not used again (with no statement left, close succeeds).
        unsafe { ffi::sqlite3_close(self.db.as_ptr()) };
    }
}

/// The guest's `error` for SQLite's primary result `code` and `message`.
pub(super) fn guest_error(code: c_int, message: &str) -> SqlError {
    // The authorizer refused the statement (see `authorizer.rs`): SQLITE_AUTH, except for a
    // function, which SQLite reports as a plain error.
    let refused = code == ffi::SQLITE_AUTH || message.starts_with("not authorized to use function");
    if code == ffi::SQLITE_FULL {
        SqlError::DatabaseFull
    } else if refused {
        SqlError::Io(format!(
            "refused by the host ({message}): a component reaches only its own database, \
             with no ATTACH, VACUUM, TEMP objects, extension loading, PRAGMA that sets \
             something, or last_insert_rowid()/changes()/total_changes() (the \
             connection's last-insert-rowid and changes answer those)"
        ))
    } else {
        SqlError::Io(message.to_owned())
    }
}

/// Whether `code` says the statement would have to wait (for a lock, or past its budget).
fn must_wait(code: c_int) -> bool {
    matches!(
        code & 0xff,
        ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED | ffi::SQLITE_INTERRUPT
    )
}

/// The first words of a prepared statement's text, for a log line.
fn sql_head(statement: NonNull<ffi::sqlite3_stmt>) -> String {
    // SAFETY: a live statement.
    let text = unsafe { ffi::sqlite3_sql(statement.as_ptr()) };
    if text.is_null() {
        return String::new();
    }
    // SAFETY: not NULL: the statement's NUL-terminated text, which lives as long as it does.
    let text = unsafe { CStr::from_ptr(text) };
    text.to_string_lossy().chars().take(80).collect()
}

/// The CPU time the calling thread has used; `None` where the clock cannot be read.
fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (read == 0).then(|| {
        Duration::new(
            u64::try_from(now.tv_sec).unwrap_or(0),
            u32::try_from(now.tv_nsec).unwrap_or(0),
        )
    })
}

/// SQLite's progress handler: non-zero (stop the statement) once an inline statement's budget
/// is spent.
///
/// # Safety
///
/// `budget` is the connection's boxed budget, as [`RawConnection::open`] registers it.
unsafe extern "C" fn past_budget(budget: *mut c_void) -> c_int {
    // SAFETY: as the function's contract says.
    let budget = unsafe { &*budget.cast::<Budget>() };
    c_int::from(budget.spent())
}

/// SQLite's WAL hook: notes the WAL's length after a commit, and checkpoints nothing.
///
/// # Safety
///
/// `frames` is the connection's boxed counter, as [`RawConnection::open`] registers it.
unsafe extern "C" fn note_wal_frames(
    frames: *mut c_void,
    _db: *mut ffi::sqlite3,
    _database: *const std::ffi::c_char,
    count: c_int,
) -> c_int {
    // SAFETY: as the function's contract says.
    unsafe { &*frames.cast::<AtomicI32>() }.store(count, Ordering::Relaxed);
    ffi::SQLITE_OK
}

/// Binds `parameters` to `stmt` as sqlx does: `$n` and `?n` take the n-th value, `?` the next
/// after `anonymous` earlier ones, a number past the values leaves NULL. Answers how many
/// anonymous parameters the statement used.
/// Binds every parameter of `stmt`: the guest's value at its position, or NULL past the values
/// given. The indexes of the values bound by reference (texts and blobs, which borrow
/// `parameters`) go to `borrowed`, to be unbound before `parameters` can go.
fn bind(
    stmt: *mut ffi::sqlite3_stmt,
    parameters: &[Value],
    anonymous: usize,
    borrowed: &mut Vec<c_int>,
) -> Result<usize, BindFailure> {
    let mut next = anonymous;
    // SAFETY: a prepared statement.
    let count = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
    for index in 1..=count {
        // SAFETY: as above; the name is NULL (for `?`) or NUL-terminated.
        let name = unsafe { ffi::sqlite3_bind_parameter_name(stmt, index) };
        let position = if name.is_null() {
            next += 1;
            next
        } else {
            // SAFETY: NUL-terminated, as above.
            let name = unsafe { CStr::from_ptr(name) }.to_bytes();
            match name
                .strip_prefix(b"?")
                .or_else(|| name.strip_prefix(b"$"))
                .and_then(|digits| std::str::from_utf8(digits).ok()?.parse::<usize>().ok())
            {
                Some(position) if position > 0 => position,
                // `:name`, `@name`, `$name`: no position among the values (sqlx refused them too).
                _ => {
                    return Err(BindFailure::Unsupported(
                        String::from_utf8_lossy(name).into(),
                    ))
                }
            }
        };
        // A value bound by an earlier call stays until bound again: past the values given,
        // NULL.
        let value = parameters.get(position - 1).unwrap_or(&Value::Null);
        if matches!(value, Value::Text(_) | Value::Blob(_)) {
            borrowed.push(index);
        }
        // SAFETY: `index` is a parameter of `stmt`; texts and blobs stay borrowed (static
        // binding) until the statement is reset and they are unbound, which happens before
        // `parameters` can go (see `run_statement`).
        let code = unsafe {
            match value {
                Value::Integer(v) => ffi::sqlite3_bind_int64(stmt, index, *v),
                Value::Real(v) => ffi::sqlite3_bind_double(stmt, index, *v),
                Value::Text(v) => ffi::sqlite3_bind_text64(
                    stmt,
                    index,
                    v.as_ptr().cast(),
                    v.len() as u64,
                    ffi::SQLITE_STATIC(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                Value::Blob(v) => ffi::sqlite3_bind_blob64(
                    stmt,
                    index,
                    v.as_ptr().cast(),
                    v.len() as u64,
                    ffi::SQLITE_STATIC(),
                ),
                Value::Null => ffi::sqlite3_bind_null(stmt, index),
            }
        };
        if code != ffi::SQLITE_OK {
            return Err(BindFailure::Sqlite(code));
        }
    }
    Ok(next - anonymous)
}

/// The name of column `index` of `stmt`.
fn column_name(stmt: *mut ffi::sqlite3_stmt, index: c_int) -> String {
    // SAFETY: `index` is a column of the prepared statement; the name is NULL (out of memory)
    // or NUL-terminated, valid until the statement is finalized or prepared again.
    let name = unsafe { ffi::sqlite3_column_name(stmt, index) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: as above.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

/// How many bytes column `index` of the current row takes: its text or blob's length, 8 for a
/// number or NULL.
fn column_size(stmt: *mut ffi::sqlite3_stmt, index: c_int) -> usize {
    // SAFETY: `stmt` has a current row with column `index`; asking the length of a text or
    // blob does not convert it (the type is read first).
    unsafe {
        match ffi::sqlite3_column_type(stmt, index) {
            ffi::SQLITE_TEXT | ffi::SQLITE_BLOB => {
                usize::try_from(ffi::sqlite3_column_bytes(stmt, index)).unwrap_or(0)
            }
            _ => 8,
        }
    }
}

/// Column `index` of the current row, as SQLite stored it (its storage class, not the column's
/// declared type).
fn column_value(stmt: *mut ffi::sqlite3_stmt, index: c_int) -> Option<Value> {
    // SAFETY: `stmt` has a current row with column `index`; a text or blob pointer is valid
    // for the bytes SQLite reports, until the next step (the value is copied before it).
    unsafe {
        Some(match ffi::sqlite3_column_type(stmt, index) {
            ffi::SQLITE_INTEGER => Value::Integer(ffi::sqlite3_column_int64(stmt, index)),
            ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_column_double(stmt, index)),
            ffi::SQLITE_NULL => Value::Null,
            ffi::SQLITE_TEXT => {
                let text = ffi::sqlite3_column_text(stmt, index);
                let length = ffi::sqlite3_column_bytes(stmt, index) as usize;
                let bytes = if text.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(text, length)
                };
                Value::Text(String::from_utf8(bytes.to_vec()).ok()?)
            }
            _ => {
                let blob = ffi::sqlite3_column_blob(stmt, index);
                let length = ffi::sqlite3_column_bytes(stmt, index) as usize;
                Value::Blob(if blob.is_null() {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(blob.cast::<u8>(), length).to_vec()
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::capabilities::sqlite::temp_dir::TempDir;

    fn open(dir: &TempDir) -> RawConnection {
        std::fs::create_dir_all(&dir.0).unwrap();
        RawConnection::open(&dir.0.join("raw.db")).unwrap()
    }

    fn run(conn: &mut RawConnection, sql: &str, parameters: Vec<Value>) -> QueryResult {
        let watch = Watch {
            deadline: None,
            cancelled: Arc::default(),
        };
        conn.run(sql, &parameters, watch).unwrap()
    }

    /// How often SQLite prepared the kept statement for `sql` again.
    fn reprepared(conn: &RawConnection, sql: &str) -> c_int {
        let statement = conn.statements[sql];
        // SAFETY: a statement the connection keeps.
        unsafe { ffi::sqlite3_stmt_status(statement.as_ptr(), ffi::SQLITE_STMTSTATUS_REPREPARE, 0) }
    }

    #[test]
    fn a_kept_statement_whose_plan_reads_a_parameter_is_not_prepared_again_for_each_call() {
        let dir = TempDir::new();
        let mut conn = open(&dir);
        run(
            &mut conn,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)",
            vec![],
        );
        for id in 1..=5 {
            run(
                &mut conn,
                "INSERT INTO t (id, name) VALUES ($1, $2)",
                vec![Value::Integer(id), Value::Text(format!("n{id}"))],
            );
        }
        let page = "SELECT id FROM t WHERE name <> $1 ORDER BY id LIMIT $2 OFFSET $3";
        let page_of = |limit, offset| {
            let name = Value::Text("n1".into());
            vec![name, Value::Integer(limit), Value::Integer(offset)]
        };
        let mut first_call = 0;
        for call in 0..4 {
            let result = run(&mut conn, page, page_of(2, 0));
            assert_eq!(result.rows.len(), 2);
            if call == 0 {
                // Its first binding may re-prepare it once: it was prepared with none.
                first_call = reprepared(&conn, page);
            }
        }
        assert_eq!(
            reprepared(&conn, page),
            first_call,
            "a LIMIT bound to the same value again"
        );
        // Another value still gets SQLite's new plan for it, and the right rows.
        let result = run(&mut conn, page, page_of(3, 1));
        assert_eq!(result.rows.len(), 3);
        assert!(matches!(result.rows[0][0], Value::Integer(3)));
    }

    /// Sleeps 5 ms, as a thread does that waits for a core on a busy machine, and answers 1.
    unsafe extern "C" fn pause(
        context: *mut ffi::sqlite3_context,
        _count: c_int,
        _values: *mut *mut ffi::sqlite3_value,
    ) {
        std::thread::sleep(Duration::from_millis(5));
        // SAFETY: the context SQLite passed.
        unsafe { ffi::sqlite3_result_int(context, 1) };
    }

    #[test]
    fn a_write_in_a_transaction_that_waits_for_a_core_is_not_stopped() {
        let dir = TempDir::new();
        let mut conn = open(&dir);
        // SAFETY: `db` is open; the name is NUL-terminated; `pause` takes no data.
        let made = unsafe {
            ffi::sqlite3_create_function_v2(
                conn.db.as_ptr(),
                c"pause".as_ptr(),
                0,
                ffi::SQLITE_UTF8,
                ptr::null_mut(),
                Some(pause),
                None,
                None,
                None,
            )
        };
        assert_eq!(made, ffi::SQLITE_OK);
        // The host's authorizer refuses functions it does not know: off for this test only.
        // SAFETY: `db` is open.
        unsafe { ffi::sqlite3_set_authorizer(conn.db.as_ptr(), None, ptr::null_mut()) };
        run(&mut conn, "CREATE TABLE t (a INTEGER)", vec![]);
        run(&mut conn, "BEGIN IMMEDIATE", vec![]);
        // The clock passes the inline budget in the pause, and the rows after it give the
        // budget thousands of steps to be looked at in: the write goes on, in its transaction.
        let write = "INSERT INTO t WITH RECURSIVE c(x) AS \
                     (SELECT pause() UNION ALL SELECT x + 1 FROM c WHERE x < 300) SELECT x FROM c";
        match conn.run_inline(write, &[], true) {
            Ok(_) => {}
            Err(NotInline::Failed(error)) => panic!("the write failed: {error:?}"),
            Err(NotInline::Blocking) => panic!("the write was sent to a blocking thread"),
        }
        assert!(conn.in_transaction(), "the transaction is still open");
        run(&mut conn, "COMMIT", vec![]);
        let count = run(&mut conn, "SELECT count(*) FROM t", vec![]);
        assert!(matches!(count.rows[0][0], Value::Integer(300)));
    }

    #[test]
    fn a_write_in_a_transaction_that_keeps_its_thread_busy_is_stopped_with_its_transaction() {
        let dir = TempDir::new();
        let mut conn = open(&dir);
        run(&mut conn, "CREATE TABLE t (a INTEGER)", vec![]);
        run(&mut conn, "INSERT INTO t VALUES (1)", vec![]);
        run(&mut conn, "BEGIN IMMEDIATE", vec![]);
        run(&mut conn, "INSERT INTO t VALUES (2)", vec![]);
        // A hostile guest's write: far more CPU time than a write in line may spend (it counts
        // a billion rows, and keeps none of them).
        let write = "INSERT INTO t WITH RECURSIVE c(x) AS \
                     (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) \
                     SELECT x FROM c WHERE x < 0";
        let started = Instant::now();
        match conn.run_inline(write, &[], true) {
            Err(NotInline::Failed(SqlError::Io(message))) => {
                assert!(message.starts_with("interrupted"), "{message}")
            }
            Err(NotInline::Failed(error)) => panic!("it failed otherwise: {error:?}"),
            Err(NotInline::Blocking) => panic!("the write was sent to a blocking thread"),
            Ok(_) => panic!("the write ran to its end"),
        }
        // Stopped at its budget (10 ms of CPU, or the 100 ms stall on a loaded machine), not at
        // its end, minutes away; the bound leaves room for tests running side by side.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // SQLite took its transaction with it: the row before it is gone too, the file is as
        // it was, and the connection is ready for the next request.
        assert!(!conn.in_transaction());
        let count = run(&mut conn, "SELECT count(*) FROM t", vec![]);
        assert!(matches!(count.rows[0][0], Value::Integer(1)));
    }

    #[test]
    fn a_parameter_the_call_does_not_give_is_null_not_the_last_calls_value() {
        let dir = TempDir::new();
        let mut conn = open(&dir);
        let echo = "SELECT $1 AS a, $2 AS b";
        let first = run(
            &mut conn,
            echo,
            vec![Value::Integer(7), Value::Text("secret".into())],
        );
        assert!(matches!(&first.rows[0][1], Value::Text(text) if text == "secret"));
        let second = run(&mut conn, echo, vec![]);
        assert!(
            matches!(second.rows[0][0], Value::Null),
            "{:?}",
            second.rows
        );
        assert!(
            matches!(second.rows[0][1], Value::Null),
            "{:?}",
            second.rows
        );
        let third = run(&mut conn, echo, vec![Value::Integer(8)]);
        assert!(matches!(third.rows[0][0], Value::Integer(8)));
        assert!(matches!(third.rows[0][1], Value::Null), "{:?}", third.rows);
    }

    /// Runs `sql` once as a kept statement, as the host's calls do, under whatever budget and
    /// progress handler the connection has.
    fn run_kept(
        conn: &mut RawConnection,
        sql: &str,
        parameters: &[Value],
    ) -> Result<usize, Failure> {
        let prepared = conn
            .cached(sql)
            .unwrap()
            .expect("a statement the cache keeps");
        let mut result = QueryResult {
            columns: Vec::new(),
            rows: Vec::new(),
        };
        let ran = conn.run_statement(prepared.statement, parameters, 0, &mut result);
        prepared.done();
        ran
    }

    /// Runs `sql` (kept prepared) with its budget spent before it starts, as on a request's
    /// thread that lost its core: answers whether it succeeded.
    fn run_with_budget_spent(conn: &mut RawConnection, sql: &str, parameters: &[Value]) -> bool {
        conn.set_mode(Some(Instant::now() - Duration::from_secs(1)), None);
        let ran = run_kept(conn, sql, parameters);
        *conn.budget = Budget::default();
        match ran {
            Ok(_) => true,
            Err(failure) => {
                assert!(must_wait(failure.code), "{:?}", failure.error);
                false
            }
        }
    }

    fn count(conn: &mut RawConnection, table: &str) -> i64 {
        let rows = run(conn, &format!("SELECT COUNT(*) FROM {table}"), vec![]).rows;
        match rows[0][0] {
            Value::Integer(n) => n,
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_kept_write_stopped_by_its_budget_has_run_whole_or_not_at_all() {
        // SQLite looks at the budget once more as a statement ends, after its commit when it
        // autocommits, and counts a kept statement's steps over all its runs: an INSERT of a
        // few steps answered "interrupted" one run in 33, its row written, and the host ran it
        // again (the checkout's claim then refused its own request for 5 s, then its user's).
        let dir = TempDir::new();
        let mut conn = open(&dir);
        run(
            &mut conn,
            "CREATE TABLE claims (user_id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE)",
            vec![],
        );
        let insert = "INSERT INTO claims (user_id, k) VALUES ($1, $2)";
        for user in 0..200 {
            let parameters = [Value::Integer(user), Value::Text(format!("key {user}"))];
            assert!(
                run_with_budget_spent(&mut conn, insert, &parameters),
                "the INSERT of user {user} answered interrupted"
            );
        }
        assert_eq!(count(&mut conn, "claims"), 200);

        // Longer writes, alone and in a transaction: every length from a few steps to a few
        // thousand, so that the budget is looked at on the way for some and only as they end
        // for others. Each has written all its rows and says so, or none and says it stopped.
        run(&mut conn, "CREATE TABLE t (x INTEGER)", vec![]);
        let insert = "INSERT INTO t WITH RECURSIVE s(i) AS \
                      (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1) SELECT i FROM s";
        let (mut stopped, mut whole) = (0, 0);
        for in_transaction in [false, true] {
            for rows in 1..=300 {
                run(&mut conn, "DELETE FROM t", vec![]);
                if in_transaction {
                    run(&mut conn, "BEGIN IMMEDIATE", vec![]);
                }
                let ran = run_with_budget_spent(&mut conn, insert, &[Value::Integer(rows)]);
                let written = count(&mut conn, "t");
                if ran {
                    whole += 1;
                    assert_eq!(written, rows, "succeeded with {written} of {rows} rows");
                } else {
                    stopped += 1;
                    assert_eq!(written, 0, "stopped with {written} of {rows} rows left");
                }
                if conn.in_transaction() {
                    run(&mut conn, "COMMIT", vec![]);
                }
            }
        }
        // Both ends were reached: short writes run whole, long ones are stopped.
        assert!(whole > 0 && stopped > 0, "whole {whole}, stopped {stopped}");
    }

    /// A progress handler that stops the statement on its `n`-th look (`n` counts down; 0:
    /// never).
    unsafe extern "C" fn stop_on_look(n: *mut c_void) -> c_int {
        // SAFETY: the test's counter, alive while the handler is registered.
        let n = unsafe { &mut *n.cast::<u32>() };
        match *n {
            0 => 0,
            1 => {
                *n = 0;
                1
            }
            _ => {
                *n -= 1;
                0
            }
        }
    }

    #[test]
    fn a_write_stopped_once_it_has_ended_is_answered_as_done() {
        // Stopped at each of the looks SQLite takes in turn (one every step here), the last of
        // which come once the statement has ended (committed, as it autocommits): those are a
        // success, the others a stop with nothing written, never "stopped" with its rows
        // written.
        let dir = TempDir::new();
        let mut conn = open(&dir);
        run(&mut conn, "CREATE TABLE t (x INTEGER)", vec![]);
        let insert = "INSERT INTO t WITH RECURSIVE s(i) AS \
                      (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 5) SELECT i FROM s";
        let mut stopped_as_it_ended = 0;
        for look in 1.. {
            let mut countdown: u32 = look;
            // SAFETY: `countdown` outlives the handler, which is put back below.
            unsafe {
                let countdown: *mut u32 = &mut countdown;
                ffi::sqlite3_progress_handler(
                    conn.db.as_ptr(),
                    1,
                    Some(stop_on_look),
                    countdown.cast(),
                );
            }
            let ran = run_kept(&mut conn, insert, &[]);
            let budget: *mut Budget = &mut *conn.budget;
            // SAFETY: the connection's own handler and budget, as `open` registers them.
            unsafe {
                ffi::sqlite3_progress_handler(
                    conn.db.as_ptr(),
                    BUDGET_CHECK_STEPS,
                    Some(past_budget),
                    budget.cast(),
                );
            }
            let stopped = countdown == 0;
            let written = count(&mut conn, "t");
            run(&mut conn, "DELETE FROM t", vec![]);
            match ran {
                Ok(_) => {
                    assert_eq!(written, 5, "look {look}: succeeded with {written} rows");
                    if stopped {
                        stopped_as_it_ended += 1;
                    } else {
                        break;
                    }
                }
                Err(failure) => {
                    assert!(stopped, "look {look}: {:?}", failure.error);
                    assert_eq!(written, 0, "look {look}: stopped with {written} rows left");
                }
            }
        }
        // SQLite may look several times once it has ended: at least one such look was met.
        assert!(
            stopped_as_it_ended > 0,
            "SQLite's look after the end was not met"
        );
    }
}
