//! What a statement may do to its connection beyond its result: open or close a transaction,
//! or leave state in the session, read from its words outside quotes and comments.

use crate::capabilities::sql_scan::{self, Token};
use crate::telemetry::StatementKind;

/// What a statement may do to its connection beyond its result, and what kind of statement it
/// is for the statement metric: all read in one pass over its words outside quotes and comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Effects {
    /// BEGIN, START or SAVEPOINT appears anywhere: at worst this costs one needless ROLLBACK.
    pub(crate) opens_transaction: bool,
    /// It is exactly COMMIT, END, ROLLBACK or ABORT (with an optional WORK or TRANSACTION),
    /// which ends any transaction when it succeeds.
    pub(crate) closes_transaction: bool,
    /// It may leave state in the session for a later request: anything but a query, DML or
    /// transaction control (SET, RESET, LISTEN, PREPARE, DECLARE, CREATE ..., DO, LOCK), or a
    /// statement naming a temporary object or a function that sets session state. A function
    /// of the service's own that does so unseen reaches only the service's own later requests:
    /// the pool is the service's role's alone.
    pub(crate) may_change_session: bool,
    /// Transaction control, a write (INSERT, UPDATE, DELETE, MERGE, or a WITH holding one), or
    /// else a read.
    pub(crate) kind: StatementKind,
}

/// First words of queries and DML, which leave nothing in the session.
const QUERIES: [&str; 8] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "VALUES", "TABLE",
];

/// Words that name a temporary object or a function that sets session state.
const SESSION: [&str; 7] = [
    "TEMP",
    "TEMPORARY",
    "set_config",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
];

/// First words of transaction control, which leaves nothing in the session either.
const CONTROL: [&str; 8] = [
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
];

/// Words that write rows.
const WRITES: [&str; 4] = ["INSERT", "UPDATE", "DELETE", "MERGE"];

/// What `statement` may do, read from its words outside quotes, dollar quotes and comments.
pub(crate) fn effects(statement: &str) -> Effects {
    let mut opens_transaction = false;
    let mut may_change_session = false;
    let mut closing_words = true;
    let mut words = 0usize;
    let mut control = false;
    let mut first_writes = false;
    let mut with_writes = false;
    let mut first_is_with = false;
    let only_words = for_each_word(statement, |word, index| {
        words += 1;
        let is = |k: &&str| word.eq_ignore_ascii_case(k);
        if ["BEGIN", "START", "SAVEPOINT"].iter().any(is) {
            opens_transaction = true;
        }
        may_change_session |= SESSION.iter().any(is);
        let writes = WRITES.iter().any(is);
        closing_words &= match index {
            0 => ["COMMIT", "END", "ROLLBACK", "ABORT"].iter().any(is),
            1 => ["WORK", "TRANSACTION"].iter().any(is),
            _ => false,
        };
        if index == 0 {
            control = CONTROL.iter().any(is);
            may_change_session |= !(control || QUERIES.iter().any(is));
            first_writes = writes;
            first_is_with = is(&"WITH");
        } else {
            with_writes |= writes;
        }
    });
    let kind = if control {
        StatementKind::Transaction
    } else if first_writes || (first_is_with && with_writes) {
        StatementKind::Write
    } else {
        StatementKind::Read
    };
    Effects {
        opens_transaction,
        closes_transaction: only_words && closing_words && words > 0,
        may_change_session,
        kind,
    }
}

/// Calls `f` with each word (and its index) outside quotes, dollar quotes and comments;
/// returns whether the statement held nothing but words, whitespace and semicolons.
fn for_each_word(sql: &str, mut f: impl FnMut(&str, usize)) -> bool {
    let mut index = 0;
    sql_scan::scan(sql, &sql_scan::POSTGRES, |token| {
        if let Token::Word(word) = token {
            f(word, index);
            index += 1;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_that_leave_session_state_are_recognised() {
        for plain in [
            "SELECT id, name FROM products WHERE id = $1",
            "INSERT INTO orders (a) VALUES ($1) RETURNING id",
            "UPDATE products SET stock = stock - $1 WHERE id = $2 AND stock >= $1",
            "WITH x AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM x)",
            "BEGIN",
            "COMMIT",
            "SELECT 'SET search_path TO x; set_config' AS text -- TEMP",
            "",
        ] {
            assert!(!effects(plain).may_change_session, "{plain}");
        }
        for stateful in [
            "SET search_path TO accounts",
            "set statement_timeout = 1",
            "RESET ALL",
            "LISTEN channel",
            "PREPARE p AS SELECT 1",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "CREATE TEMP TABLE t (a int)",
            "SELECT * INTO TEMPORARY t FROM products",
            "SELECT set_config('application_name', 'x', false)",
            "SELECT pg_advisory_lock(1)",
            "DO $$ BEGIN PERFORM 1; END $$",
            "  /* c */ Set role postgres",
        ] {
            assert!(effects(stateful).may_change_session, "{stateful}");
        }
    }

    fn opens(statement: &str) -> bool {
        effects(statement).opens_transaction
    }

    fn closes(statement: &str) -> bool {
        effects(statement).closes_transaction
    }

    #[test]
    fn statements_are_read_writes_or_transaction_control() {
        use StatementKind::{Read, Transaction, Write};
        for (statement, kind) in [
            ("BEGIN", Transaction),
            ("  commit", Transaction),
            ("start transaction", Transaction),
            ("INSERT INTO t VALUES (1)", Write),
            ("merge into t using s on true when matched then delete", Write),
            (
                "WITH taken AS (UPDATE p SET s = s - 1 RETURNING id) INSERT INTO r SELECT id FROM taken",
                Write,
            ),
            ("WITH x AS (SELECT updated_at FROM t) SELECT * FROM x", Read),
            ("WITH x AS (SELECT 'update' FROM t) SELECT * FROM x", Read),
            ("SELECT 1", Read),
            ("SELECT pg_advisory_xact_lock(1)", Read),
        ] {
            assert_eq!(effects(statement).kind, kind, "{statement}");
        }
    }

    #[test]
    fn transaction_statements_are_recognised() {
        assert!(opens("BEGIN"));
        assert!(opens("start transaction isolation level serializable"));
        assert!(opens("SAVEPOINT s"));
        assert!(!opens("SELECT 'begin', \"begin\" -- begin"));
        assert!(!opens("SELECT $$ BEGIN $$, $tag$ begin $tag$, $1"));
        assert!(closes("COMMIT"));
        assert!(closes("rollback work;"));
        assert!(closes("END TRANSACTION"));
        assert!(!closes("ROLLBACK TO SAVEPOINT s"));
        assert!(!closes("COMMIT AND CHAIN"));
        assert!(!closes("SELECT 1"));
        assert!(!closes(""));
    }

    fn words(sql: &str) -> (Vec<(String, usize)>, bool) {
        let mut words = Vec::new();
        let only_words = for_each_word(sql, |word, index| words.push((word.to_owned(), index)));
        (words, only_words)
    }

    #[test]
    fn postgres_words_skip_quotes_dollar_quotes_and_comments() {
        let owned = |words: &[&str]| {
            let words = words.iter().enumerate();
            words.map(|(i, w)| (w.to_string(), i)).collect::<Vec<_>>()
        };
        assert_eq!(words("commit work;"), (owned(&["commit", "work"]), true));
        assert_eq!(
            words("  /* c */ Set -- x\n role"),
            (owned(&["Set", "role"]), true)
        );
        assert_eq!(words("SELECT $1"), (owned(&["SELECT"]), false));
        // A backslash hides the quote after it, in E'' strings (and, conservatively, elsewhere).
        assert_eq!(
            words(r"SELECT E'\' BEGIN'"),
            (owned(&["SELECT", "E"]), false)
        );
        assert_eq!(words(r#"SELECT "a\" BEGIN""#), (owned(&["SELECT"]), false));
        // A dollar quote ends at its own tag only; `$1$` is a parameter, not a tag.
        assert_eq!(words("$a$ $$ BEGIN $a$ x"), (owned(&["x"]), false));
        assert_eq!(words("$1$x"), (owned(&[]), false));
        assert_eq!(words("$$ BEGIN"), (owned(&[]), false));
        // No bracket, backtick or sigil parameters in Postgres: their words are words.
        assert_eq!(
            words("[begin] `begin` @begin :begin ?"),
            (owned(&["begin", "begin", "begin", "begin"]), false)
        );
        // A word may start with a non-ASCII letter and hold `$`.
        assert_eq!(words("été a$b"), (owned(&["été", "a$b"]), true));
        assert_eq!(words("'unclosed"), (owned(&[]), false));
        assert_eq!(words("/* unclosed BEGIN"), (owned(&[]), true));
    }
}
