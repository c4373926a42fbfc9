//! What one guest call may make the host do with a database, on both engines: the text it
//! sends, the values it binds, the rows and bytes it gets back, how long it runs and how large
//! its database may grow. A guest's own memory is capped by the engine; these caps keep what it
//! asks the host to hold on its behalf inside the same order of size.

use std::sync::OnceLock;
use std::time::Duration;

/// The database bounds of every guest call, set once at start ([`set`]) from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestBounds {
    /// The longest statement text a guest may send, in bytes.
    pub max_sql_bytes: usize,
    /// The largest single value (a bound parameter, a string or blob a statement makes), in
    /// bytes: SQLite's `SQLITE_LIMIT_LENGTH`, and the most a Postgres parameter may hold.
    pub max_value_bytes: usize,
    /// The most rows one statement may answer.
    pub max_result_rows: usize,
    /// The most bytes of values one statement may answer.
    pub max_result_bytes: usize,
    /// The largest a service's SQLite file may grow (past it writes fail with `database-full`).
    pub max_database_bytes: u64,
    /// The most heap the SQLite library may hold, for all connections of the process together.
    pub sqlite_heap_limit: u64,
    /// How long a request may run (`--request-timeout`): no statement of it runs longer, and
    /// on Postgres the server's own `statement_timeout`, `lock_timeout` and
    /// `idle_in_transaction_session_timeout` are set to it.
    pub request_timeout: Duration,
}

/// 1 MiB.
const MIB: usize = 1 << 20;

impl Default for GuestBounds {
    fn default() -> Self {
        Self {
            max_sql_bytes: 64 * 1024,
            max_value_bytes: 4 * MIB,
            max_result_rows: 10_000,
            max_result_bytes: 8 * MIB,
            max_database_bytes: 1 << 30,
            sqlite_heap_limit: 256 * MIB as u64,
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl GuestBounds {
    /// The error a guest gets when a statement's answer passes a bound.
    pub fn result_too_large(&self) -> String {
        format!(
            "the statement's result is larger than the host allows ({} rows, {} bytes): \
             ask for less (LIMIT, fewer columns)",
            self.max_result_rows, self.max_result_bytes
        )
    }

    /// Checks a statement's text and parameters against the bounds before anything runs.
    pub fn check_call<'v>(
        &self,
        sql: &str,
        values: impl IntoIterator<Item = usize> + 'v,
    ) -> Result<(), String> {
        if sql.len() > self.max_sql_bytes {
            return Err(format!(
                "the statement is {} bytes long; the host accepts at most {} (`--max-sql-bytes`)",
                sql.len(),
                self.max_sql_bytes
            ));
        }
        let mut total = 0usize;
        for size in values {
            if size > self.max_value_bytes {
                return Err(format!(
                    "a parameter holds {size} bytes; the host accepts at most {} per value \
                     (`--max-value-bytes`)",
                    self.max_value_bytes
                ));
            }
            total = total.saturating_add(size);
        }
        if total > self.max_result_bytes {
            return Err(format!(
                "the parameters hold {total} bytes; the host accepts at most {} per statement",
                self.max_result_bytes
            ));
        }
        Ok(())
    }
}

static BOUNDS: OnceLock<GuestBounds> = OnceLock::new();

/// Sets the bounds for the rest of the process; the first call wins (later ones are ignored,
/// so tests that start several apps in one process share the first's).
pub fn set(bounds: GuestBounds) {
    let _ = BOUNDS.set(bounds);
}

/// The bounds in force: those [`set`] at start, or the defaults.
pub fn get() -> &'static GuestBounds {
    BOUNDS.get_or_init(GuestBounds::default)
}

/// Counts what a statement's answer holds, and says when it passes the bounds.
#[derive(Debug)]
pub struct ResultBudget {
    rows: usize,
    bytes: usize,
    bounds: &'static GuestBounds,
}

impl ResultBudget {
    /// An empty budget under the bounds in force.
    pub fn new() -> Self {
        Self {
            rows: 0,
            bytes: 0,
            bounds: get(),
        }
    }

    /// Adds one row of `bytes`; `Err` once the answer passes a bound.
    pub fn add_row(&mut self, bytes: usize) -> Result<(), String> {
        self.rows += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        if self.rows > self.bounds.max_result_rows || self.bytes > self.bounds.max_result_bytes {
            Err(self.bounds.result_too_large())
        } else {
            Ok(())
        }
    }
}

impl Default for ResultBudget {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_past_a_bound_is_refused_naming_it() {
        let bounds = GuestBounds {
            max_sql_bytes: 10,
            max_value_bytes: 4,
            max_result_bytes: 6,
            ..GuestBounds::default()
        };
        assert!(bounds.check_call("SELECT 1", [4, 2]).is_ok());
        assert!(bounds
            .check_call("SELECT 1, 2", [])
            .unwrap_err()
            .contains("--max-sql-bytes"));
        assert!(bounds
            .check_call("SELECT 1", [5])
            .unwrap_err()
            .contains("--max-value-bytes"));
        assert!(bounds
            .check_call("SELECT 1", [4, 3])
            .unwrap_err()
            .contains("per statement"));
    }

    #[test]
    fn a_result_budget_stops_at_rows_or_bytes() {
        let mut budget = ResultBudget::new();
        let bounds = get();
        assert!(budget.add_row(bounds.max_result_bytes).is_ok());
        assert!(budget.add_row(1).is_err());
        let mut budget = ResultBudget::new();
        for _ in 0..bounds.max_result_rows {
            budget.add_row(0).unwrap();
        }
        assert!(budget.add_row(0).is_err());
    }
}
