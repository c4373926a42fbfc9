//! One scanner of SQL statement text for the database capabilities: the words outside quotes,
//! comments and parameters, which is what the host reads of a guest's statement before running
//! it (does it open a transaction, close one, leave session state behind?).
//!
//! It is not a parser: it only tells words from everything else, and where it is unsure it
//! errs on the side the callers choose to be safe with (see [`Dialect::backslash_escapes`]).
//! The dialects differ in a few bytes, each a field of [`Dialect`]; everything else is shared:
//!
//! - whitespace and `;` separate tokens and are skipped;
//! - `-- ...` (to the end of the line) and `/* ... */` (not nested) are comments, skipped;
//! - `'...'` and `"..."` are one [`Token::Quoted`] each, up to the next same quote (a doubled
//!   quote reads as two quoted tokens side by side, which is the same for the callers);
//! - a word starts with an ASCII letter or `_` (in Postgres also a byte >= 0x80, see
//!   [`Dialect::non_ascii_word_start`]) and goes on over ASCII letters, digits, `_`, `$` and
//!   every byte >= 0x80 (so a word never ends inside a UTF-8 character);
//! - any other byte is a [`Token::Other`] of its own (numbers, operators, punctuation).
//!
//! Postgres' `for_each_word(sql, f)` (`f` takes each word and its index; the result says whether
//! the statement held only words) is this scanner with [`POSTGRES`], counting the words:
//!
//! ```ignore
//! fn for_each_word(sql: &str, mut f: impl FnMut(&str, usize)) -> bool {
//!     let mut index = 0;
//!     sql_scan::scan(sql, &sql_scan::POSTGRES, |token| {
//!         if let sql_scan::Token::Word(word) = token {
//!             f(word, index);
//!             index += 1;
//!         }
//!     })
//! }
//! ```

use std::convert::Infallible;

/// The bytes in which one SQL dialect's statement text differs from another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// Inside `'...'` and `"..."`, a backslash takes the next byte with it (Postgres' `E'..'`
    /// strings): applied to every quote, which only ever makes a scan more conservative.
    pub backslash_escapes: bool,
    /// `` `name` `` and `[name]` quote identifiers too (SQLite's MySQL and Access spellings).
    pub backtick_and_bracket_identifiers: bool,
    /// How parameters are written, and what `$` means.
    pub parameters: Parameters,
    /// A word may also start with a byte >= 0x80 (Postgres: a non-ASCII letter). Without it,
    /// such a byte outside a word is a [`Token::Other`].
    pub non_ascii_word_start: bool,
}

/// How a dialect writes parameters (and so what a `$` starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parameters {
    /// Postgres: `$` and the word bytes after it, up to a `$`, is a parameter (`$1`); if a `$`
    /// ends it and it does not start with a digit, it is the tag of a dollar-quoted string
    /// (`$$ ... $$`, `$tag$ ... $tag$`), one [`Token::Quoted`] up to the same tag.
    DollarNumbers,
    /// SQLite: `?`, `:`, `@` or `$`, then digits, then word bytes (`?`, `?1`, `:name`, `@name`,
    /// `$name`, `$1`), is a parameter.
    Sigils,
}

/// Postgres' statement text.
pub const POSTGRES: Dialect = Dialect {
    backslash_escapes: true,
    backtick_and_bracket_identifiers: false,
    parameters: Parameters::DollarNumbers,
    non_ascii_word_start: true,
};

/// SQLite's statement text.
pub const SQLITE: Dialect = Dialect {
    backslash_escapes: false,
    backtick_and_bracket_identifiers: true,
    parameters: Parameters::Sigils,
    non_ascii_word_start: false,
};

/// One piece of a statement outside comments, as [`scan`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// A keyword or a bare name, as written (compare it with `eq_ignore_ascii_case`).
    Word(&'a str),
    /// A parameter with its sigil, as written: `"$1"`, `"?"`, `"?2"`, `":name"`, `"$0"`.
    Parameter(&'a str),
    /// A quoted string or identifier, or a dollar-quoted string: what it holds is not read.
    Quoted,
    /// A byte that is none of the above: a digit of a number, an operator, punctuation.
    Other,
}

/// Calls `f` with every token of `sql` outside comments (whitespace and `;` are skipped), in
/// order; returns whether the statement held only words (no quoted, parameter or other token).
pub fn scan<'a>(sql: &'a str, dialect: &Dialect, mut f: impl FnMut(Token<'a>)) -> bool {
    let result = try_scan(sql, dialect, |token| {
        f(token);
        Ok::<(), Infallible>(())
    });
    match result {
        Ok(only_words) => only_words,
        Err(never) => match never {},
    }
}

/// [`scan`], stopping at the first token for which `f` answers `Err`, with that error.
pub fn try_scan<'a, E>(
    sql: &'a str,
    dialect: &Dialect,
    mut f: impl FnMut(Token<'a>) -> Result<(), E>,
) -> Result<bool, E> {
    let bytes = sql.as_bytes();
    let mut only_words = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let token = match b {
            b if b.is_ascii_whitespace() || b == b';' => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = past(bytes, i + 2, b'\n');
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |end| i + 2 + end + 2);
                continue;
            }
            b'\'' | b'"' => {
                i = past_quote(bytes, i + 1, b, dialect.backslash_escapes);
                Token::Quoted
            }
            b'`' if dialect.backtick_and_bracket_identifiers => {
                i = past(bytes, i + 1, b'`');
                Token::Quoted
            }
            b'[' if dialect.backtick_and_bracket_identifiers => {
                i = past(bytes, i + 1, b']');
                Token::Quoted
            }
            b'$' if dialect.parameters == Parameters::DollarNumbers => {
                let (end, token) = dollar(sql, i);
                i = end;
                token
            }
            b'$' | b'?' | b':' | b'@' if dialect.parameters == Parameters::Sigils => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                Token::Parameter(&sql[start..i])
            }
            b if b.is_ascii_alphabetic()
                || b == b'_'
                || (dialect.non_ascii_word_start && b >= 0x80) =>
            {
                let start = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                Token::Word(&sql[start..i])
            }
            _ => {
                i += 1;
                Token::Other
            }
        };
        only_words &= matches!(token, Token::Word(_));
        f(token)?;
    }
    Ok(only_words)
}

/// Whether `b` goes on a word (or a parameter's name): `$` included, as both dialects allow it
/// after a word's first byte, and every byte of a non-ASCII character.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The index just past the next `close` at or after `from`, or the end.
fn past(bytes: &[u8], from: usize, close: u8) -> usize {
    match bytes[from.min(bytes.len())..]
        .iter()
        .position(|b| *b == close)
    {
        Some(offset) => from + offset + 1,
        None => bytes.len(),
    }
}

/// The index just past the `quote` that closes a quote whose text starts at `from`, or the end;
/// with `backslash_escapes`, a backslash hides the byte after it.
fn past_quote(bytes: &[u8], from: usize, quote: u8, backslash_escapes: bool) -> usize {
    if !backslash_escapes {
        return past(bytes, from, quote);
    }
    let mut i = from;
    while i < bytes.len() && bytes[i] != quote {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    (i + 1).min(bytes.len())
}

/// The end of the Postgres `$` token at `start`, and the token: a dollar-quoted string or a
/// parameter (`$1`; also a lone `$` or `$name`, which Postgres would refuse anyway).
fn dollar(sql: &str, start: usize) -> (usize, Token<'_>) {
    let bytes = sql.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() && is_word_byte(bytes[i]) && bytes[i] != b'$' {
        i += 1;
    }
    if bytes.get(i) == Some(&b'$') && !bytes[start + 1..i].first().is_some_and(u8::is_ascii_digit) {
        let tag = &sql[start..=i];
        let end = sql[i + 1..]
            .find(tag)
            .map_or(bytes.len(), |end| i + 1 + end + tag.len());
        return (end, Token::Quoted);
    }
    (i, Token::Parameter(&sql[start..i]))
}

/// Statements made of pieces that stress a scanner, for the tests of its users: every quote,
/// comment and parameter form of both dialects, unclosed ones, non-ASCII text, and the
/// keywords the capabilities look for, in a fixed pseudo-random mix.
#[cfg(test)]
pub(crate) fn tricky_statements() -> Vec<String> {
    const PIECES: &[&str] = &[
        " ",
        ";",
        "\n",
        "\t",
        "BEGIN",
        "commit",
        "work",
        "TRANSACTION",
        "end",
        "ROLLBACK",
        "SAVEPOINT",
        "START",
        "insert",
        "UPDATE",
        "DELETE",
        "REPLACE",
        "WITH",
        "SELECT",
        "RETURNING",
        "PRAGMA",
        "TEMP",
        "set_config",
        "x",
        "é",
        "a$b",
        "_u",
        "1",
        "'",
        "\"",
        "`",
        "[",
        "]",
        "\\",
        "'a''b'",
        "E'\\''",
        "--",
        "-",
        "/*",
        "*/",
        "/",
        "*",
        "$",
        "$$",
        "$1",
        "$0",
        "$00x",
        "$t$",
        "?",
        "?1",
        ":n",
        "@m",
        "(",
        ",",
        "=",
        "0",
    ];
    // A fixed xorshift sequence: the same statements on every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut statements: Vec<String> = PIECES.iter().map(|piece| piece.to_string()).collect();
    for _ in 0..30_000 {
        let len = 1 + next() % 8;
        let statement = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        statements.push(statement);
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens of `sql` and whether it held only words.
    fn tokens<'a>(sql: &'a str, dialect: &Dialect) -> (Vec<Token<'a>>, bool) {
        let mut tokens = Vec::new();
        let only_words = scan(sql, dialect, |token| tokens.push(token));
        (tokens, only_words)
    }

    /// Postgres' `for_each_word`, rebuilt on [`scan`] as the module doc shows.
    fn for_each_word(sql: &str, mut f: impl FnMut(&str, usize)) -> bool {
        let mut index = 0;
        scan(sql, &POSTGRES, |token| {
            if let Token::Word(word) = token {
                f(word, index);
                index += 1;
            }
        })
    }

    /// The words `for_each_word` reports, with their indexes, and its answer.
    fn words(sql: &str) -> (Vec<(String, usize)>, bool) {
        let mut words = Vec::new();
        let only_words = for_each_word(sql, |word, index| words.push((word.to_owned(), index)));
        (words, only_words)
    }

    // Postgres' three readers of a statement, as `capabilities/postgres` writes them on its
    // `for_each_word`, here on the rebuilt one: its test cases must give the same answers.

    fn opens_transaction(statement: &str) -> bool {
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

    fn may_change_session(statement: &str) -> bool {
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

    fn closes_transaction(statement: &str) -> bool {
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

    #[test]
    fn postgres_statements_that_leave_session_state_are_recognised() {
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
    fn postgres_transaction_statements_are_recognised() {
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

    #[test]
    fn sqlite_tokens_name_parameters_and_quoted_identifiers() {
        use Token::*;
        let (tokens, only_words) = tokens(
            "SELECT [a b], `c`, \"d\\\", ?, ?2, :n, @m, $o$p, é",
            &SQLITE,
        );
        assert!(!only_words);
        let tokens: Vec<_> = tokens.into_iter().filter(|t| *t != Other).collect();
        assert_eq!(
            tokens,
            [
                Word("SELECT"),
                Quoted,
                Quoted,
                Quoted, // a backslash escapes nothing in SQLite
                Parameter("?"),
                Parameter("?2"),
                Parameter(":n"),
                Parameter("@m"),
                Parameter("$o$p"),
            ]
        );
        // The bytes of a non-ASCII character outside a word are one `Other` each.
        assert_eq!(tokens_of("é", &SQLITE), [Other, Other]);
        assert_eq!(tokens_of("xé", &SQLITE), [Word("xé")]);
    }

    /// The tokens of `sql`.
    fn tokens_of<'a>(sql: &'a str, dialect: &Dialect) -> Vec<Token<'a>> {
        tokens(sql, dialect).0
    }

    #[test]
    fn try_scan_stops_at_the_first_error() {
        let mut seen = Vec::new();
        let result = try_scan("a $0 b $00", &SQLITE, |token| {
            seen.push(token);
            match token {
                Token::Parameter(p) => Err(p),
                _ => Ok(()),
            }
        });
        assert_eq!(result, Err("$0"));
        assert_eq!(seen, [Token::Word("a"), Token::Parameter("$0")]);
    }

    /// Today's Postgres `for_each_word`, as written in `capabilities/postgres`: the oracle that
    /// the rebuilt one must match byte for byte.
    fn postgres_for_each_word(sql: &str, mut f: impl FnMut(&str, usize)) -> bool {
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

    #[test]
    fn the_postgres_dialect_matches_todays_for_each_word() {
        for sql in tricky_statements() {
            let mut expected = Vec::new();
            let expected_only_words =
                postgres_for_each_word(&sql, |word, index| expected.push((word.to_owned(), index)));
            assert_eq!(words(&sql), (expected, expected_only_words), "{sql:?}");
        }
    }
}
