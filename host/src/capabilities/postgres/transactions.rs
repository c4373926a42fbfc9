//! What a statement may do to its connection beyond its result: open or close a transaction,
//! or leave state in the session, read from its words outside quotes and comments.

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
    let bytes = sql.as_bytes();
    let mut only_words = true;
    let mut index = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b if b.is_ascii_whitespace() || b == b';' => i += 1,
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    // E'...' strings may escape a quote with a backslash: skipping the byte
                    // after any backslash only ever makes the scan more conservative.
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                only_words = false;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |end| i + end + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |end| i + 2 + end + 2);
            }
            b'$' => {
                // `$n` parameter, or `$tag$ ... $tag$` dollar quoting.
                let start = i;
                i += 1;
                while i < bytes.len() && is_word_byte(bytes[i]) && bytes[i] != b'$' {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'$')
                    && !bytes[start + 1..i].first().is_some_and(u8::is_ascii_digit)
                {
                    let tag = &sql[start..=i];
                    i = sql[i + 1..]
                        .find(tag)
                        .map_or(bytes.len(), |end| i + 1 + end + tag.len());
                }
                only_words = false;
            }
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                let start = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                f(&sql[start..i], index);
                index += 1;
            }
            _ => {
                i += 1;
                only_words = false;
            }
        }
    }
    only_words
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
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
}
