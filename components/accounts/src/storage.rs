//! The `users`, `refresh_tokens`, `user_history`, `login_failures` and `login_throttle`
//! tables (migrations/accounts/), the same SQL on SQLite and Postgres but where a comment says
//! otherwise. Usernames and emails are unique through their lower-cased `*_key` columns.

use std::collections::BTreeMap;

use shop_guest::auth::{Session, User};
use shop_guest::paging::PageWindow;
use shop_guest::storage::{contains_pattern, Db, Engine, Param, Row, Statement, StorageError};
use shop_guest::time::Timestamp;

use crate::domain::{
    lookup_key, FlagChange, ProfileChanges, UserAccount, UserFilter, UserFlags, UserHistoryEntry,
    MAX_ADDRESS_FAILURES, MAX_LOGIN_FAILURES,
};

const COLUMNS: &str = "id, username, email, first_name, last_name, phone_number, address, \
                       is_staff, is_active, date_joined";

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
        is_active: row.bool("is_active")?,
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
/// of that username (its spelling kept), active again, its token version bumped so that the
/// tokens issued under the old password stop working. Answers the user's id.
pub fn upsert_staff(db: &Db, new: &NewUser<'_>, now: Timestamp) -> Result<i64, StorageError> {
    let row = db.query_one(
        "INSERT INTO users (username, username_key, email, email_key, password_hash, \
         first_name, last_name, phone_number, address, is_staff, date_joined) \
         VALUES ($1, $2, $3, $4, $5, '', '', '', '', $6, $7) \
         ON CONFLICT (username_key) DO UPDATE SET email = excluded.email, \
         email_key = excluded.email_key, password_hash = excluded.password_hash, \
         is_staff = excluded.is_staff, is_active = $8, \
         token_version = users.token_version + 1 \
         RETURNING id",
        &[
            new.username.into(),
            lookup_key(new.username).into(),
            new.email.into(),
            lookup_key(new.email).into(),
            new.password_hash.into(),
            Param::Bool(true),
            now.into(),
            Param::Bool(true),
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

/// What a login needs to know of a user.
#[derive(Debug, Clone)]
pub struct LoginAccount {
    pub user: User,
    /// As spelled at registration: tokens name their user with it.
    pub username: String,
    pub token_version: i64,
    pub is_active: bool,
    pub password_hash: String,
}

/// The user of a username key and their password hash, for a login.
pub fn find_login(db: &Db, username_key: &str) -> Result<Option<LoginAccount>, StorageError> {
    let Some(row) = db.query_one(
        "SELECT id, username, is_staff, is_active, token_version, password_hash FROM users \
         WHERE username_key = $1",
        &[username_key.into()],
    )?
    else {
        return Ok(None);
    };
    Ok(Some(LoginAccount {
        user: User {
            id: row.int("id")?,
            is_staff: row.bool("is_staff")?,
        },
        username: row.text("username")?,
        token_version: row.int("token_version")?,
        is_active: row.bool("is_active")?,
        password_hash: row.text("password_hash")?,
    }))
}

/// A user's session state (`shop:accounts/sessions`): one read by primary key.
pub fn session(db: &Db, id: i64) -> Result<Option<Session>, StorageError> {
    db.query_one(
        "SELECT token_version, is_staff, is_active, username FROM users WHERE id = $1",
        &[Param::Int(id)],
    )?
    .map(|row| {
        Ok(Session {
            token_version: row.int("token_version")?,
            is_staff: row.bool("is_staff")?,
            is_active: row.bool("is_active")?,
            username: row.text("username")?,
        })
    })
    .transpose()
}

/// A refresh token to keep.
#[derive(Debug, Clone)]
pub struct NewRefreshToken<'a> {
    pub jti: &'a str,
    pub user_id: i64,
    /// The login it descends from.
    pub family: &'a str,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Keeps a refresh token just issued; a user's tokens that have expired are forgotten with it.
pub fn insert_refresh_token(db: &Db, token: &NewRefreshToken<'_>) -> Result<(), StorageError> {
    db.execute(
        "DELETE FROM refresh_tokens WHERE user_id = $1 AND expires_at <= $2",
        &[Param::Int(token.user_id), token.issued_at.into()],
    )?;
    db.execute(
        "INSERT INTO refresh_tokens (jti, user_id, family, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            token.jti.into(),
            Param::Int(token.user_id),
            token.family.into(),
            token.issued_at.into(),
            token.expires_at.into(),
        ],
    )?;
    Ok(())
}

/// What spending a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// It was live and is spent now: the next one joins `family`.
    Spent { user_id: i64, family: String },
    /// It had been spent before: a copy is being replayed; its family is revoked now.
    Reused,
    /// Unknown, revoked or expired.
    Refused,
}

/// Spends the refresh token `jti` at `now`, once: a conditional update, so that of two
/// concurrent refreshes with one token exactly one spends it (the other is a reuse). A token
/// spent before revokes every token of its family. Run it in a transaction with what follows.
pub fn spend_refresh_token(db: &Db, jti: &str, now: Timestamp) -> Result<Spend, StorageError> {
    let spent = db.query_one(
        "UPDATE refresh_tokens SET spent_at = $1 \
         WHERE jti = $2 AND spent_at IS NULL AND NOT revoked AND expires_at > $1 \
         RETURNING user_id, family",
        &[now.into(), jti.into()],
    )?;
    if let Some(row) = spent {
        return Ok(Spend::Spent {
            user_id: row.int("user_id")?,
            family: row.text("family")?,
        });
    }
    let Some(row) = db.query_one(
        "SELECT family, spent_at FROM refresh_tokens WHERE jti = $1",
        &[jti.into()],
    )?
    else {
        return Ok(Spend::Refused);
    };
    if row.opt_timestamp("spent_at")?.is_none() {
        return Ok(Spend::Refused);
    }
    db.execute(
        "UPDATE refresh_tokens SET revoked = $1 WHERE family = $2 AND NOT revoked",
        &[Param::Bool(true), row.text("family")?.into()],
    )?;
    Ok(Spend::Reused)
}

/// Revokes every refresh token of a user (logout); answers how many were live.
pub fn revoke_refresh_tokens(db: &Db, user_id: i64) -> Result<u64, StorageError> {
    db.execute(
        "UPDATE refresh_tokens SET revoked = $1 WHERE user_id = $2 AND NOT revoked",
        &[Param::Bool(true), Param::Int(user_id)],
    )
}

/// The `WHERE` of the users list: every search term in a name or the email, and the flags.
fn push_user_filter(statement: &mut Statement, filter: &UserFilter, engine: Engine) {
    statement.push(" WHERE 1 = 1");
    let like = engine.ilike();
    for term in &filter.search_terms {
        let pattern = statement.bind(contains_pattern(term));
        statement.push(&format!(
            " AND (username {like} {pattern} ESCAPE '\\' OR email {like} {pattern} ESCAPE '\\' \
             OR first_name {like} {pattern} ESCAPE '\\' OR last_name {like} {pattern} ESCAPE '\\')"
        ));
    }
    if let Some(is_staff) = filter.is_staff {
        statement
            .push(" AND is_staff = ")
            .push_bind(Param::Bool(is_staff));
    }
    if let Some(is_active) = filter.is_active {
        statement
            .push(" AND is_active = ")
            .push_bind(Param::Bool(is_active));
    }
}

/// How many users match the filter.
pub fn count_users(db: &Db, filter: &UserFilter) -> Result<u64, StorageError> {
    let mut statement = Statement::new("SELECT COUNT(*) AS n FROM users");
    push_user_filter(&mut statement, filter, db.engine());
    let n = db
        .query_statement(&statement)?
        .first()
        .map(|row| row.int("n"))
        .transpose()?
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// One page of the users matching the filter, by id.
pub fn list_users(
    db: &Db,
    filter: &UserFilter,
    window: PageWindow,
) -> Result<Vec<UserAccount>, StorageError> {
    let mut statement = Statement::new(&format!("SELECT {COLUMNS} FROM users"));
    push_user_filter(&mut statement, filter, db.engine());
    statement
        .push(" ORDER BY id LIMIT ")
        .push_bind(window.limit());
    statement.push(" OFFSET ").push_bind(window.offset());
    db.query_statement(&statement)?
        .iter()
        .map(user_account)
        .collect()
}

/// The staff member who makes a change, for the history.
#[derive(Debug, Clone, Copy)]
pub struct StaffMember<'a> {
    pub id: i64,
    pub username: &'a str,
}

/// Sets a user's flags as staff asked, in one transaction with its history entry: the row is
/// locked first (Postgres; SQLite's write lock is taken at `BEGIN`), so that concurrent changes
/// each record the values they really changed. Losing staff or being deactivated bumps the
/// user's token version. Nothing that does not change is written. `None`: no such user.
pub fn change_flags(
    db: &Db,
    id: i64,
    flags: UserFlags,
    staff: StaffMember<'_>,
    now: Timestamp,
) -> Result<Option<UserAccount>, StorageError> {
    db.transaction(|db| {
        let lock = match db.engine() {
            Engine::Postgres => " FOR UPDATE",
            Engine::Sqlite => "",
        };
        let Some(row) = db.query_one(
            &format!("SELECT is_staff, is_active FROM users WHERE id = $1{lock}"),
            &[Param::Int(id)],
        )?
        else {
            return Ok(None);
        };
        let change = FlagChange::new((row.bool("is_staff")?, row.bool("is_active")?), flags);
        let changes = change.changes();
        if changes.is_empty() {
            return find(db, id);
        }
        let bump = i64::from(change.revokes_tokens());
        let updated = db.query_one(
            &format!(
                "UPDATE users SET is_staff = $1, is_active = $2, \
                 token_version = token_version + $3 WHERE id = $4 RETURNING {COLUMNS}"
            ),
            &[
                Param::Bool(change.after.0),
                Param::Bool(change.after.1),
                Param::Int(bump),
                Param::Int(id),
            ],
        )?;
        let changes = serde_json::to_string(&changes)
            .map_err(|e| StorageError::Query(format!("history changes: {e}")))?;
        db.execute(
            "INSERT INTO user_history (object_id, action, changes, staff_id, staff_username, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                Param::Int(id),
                "update".into(),
                changes.into(),
                Param::Int(staff.id),
                staff.username.into(),
                now.into(),
            ],
        )?;
        updated.as_ref().map(user_account).transpose()
    })
}

/// `WHERE` of the history list.
fn push_history_filter(statement: &mut Statement, object_id: Option<i64>) {
    if let Some(object_id) = object_id {
        statement.push(" WHERE object_id = ").push_bind(object_id);
    }
}

/// How many history entries there are (of one user, if `object_id`).
pub fn count_history(db: &Db, object_id: Option<i64>) -> Result<u64, StorageError> {
    let mut statement = Statement::new("SELECT COUNT(*) AS n FROM user_history");
    push_history_filter(&mut statement, object_id);
    let n = db
        .query_statement(&statement)?
        .first()
        .map(|row| row.int("n"))
        .transpose()?
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// One page of history entries, newest first.
pub fn list_history(
    db: &Db,
    object_id: Option<i64>,
    window: PageWindow,
) -> Result<Vec<UserHistoryEntry>, StorageError> {
    let mut statement = Statement::new(
        "SELECT id, object_id, action, changes, staff_id, staff_username, at FROM user_history",
    );
    push_history_filter(&mut statement, object_id);
    statement
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(window.limit());
    statement.push(" OFFSET ").push_bind(window.offset());
    db.query_statement(&statement)?
        .iter()
        .map(|row| {
            let changes: BTreeMap<String, [bool; 2]> = serde_json::from_str(&row.text("changes")?)
                .map_err(|e| StorageError::Query(format!("history changes: {e}")))?;
            Ok(UserHistoryEntry {
                id: row.int("id")?,
                object_id: row.int("object_id")?,
                action: row.text("action")?,
                changes,
                staff_id: row.int("staff_id")?,
                staff_username: row.text("staff_username")?,
                at: row.timestamp("at")?,
            })
        })
        .collect()
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
/// The check and the record are one transaction, serialized per address: its first statement
/// upserts the address's row of `login_throttle`, which holds that row's lock (Postgres) or
/// the database's write lock (SQLite) until the end, so that a burst of concurrent guesses
/// cannot all pass the check before any of them is counted. The lock is a row of accounts' own
/// table: no role needs the server-wide advisory locks, which any role could take and hold.
pub fn claim_login_attempt(
    db: &Db,
    username_key: &str,
    client_addr: &str,
    now: Timestamp,
    since: Timestamp,
) -> Result<Option<Timestamp>, StorageError> {
    db.transaction(|db| {
        db.execute(
            "INSERT INTO login_throttle (scope, touched_at) VALUES ($1, $2) \
             ON CONFLICT (scope) DO UPDATE SET touched_at = excluded.touched_at",
            &[client_addr.into(), now.into()],
        )?;
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
            // Failures from before the window no longer count, for any username, nor
            // addresses that have had none since.
            forget_before(db, "login_failures", "id", "failed_at", since)?;
            forget_before(db, "login_throttle", "scope", "touched_at", since)?;
        }
        Ok(throttling)
    })
}

/// Deletes the rows of `table` whose `column` is at or before `since`. On Postgres only those
/// no other transaction holds (`SKIP LOCKED`): two logins from different addresses each
/// holding their own throttle row, each pruning the other's, would otherwise wait on each
/// other (a deadlock); a row skipped now is pruned by a later login.
fn forget_before(
    db: &Db,
    table: &str,
    key: &str,
    column: &str,
    since: Timestamp,
) -> Result<(), StorageError> {
    let sql = match db.engine() {
        Engine::Sqlite => format!("DELETE FROM {table} WHERE {column} <= $1"),
        Engine::Postgres => format!(
            "DELETE FROM {table} WHERE {key} IN \
             (SELECT {key} FROM {table} WHERE {column} <= $1 FOR UPDATE SKIP LOCKED)"
        ),
    };
    db.execute(&sql, &[since.into()])?;
    Ok(())
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
