//! What a statement may do to its connection beyond its result: open or close a transaction,
//! or leave state in the session, read from its words outside quotes and comments.

use crate::capabilities::sql_scan::{self, Token};

/// Whether `statement` may open a transaction (BEGIN, START TRANSACTION, SAVEPOINT anywhere
/// outside quotes and comments): at worst this costs one needless ROLLBACK at drop.
pub(crate) fn opens_transaction(statement: &str) -> bool {
    let mut opens = false;
    for_each_word(statement, |word, _| {
        if ["BEGIN", "START", "SAVEPOINT"]
            .iter()
            .any(|k| word.eq_ignore_ascii_case(k))
        {
            opens = true;
        }
    });
    opens
}

/// Whether `statement` may leave state in the session for a later request: anything but a query,
/// DML or transaction control (SET, RESET, LISTEN, PREPARE, DECLARE, CREATE ..., DO, LOCK), or a
/// statement naming a temporary object or a function that sets session state. A function of the
/// service's own that does so unseen reaches only the service's own later requests: the pool is
/// the service's role's alone.
pub(crate) fn may_change_session(statement: &str) -> bool {
    const PLAIN: [&str; 15] = [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "VALUES",
        "TABLE",
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT",
        "RELEASE",
    ];
    const SESSION: [&str; 7] = [
        "TEMP",
        "TEMPORARY",
        "set_config",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
    ];
    let mut changes = false;
    let mut first = true;
    for_each_word(statement, |word, _| {
        let is = |k: &&str| word.eq_ignore_ascii_case(k);
        if first {
            first = false;
            changes |= !PLAIN.iter().any(is);
        }
        changes |= SESSION.iter().any(is);
    });
    changes
}

/// Whether `statement` is exactly COMMIT, END, ROLLBACK or ABORT (with an optional WORK or
/// TRANSACTION), which ends any transaction when it succeeds.
pub(crate) fn closes_transaction(statement: &str) -> bool {
    let mut words = 0;
    let mut closes = true;
    let only_words = for_each_word(statement, |word, index| {
        words += 1;
        let is = |k: &str| word.eq_ignore_ascii_case(k);
        closes &= match index {
            0 => is("COMMIT") || is("END") || is("ROLLBACK") || is("ABORT"),
            1 => is("WORK") || is("TRANSACTION"),
            _ => false,
        };
    });
    only_words && closes && words > 0
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
            assert!(!may_change_session(plain), "{plain}");
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
            assert!(may_change_session(stateful), "{stateful}");
        }
    }

    #[test]
    fn transaction_statements_are_recognised() {
        assert!(opens_transaction("BEGIN"));
        assert!(opens_transaction(
            "start transaction isolation level serializable"
        ));
        assert!(opens_transaction("SAVEPOINT s"));
        assert!(!opens_transaction("SELECT 'begin', \"begin\" -- begin"));
        assert!(!opens_transaction(
            "SELECT $$ BEGIN $$, $tag$ begin $tag$, $1"
        ));
        assert!(closes_transaction("COMMIT"));
        assert!(closes_transaction("rollback work;"));
        assert!(closes_transaction("END TRANSACTION"));
        assert!(!closes_transaction("ROLLBACK TO SAVEPOINT s"));
        assert!(!closes_transaction("COMMIT AND CHAIN"));
        assert!(!closes_transaction("SELECT 1"));
        assert!(!closes_transaction(""));
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
