//! What the host reads of a guest's statement before running it, with the SQL scanner shared
//! with Postgres ([`sql_scan`] in its SQLite dialect).

use crate::capabilities::sql_scan::{self, Token};
use crate::telemetry::StatementKind;

/// What the host needs to know of a statement's text before and after running it.
///
/// A light scan of its words outside literals, identifiers and comments: it errs on the side of
/// "a transaction may be open", which at worst costs one needless ROLLBACK.
#[derive(Debug, Default, PartialEq)]
pub(super) struct StatementShape {
    /// BEGIN or SAVEPOINT appears: a transaction may be open afterwards.
    pub(super) opens_transaction: bool,
    /// The statement is exactly COMMIT, END or ROLLBACK (with an optional TRANSACTION).
    pub(super) closes_transaction: bool,
    /// It may produce rows (a query, PRAGMA, or RETURNING), so its columns are worth describing.
    pub(super) may_return_rows: bool,
    /// It is INSERT, UPDATE, DELETE or REPLACE (possibly after WITH): it sets `changes`.
    pub(super) modifies_rows: bool,
    /// It inserts rows: it sets `last-insert-rowid`.
    pub(super) may_insert: bool,
    /// It starts with BEGIN, COMMIT, END, ROLLBACK, SAVEPOINT or RELEASE: it may take or give
    /// up the write lock, or commit (and so checkpoint), which the host never does inline.
    pub(super) controls_transaction: bool,
    /// It may take the database's write lock: INSERT, UPDATE, DELETE or REPLACE anywhere in it
    /// (a trigger, a CTE, a second statement), `BEGIN IMMEDIATE` or `EXCLUSIVE`, or a schema
    /// change. It errs on the side of "writes" (a `replace()` call counts), which costs only a
    /// turn in the database's line of writers.
    pub(super) takes_write_lock: bool,
}

impl StatementShape {
    /// Scans `sql`; `Err` for a `$0` parameter, which SQLite accepts but sqlx cannot bind.
    pub(super) fn scan(sql: &str) -> Result<Self, String> {
        let mut shape = Self::default();
        let mut first_word: Option<&str> = None;
        let mut words = 0usize;
        let mut closing_words = true;
        let mut dml_word = false;
        let mut locking_begin = false;
        let only_words = sql_scan::try_scan(sql, &sql_scan::SQLITE, |token| {
            let word = match token {
                Token::Word(word) => word,
                Token::Parameter(parameter) => return check_parameter(parameter),
                Token::Quoted | Token::Other => return Ok(()),
            };
            words += 1;
            let is = |keyword: &str| word.eq_ignore_ascii_case(keyword);
            if first_word.is_none() {
                first_word = Some(word);
                closing_words = is("COMMIT") || is("END") || is("ROLLBACK");
            } else if !(words == 2 && is("TRANSACTION")) {
                closing_words = false;
            }
            if is("BEGIN") || is("SAVEPOINT") {
                shape.opens_transaction = true;
            }
            if is("RETURNING") {
                shape.may_return_rows = true;
            }
            if is("INSERT") || is("REPLACE") {
                shape.may_insert = true;
                dml_word = true;
            }
            if is("UPDATE") || is("DELETE") {
                dml_word = true;
            }
            if is("IMMEDIATE") || is("EXCLUSIVE") {
                locking_begin = true;
            }
            Ok(())
        })?;
        let first = |keywords: &[&str]| {
            first_word.is_some_and(|w| keywords.iter().any(|k| w.eq_ignore_ascii_case(k)))
        };
        shape.closes_transaction = only_words && closing_words && words <= 2;
        shape.controls_transaction =
            first(&["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"]);
        if first(&["SELECT", "VALUES", "PRAGMA", "EXPLAIN", "WITH"]) {
            shape.may_return_rows = true;
        }
        shape.modifies_rows =
            first(&["INSERT", "UPDATE", "DELETE", "REPLACE"]) || (first(&["WITH"]) && dml_word);
        shape.may_insert &= shape.modifies_rows;
        shape.takes_write_lock = dml_word
            || (shape.opens_transaction && locking_begin)
            || first(&["CREATE", "DROP", "ALTER", "REINDEX", "VACUUM", "ANALYZE"]);
        Ok(shape)
    }
}

impl StatementShape {
    /// What it is for the statement metric: transaction control, a write, or else a read.
    pub(super) fn kind(&self) -> StatementKind {
        if self.controls_transaction {
            StatementKind::Transaction
        } else if self.modifies_rows {
            StatementKind::Write
        } else {
            StatementKind::Read
        }
    }
}

/// `Err` for `$0` (or `$00`, ...), as the scanner reports a parameter (with its sigil): SQLite
/// takes it as a name, but sqlx reads `$n` as a position and there is no position 0.
fn check_parameter(parameter: &str) -> Result<(), String> {
    let Some(name) = parameter.strip_prefix('$') else {
        return Ok(());
    };
    let digits = &name[..name.bytes().take_while(u8::is_ascii_digit).count()];
    if !digits.is_empty() && digits.bytes().all(|d| d == b'0') {
        return Err(format!(
            "parameter ${digits} is not valid: parameters are numbered from $1"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> StatementShape {
        StatementShape::scan(sql).unwrap()
    }
    #[test]
    fn scan_finds_what_takes_the_write_lock() {
        for writes in [
            "BEGIN IMMEDIATE",
            "begin exclusive transaction",
            "INSERT INTO t VALUES (1)",
            "WITH x AS (SELECT 1) UPDATE t SET a = 1",
            "SELECT 1; DELETE FROM t",
            "REPLACE INTO t VALUES (1)",
            "CREATE TABLE t (a)",
        ] {
            assert!(shape(writes).takes_write_lock, "{writes}");
        }
        for reads in [
            "BEGIN",
            "BEGIN DEFERRED",
            "COMMIT",
            "ROLLBACK",
            "SELECT 'INSERT' FROM t -- UPDATE",
            "SELECT \"delete\" FROM t",
            "PRAGMA user_version",
        ] {
            assert!(!shape(reads).takes_write_lock, "{reads}");
        }
    }

    #[test]
    fn statements_are_read_writes_or_transaction_control() {
        use StatementKind::{Read, Transaction, Write};
        for (statement, kind) in [
            ("BEGIN IMMEDIATE", Transaction),
            ("  commit", Transaction),
            ("RELEASE a", Transaction),
            ("INSERT INTO t VALUES (1)", Write),
            ("replace into t values (1)", Write),
            ("WITH x AS (SELECT 1) UPDATE t SET a = 1", Write),
            ("WITH x AS (SELECT 'update' FROM t) SELECT * FROM x", Read),
            ("SELECT 1", Read),
            ("PRAGMA user_version", Read),
        ] {
            assert_eq!(shape(statement).kind(), kind, "{statement}");
        }
    }

    #[test]
    fn scan_finds_transactions() {
        assert!(shape("BEGIN IMMEDIATE").opens_transaction);
        assert!(shape("  begin;").opens_transaction);
        assert!(shape("SAVEPOINT a").opens_transaction);
        assert!(!shape("SELECT 'BEGIN' FROM t -- BEGIN").opens_transaction);
        assert!(!shape("SELECT \"begin\" FROM t /* begin */").opens_transaction);
        assert!(shape("COMMIT").closes_transaction);
        assert!(shape("commit transaction;").closes_transaction);
        assert!(shape("END").closes_transaction);
        assert!(shape("ROLLBACK").closes_transaction);
        assert!(!shape("ROLLBACK TO a").closes_transaction);
        assert!(!shape("ROLLBACK TRANSACTION TO SAVEPOINT a").closes_transaction);
        assert!(!shape("COMMIT; BEGIN").closes_transaction);
        for control in [
            "BEGIN IMMEDIATE",
            "commit",
            "END",
            "ROLLBACK TO a",
            "SAVEPOINT a",
        ] {
            assert!(shape(control).controls_transaction, "{control}");
        }
        assert!(shape("release a").controls_transaction);
        assert!(!shape("SELECT 1 AS \"begin\"").controls_transaction);
        assert!(!shape("SELECT 1").closes_transaction);
    }

    #[test]
    fn scan_classifies_statements() {
        let insert = shape("INSERT INTO t (a) VALUES ($1)");
        assert!(insert.modifies_rows && insert.may_insert && !insert.may_return_rows);
        let returning = shape("insert into t (a) values ($1) returning id");
        assert!(returning.may_return_rows && returning.may_insert);
        let update = shape("UPDATE t SET a = replace(a, 'x', 'y') WHERE id = $1");
        assert!(update.modifies_rows && update.may_insert); // harmless: rowid kept if unchanged
        let select = shape("SELECT replace(a, 'x', 'y') FROM t");
        assert!(select.may_return_rows && !select.modifies_rows && !select.may_insert);
        let with = shape("WITH x AS (SELECT 1) DELETE FROM t WHERE id IN x");
        assert!(with.modifies_rows && !with.may_insert);
        assert!(!shape("CREATE TABLE t (a)").may_return_rows);
    }

    #[test]
    fn scan_rejects_parameter_zero() {
        assert!(StatementShape::scan("SELECT $0").is_err());
        assert!(StatementShape::scan("SELECT $00abc").is_err());
        assert!(StatementShape::scan("SELECT $1, $10, '$0.00'").is_ok());
    }

    #[test]
    fn scan_skips_quotes_identifiers_and_comments() {
        assert!(!shape("SELECT [begin], `savepoint` FROM t").opens_transaction);
        assert!(!shape("SELECT 'it''s BEGIN'").opens_transaction);
        assert!(!shape("SELECT :begin, @begin, $begin, ?1").opens_transaction);
        // A backslash escapes nothing in SQLite: the quote ends at the next `"`.
        assert!(shape("SELECT \"a\\\" BEGIN").opens_transaction);
        assert!(shape("SELECT 1 -- x\n; BEGIN").opens_transaction);
        assert!(!shape("SELECT 'unclosed BEGIN").opens_transaction);
        assert!(!shape("SELECT 1 /* unclosed BEGIN").opens_transaction);
        assert!(shape("/* c */ COMMIT -- done").closes_transaction);
        assert!(shape("ROLLBACK; ;").closes_transaction);
        assert!(!shape("COMMIT 'x'").closes_transaction);
        assert!(!shape("ROLLBACK ?").closes_transaction);
        assert!(!shape("COMMIT TRANSACTION TRANSACTION").closes_transaction);
        // Only a `$0` that SQLite reads as a parameter is refused.
        for sql in [
            "SELECT 1 -- $0",
            "SELECT [$0]",
            "SELECT `$0`",
            "SELECT ?0, :0, @0",
            "x$0",
        ] {
            assert!(StatementShape::scan(sql).is_ok(), "{sql}");
        }
        assert_eq!(
            StatementShape::scan("SELECT $1, $000x, $0").unwrap_err(),
            "parameter $000 is not valid: parameters are numbered from $1"
        );
    }
}
