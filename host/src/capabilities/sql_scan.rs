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
//! Postgres reads a statement's words with [`POSTGRES`] (`postgres/transactions.rs`), SQLite its
//! words and parameters with [`SQLITE`] (`sqlite/statement.rs`).

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens of `sql` and whether it held only words.
    fn tokens<'a>(sql: &'a str, dialect: &Dialect) -> (Vec<Token<'a>>, bool) {
        let mut tokens = Vec::new();
        let only_words = scan(sql, dialect, |token| tokens.push(token));
        (tokens, only_words)
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
}
