//! The `users` and `login_failures` tables (migrations/accounts/), the same SQL on SQLite and
//! Postgres. Usernames and emails are unique through their lower-cased `*_key` columns.

use shop_guest::auth::User;
use shop_guest::storage::{Db, Engine, Param, Row, Statement, StorageError};
use shop_guest::time::Timestamp;

use crate::domain::{
    lookup_key, ProfileChanges, UserAccount, MAX_ADDRESS_FAILURES, MAX_LOGIN_FAILURES,
};

const COLUMNS: &str =
    "id, username, email, first_name, last_name, phone_number, address, is_staff, date_joined";

fn user_account(row: &Row) -> Result<UserAccount, StorageError> {
    Ok(UserAccount {
        id: row.int("id")?,
        username: row.text("username")?,
        email: row.text("email")?,
        first_name: row.text("first_name")?,
        last_name: row.text("last_name")?,
        phone_number: row.text("phone_number")?,
        address: row.text("address")?,
        is_staff: row.bool("is_staff")?,
        date_joined: row.timestamp("date_joined")?,
    })
}

/// A user row to insert.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub profile: &'a ProfileChanges,
    pub is_staff: bool,
}

/// Which unique key a refused write collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Username,
    Email,
}

/// Reads which unique index refused a write from the database's message (both engines name
/// the column or the constraint, never the value, in the message the guest library keeps).
pub fn taken_by(error: &StorageError) -> Option<Taken> {
    let StorageError::UniqueViolation(message) = error else {
        return None;
    };
    if message.contains("email_key") {
        Some(Taken::Email)
    } else if message.contains("username_key") {
        Some(Taken::Username)
    } else {
        None
    }
}

/// Adds a user, joined `now`; a taken username or email is a `UniqueViolation` (the unique
/// indexes decide, so that two concurrent registrations cannot both win).
pub fn insert(db: &Db, new: &NewUser<'_>, now: Timestamp) -> Result<UserAccount, StorageError> {
    let profile = new.profile;
    let row = db.query_one(
        &format!(
            "INSERT INTO users (username, username_key, email, email_key, password_hash, \
             first_name, last_name, phone_number, address, is_staff, date_joined) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}"
        ),
        &[
            new.username.into(),
            lookup_key(new.username).into(),
            new.email.into(),
            lookup_key(new.email).into(),
            new.password_hash.into(),
            profile.first_name.as_deref().unwrap_or_default().into(),
            profile.last_name.as_deref().unwrap_or_default().into(),
            profile.phone_number.as_deref().unwrap_or_default().into(),
            profile.address.as_deref().unwrap_or_default().into(),
            Param::Bool(new.is_staff),
            now.into(),
        ],
    )?;
    let row = row.ok_or_else(|| StorageError::Query("INSERT returned no row".to_owned()))?;
    user_account(&row)
}

/// Makes the user staff with this email and password hash: a new user, or the existing one
/// of that username (its spelling kept). Answers the user's id.
pub fn upsert_staff(db: &Db, new: &NewUser<'_>, now: Timestamp) -> Result<i64, StorageError> {
    let row = db.query_one(
        "INSERT INTO users (username, username_key, email, email_key, password_hash, \
         first_name, last_name, phone_number, address, is_staff, date_joined) \
         VALUES ($1, $2, $3, $4, $5, '', '', '', '', $6, $7) \
         ON CONFLICT (username_key) DO UPDATE SET email = excluded.email, \
         email_key = excluded.email_key, password_hash = excluded.password_hash, \
         is_staff = excluded.is_staff \
         RETURNING id",
        &[
            new.username.into(),
            lookup_key(new.username).into(),
            new.email.into(),
            lookup_key(new.email).into(),
            new.password_hash.into(),
            Param::Bool(true),
            now.into(),
        ],
    )?;
    let row = row.ok_or_else(|| StorageError::Query("upsert returned no row".to_owned()))?;
    row.int("id")
}

/// One user by id.
pub fn find(db: &Db, id: i64) -> Result<Option<UserAccount>, StorageError> {
    db.query_one(
        &format!("SELECT {COLUMNS} FROM users WHERE id = $1"),
        &[Param::Int(id)],
    )?
    .as_ref()
    .map(user_account)
    .transpose()
}

/// The address on a user's profile; `None` if there is no such user.
pub fn address(db: &Db, id: i64) -> Result<Option<String>, StorageError> {
    db.query_one("SELECT address FROM users WHERE id = $1", &[Param::Int(id)])?
        .map(|row| row.text("address"))
        .transpose()
}

/// The user of a username key, their username as spelled at registration and their password
/// hash, for a login.
pub fn find_login(
    db: &Db,
    username_key: &str,
) -> Result<Option<(User, String, String)>, StorageError> {
    let Some(row) = db.query_one(
        "SELECT id, username, is_staff, password_hash FROM users WHERE username_key = $1",
        &[username_key.into()],
    )?
    else {
        return Ok(None);
    };
    let user = User {
        id: row.int("id")?,
        is_staff: row.bool("is_staff")?,
    };
    Ok(Some((
        user,
        row.text("username")?,
        row.text("password_hash")?,
    )))
}

/// Which of a username key and an email key belong to a user other than `except_id`.
pub fn taken(
    db: &Db,
    username_key: Option<&str>,
    email_key: Option<&str>,
    except_id: Option<i64>,
) -> Result<Vec<Taken>, StorageError> {
    let mut taken = Vec::new();
    let checks = [
        (Taken::Username, "username_key", username_key),
        (Taken::Email, "email_key", email_key),
    ];
    for (which, column, key) in checks {
        let Some(key) = key else { continue };
        let row = db.query_one(
            &format!("SELECT id FROM users WHERE {column} = $1"),
            &[key.into()],
        )?;
        if let Some(row) = row {
            if Some(row.int("id")?) != except_id {
                taken.push(which);
            }
        }
    }
    Ok(taken)
}

/// Sets the given profile fields of a user; `None` if there is no such user. A taken email
/// is a `UniqueViolation`.
pub fn update_profile(
    db: &Db,
    id: i64,
    changes: &ProfileChanges,
) -> Result<Option<UserAccount>, StorageError> {
    if changes.is_empty() {
        return find(db, id);
    }
    // Placeholders are numbered in order of appearance (SQLite numbers `$n` that way).
    let mut statement = Statement::new("UPDATE users SET ");
    let mut sets = Vec::new();
    if let Some(email) = &changes.email {
        let email_placeholder = statement.bind(email.as_str());
        let key_placeholder = statement.bind(email.key());
        sets.push(format!(
            "email = {email_placeholder}, email_key = {key_placeholder}"
        ));
    }
    let texts = [
        ("first_name", &changes.first_name),
        ("last_name", &changes.last_name),
        ("phone_number", &changes.phone_number),
        ("address", &changes.address),
    ];
    for (column, value) in texts {
        if let Some(value) = value {
            let placeholder = statement.bind(value.as_str());
            sets.push(format!("{column} = {placeholder}"));
        }
    }
    statement.push(&sets.join(", "));
    statement.push(" WHERE id = ").push_bind(id);
    statement.push(&format!(" RETURNING {COLUMNS}"));
    db.query_statement(&statement)?
        .first()
        .map(user_account)
        .transpose()
}

/// Counts a login attempt for `username_key` from `client_addr` as failed at `now` (until
/// [`clear_login_failures`] says it succeeded), unless it is throttled: after
/// [`MAX_LOGIN_FAILURES`] failures of that username from that address, or
/// [`MAX_ADDRESS_FAILURES`] failures of any username from that address, since `since`. Then
/// answers when the failure that keeps it throttled happened and records nothing. Failures
/// from `since` or before are forgotten along the way. Guesses from one address never
/// throttle the same username from another: nobody can lock the owner out.
///
/// The check and the record are one transaction, serialized per address (SQLite's write
/// lock; a Postgres advisory lock on the address), so that a burst of concurrent guesses
/// cannot all pass the check before any of them is counted.
pub fn claim_login_attempt(
    db: &Db,
    username_key: &str,
    client_addr: &str,
    now: Timestamp,
    since: Timestamp,
) -> Result<Option<Timestamp>, StorageError> {
    db.transaction(|db| {
        if db.engine() == Engine::Postgres {
            db.query(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0)) IS NULL AS locked",
                &[format!("login_failures:{client_addr}").into()],
            )?;
        }
        let pair = nth_recent_failure(
            db,
            &[("username_key", username_key), ("client_addr", client_addr)],
            since,
            MAX_LOGIN_FAILURES,
        )?;
        let address = nth_recent_failure(
            db,
            &[("client_addr", client_addr)],
            since,
            MAX_ADDRESS_FAILURES,
        )?;
        // Throttled by both: free when the later of the two lets go.
        let throttling = pair.max(address);
        if throttling.is_none() {
            db.execute(
                "INSERT INTO login_failures (username_key, client_addr, failed_at) \
                 VALUES ($1, $2, $3)",
                &[username_key.into(), client_addr.into(), now.into()],
            )?;
            // Failures from before the window no longer count, for any username.
            db.execute(
                "DELETE FROM login_failures WHERE failed_at <= $1",
                &[since.into()],
            )?;
        }
        Ok(throttling)
    })
}

/// The `n`-th most recent failure after `since` among those whose columns equal `filters`,
/// if there are that many: the one that keeps the scope throttled.
fn nth_recent_failure(
    db: &Db,
    filters: &[(&str, &str)],
    since: Timestamp,
    n: usize,
) -> Result<Option<Timestamp>, StorageError> {
    let mut statement = Statement::new("SELECT failed_at FROM login_failures WHERE failed_at > ");
    statement.push_bind(since);
    for (column, value) in filters {
        statement
            .push(&format!(" AND {column} = "))
            .push_bind(*value);
    }
    statement.push(" ORDER BY failed_at DESC LIMIT 1 OFFSET ");
    statement.push_bind(i64::try_from(n.saturating_sub(1)).unwrap_or(0));
    db.query_statement(&statement)?
        .first()
        .map(|row| row.timestamp("failed_at"))
        .transpose()
}

/// Forgets the failed logins of a username from one address (after a successful one there);
/// the failures from other addresses keep counting against them.
pub fn clear_login_failures(
    db: &Db,
    username_key: &str,
    client_addr: &str,
) -> Result<(), StorageError> {
    db.execute(
        "DELETE FROM login_failures WHERE username_key = $1 AND client_addr = $2",
        &[username_key.into(), client_addr.into()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_name_their_key() {
        let cases = [
            (
                "UNIQUE constraint failed: users.username_key",
                Some(Taken::Username),
            ),
            (
                "UNIQUE constraint failed: users.email_key",
                Some(Taken::Email),
            ),
            (
                "duplicate key value violates unique constraint \"users_username_key_unique\"",
                Some(Taken::Username),
            ),
            (
                "duplicate key value violates unique constraint \"users_email_key_unique\"",
                Some(Taken::Email),
            ),
            ("UNIQUE constraint failed: other.id", None),
        ];
        for (message, taken) in cases {
            let error = StorageError::UniqueViolation(message.to_owned());
            assert_eq!(taken_by(&error), taken, "{message}");
        }
        assert_eq!(taken_by(&StorageError::Query("x".to_owned())), None);
    }
}
