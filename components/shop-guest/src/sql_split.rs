//! Splits a migration file into its statements, for connections that run one statement per
//! call (Spin's `spin:sqlite` does). Shared by the build script, which embeds the result, and
//! the crate's unit tests.

/// The statements of `sql`, each trimmed and without its `;`: semicolons inside quotes and
/// comments do not split, and a piece that holds only comments is dropped. Refuses what one
/// statement per call cannot run as written: triggers (whose bodies hold `;`) and sqlx's
/// `-- no-transaction` migrations.
pub fn split_statements(sql: &str) -> Result<Vec<String>, String> {
    if sql.trim_start().starts_with("-- no-transaction") {
        return Err("`-- no-transaction` migrations are not supported".to_owned());
    }
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut code = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                current.push(c);
                code.push(c);
                for inner in chars.by_ref() {
                    current.push(inner);
                    if inner == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for inner in chars.by_ref() {
                    if inner == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = ' ';
                for inner in chars.by_ref() {
                    if previous == '*' && inner == '/' {
                        break;
                    }
                    previous = inner;
                }
                current.push(' ');
            }
            ';' => finish(&mut statements, &mut current, &mut code)?,
            _ => {
                current.push(c);
                code.push(c);
            }
        }
    }
    finish(&mut statements, &mut current, &mut code)?;
    Ok(statements)
}

/// Ends the statement being read, if it holds any code.
fn finish(
    statements: &mut Vec<String>,
    current: &mut String,
    code: &mut String,
) -> Result<(), String> {
    let words: Vec<String> = code
        .split_whitespace()
        .take(4)
        .map(str::to_ascii_uppercase)
        .collect();
    if words.first().map(String::as_str) == Some("CREATE") && words.iter().any(|w| w == "TRIGGER") {
        return Err("triggers are not supported: their bodies hold `;`".to_owned());
    }
    let statement = current.trim();
    if !statement.is_empty() {
        statements.push(statement.to_owned());
    }
    current.clear();
    code.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let sql = "-- a comment; not a split\nCREATE TABLE t (a TEXT DEFAULT ';');\n\
                   /* block; comment */ CREATE INDEX i ON t (a);\n-- trailing comment\n";
        assert_eq!(
            split_statements(sql).unwrap(),
            vec![
                "CREATE TABLE t (a TEXT DEFAULT ';')",
                "CREATE INDEX i ON t (a)"
            ]
        );
    }

    #[test]
    fn keeps_quoted_identifiers_whole() {
        let sql = "CREATE TABLE \"odd;name\" (x INTEGER)";
        assert_eq!(split_statements(sql).unwrap(), vec![sql]);
    }

    #[test]
    fn refuses_triggers_and_no_transaction_files() {
        assert!(
            split_statements("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END;").is_err()
        );
        assert!(split_statements("-- no-transaction\nCREATE INDEX i ON t (a);").is_err());
    }
}
