//! The one place that decides what a database address is.
//!
//! A service's `<service>_database` variable (and `shop up --database-url`) holds either a
//! Postgres URL (`postgres://` or `postgresql://`) or a SQLite label. The host decides with this
//! which capability opens it, and the guests decide with it which engine their storage speaks;
//! one function keeps the two from ever disagreeing.

#![no_std]

/// What a database address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseAddress<'a> {
    /// A Postgres URL, opened through `spin:postgres/postgres`.
    Postgres(&'a str),
    /// A SQLite label, opened through `spin:sqlite/sqlite`.
    Sqlite(&'a str),
}

/// The URL schemes that name a Postgres server.
pub const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

impl<'a> DatabaseAddress<'a> {
    /// Reads `address`: a Postgres URL by its scheme, anything else a SQLite label.
    pub fn parse(address: &'a str) -> Self {
        if is_postgres_url(address) {
            Self::Postgres(address)
        } else {
            Self::Sqlite(address)
        }
    }
}

/// Whether `address` is a Postgres URL (`postgres://` or `postgresql://`).
pub fn is_postgres_url(address: &str) -> bool {
    POSTGRES_SCHEMES
        .iter()
        .any(|scheme| address.starts_with(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_by_scheme_and_labels_otherwise() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://h:5433/db?sslmode=disable"));
        assert!(!is_postgres_url("products"));
        assert!(!is_postgres_url("Postgres://h/db"));
        assert!(!is_postgres_url("postgres:/h"));
        assert_eq!(
            DatabaseAddress::parse("default"),
            DatabaseAddress::Sqlite("default")
        );
        assert_eq!(
            DatabaseAddress::parse("postgres://h/db"),
            DatabaseAddress::Postgres("postgres://h/db")
        );
    }
}
