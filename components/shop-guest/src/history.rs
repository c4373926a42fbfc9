//! The history of the changes staff make through the API (API.md, "History"). Each service
//! keeps its own table of entries (same columns everywhere, see
//! migrations/products/*/..._create_product_history.sql), writes an entry in the transaction of
//! the change it records, and lists its table, newest first, at `GET /api/<service>/history/`.

use serde::Serialize;
use serde_json::{Map, Value};
use spin_sdk::http::Response;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::auth::{self, User};
use crate::error::ApiError;
use crate::paging::{Page, PageRequest, PageWindow};
use crate::query::ListParams;
use crate::request::{ApiRequest, Query};
use crate::response;
use crate::storage::{Db, Param, Row, Statement, StorageError};
use crate::time::Timestamp;

/// What a change did to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The object was made: every field `[null, value]`.
    Create,
    /// Some fields changed: only those, `[before, after]`.
    Update,
    /// The object was removed: every field `[value, null]`.
    Delete,
    /// An order moved along its status flow: `{"status": [before, after]}`.
    Status,
}

impl Action {
    /// The name the API and the database use.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Status => "status",
        }
    }

    /// The action of a stored name, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Action::Create,
            Action::Update,
            Action::Delete,
            Action::Status,
        ]
        .into_iter()
        .find(|action| action.as_str() == name)
    }
}

/// The fields a change touched, each as `[before, after]` in the API's own form (money as its
/// decimal string, `null` for "did not exist"), in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Changes(Map<String, Value>);

impl Changes {
    /// No field yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `field` as `[before, after]`.
    pub fn set(&mut self, field: &str, before: impl Serialize, after: impl Serialize) {
        let pair = Value::Array(vec![json_of(before), json_of(after)]);
        self.0.insert(field.to_owned(), pair);
    }

    /// Adds `field` only if `before` and `after` differ (what an update records).
    pub fn set_if_changed<T: Serialize + PartialEq>(&mut self, field: &str, before: T, after: T) {
        if before != after {
            self.set(field, before, after);
        }
    }

    /// Whether no field is recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON text stored in the `changes` column.
    fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    /// The changes of a stored `changes` column.
    fn from_json(text: &str) -> Result<Self, StorageError> {
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(StorageError::Decode {
                column: "changes".to_owned(),
                reason: "not a JSON object".to_owned(),
            }),
        }
    }
}

/// A value as JSON; the API's own types always serialize.
fn json_of(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl PartialSchema for Changes {
    fn schema() -> RefOr<Schema> {
        let pair = ArrayBuilder::new()
            // Any JSON value: a field's before or after, `null` included.
            .items(
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .build(),
            )
            .min_items(Some(2))
            .max_items(Some(2))
            .description(Some(
                "`[before, after]`; `null` where the object did not exist.",
            ));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(pair))
            .description(Some(
                "Each field the change touched, as `[before, after]` in the API's own form \
                 (money as a decimal string).",
            ))
            .examples([serde_json::json!({"price": ["12.50", "10.00"], "stock": [40, 12]})])
            .into()
    }
}

impl ToSchema for Changes {}

/// One recorded change, as `GET /api/<service>/history/` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 31, "object_id": 7, "action": "update",
    "changes": {"price": ["12.50", "10.00"], "stock": [40, 12]},
    "staff_id": 1, "staff_username": "admin", "at": "2026-11-25T13:00:00.000000Z"
}))]
pub struct HistoryEntry {
    /// The entry's own id (entries of one service only ever grow).
    #[schema(minimum = 1)]
    pub id: i64,
    /// The id of the object changed (a product, an order, a user).
    #[schema(minimum = 1)]
    pub object_id: i64,
    /// What the change did.
    pub action: Action,
    /// The fields it touched, `[before, after]`.
    pub changes: Changes,
    /// The staff user who made the change.
    pub staff_id: i64,
    /// Their username when they made it (empty if their token did not say).
    pub staff_username: String,
    /// When the change was made.
    pub at: Timestamp,
}

/// Who makes a change: a staff user, as their access token names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The staff user's id.
    pub id: i64,
    /// Their username (the token's `username` claim; empty for a token without one).
    pub username: String,
}

impl Actor {
    /// The caller `staff` (already checked) of `request`, named as their token names them.
    pub fn of(request: &ApiRequest, staff: User) -> Self {
        Self {
            id: staff.id,
            username: auth::username(request).unwrap_or_default(),
        }
    }
}

/// A service's history table, named by the service (`product_history`, `order_history`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryTable(pub &'static str);

const COLUMNS: &str = "id, object_id, action, changes, staff_id, staff_username, at";

fn entry(row: &Row) -> Result<HistoryEntry, StorageError> {
    let action = row.text("action")?;
    Ok(HistoryEntry {
        id: row.int("id")?,
        object_id: row.int("object_id")?,
        action: Action::parse(&action).ok_or_else(|| StorageError::Decode {
            column: "action".to_owned(),
            reason: format!("unknown action {action:?}"),
        })?,
        changes: Changes::from_json(&row.text("changes")?)?,
        staff_id: row.int("staff_id")?,
        staff_username: row.text("staff_username")?,
        at: row.timestamp("at")?,
    })
}

impl HistoryTable {
    /// Records that `actor` did `action` to object `object_id` at `now`. Call it inside the
    /// transaction of the change, so that the entry and the change commit or roll back together.
    pub fn record(
        self,
        db: &Db,
        object_id: i64,
        action: Action,
        changes: &Changes,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        db.execute(
            &format!(
                "INSERT INTO {} (object_id, action, changes, staff_id, staff_username, at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                self.0
            ),
            &[
                Param::Int(object_id),
                action.as_str().into(),
                changes.to_json().into(),
                Param::Int(actor.id),
                actor.username.as_str().into(),
                now.into(),
            ],
        )?;
        Ok(())
    }

    fn select(self, what: &str, object_id: Option<i64>) -> Statement {
        let mut statement = Statement::new(&format!("SELECT {what} FROM {}", self.0));
        if let Some(object_id) = object_id {
            statement.push(" WHERE object_id = ").push_bind(object_id);
        }
        statement
    }

    /// How many entries there are (of one object, if given).
    pub fn count(self, db: &Db, object_id: Option<i64>) -> Result<u64, StorageError> {
        let statement = self.select("COUNT(*) AS total", object_id);
        let total = match db.query_statement(&statement)?.first() {
            Some(row) => row.int("total")?,
            None => 0,
        };
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// One page of entries (of one object, if given), newest first.
    pub fn list(
        self,
        db: &Db,
        object_id: Option<i64>,
        window: PageWindow,
    ) -> Result<Vec<HistoryEntry>, StorageError> {
        let mut statement = self.select(COLUMNS, object_id);
        // Ids grow with every entry: the newest has the largest.
        statement
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(window.limit());
        statement.push(" OFFSET ").push_bind(window.offset());
        db.query_statement(&statement)?.iter().map(entry).collect()
    }
}

/// The most characters of `?object_id=`: any id fits.
const OBJECT_ID_MAX_CHARS: usize = 20;

/// `?object_id=`: digits (an id no object can have, 0 or past 64 bits, matches nothing), or
/// blank for every object; anything else is a 400, so that the schema's `^[0-9]*$` is exactly
/// what is accepted.
pub fn object_id_filter(query: &Query) -> Result<Option<i64>, ApiError> {
    let mut params = ListParams::new(query);
    let object_id = params.read("object_id", OBJECT_ID_MAX_CHARS, |text| {
        if text.is_empty() {
            return Ok(None);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err("Enter a whole number.".to_owned());
        }
        // No object has id 0: one past 64 bits finds the same nothing.
        Ok(Some(text.parse::<i64>().unwrap_or(0)))
    });
    params.finish()?;
    Ok(object_id)
}

/// `GET /api/<service>/history/` (staff only: 401, 403): a page of `table`'s entries, newest
/// first, filtered by `?object_id=`; the caller's token confirmed with accounts (`sessions`).
pub fn list_page(
    request: &ApiRequest,
    sessions: &dyn auth::Sessions,
    service: &str,
    table: HistoryTable,
) -> Result<Response, ApiError> {
    auth::require_staff(request, sessions)?;
    let query = request.query();
    let object_id = object_id_filter(&query)?;
    let pages = PageRequest::from_query(&query)?;
    let db = Db::open(service)?;
    let count = table.count(&db, object_id)?;
    let window = pages.window_for(count)?;
    let entries = table.list(&db, object_id, window)?;
    response::ok(&Page::new(request, window, count, entries)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_keep_pairs_in_the_apis_form() {
        let mut changes = Changes::new();
        changes.set("name", None::<String>, "Lamp");
        changes.set_if_changed("price", "1.00", "1.00");
        changes.set_if_changed("stock", 3, 4);
        assert_eq!(
            serde_json::to_value(&changes).unwrap(),
            json!({"name": [null, "Lamp"], "stock": [3, 4]})
        );
        assert_eq!(Changes::from_json(&changes.to_json()).unwrap(), changes);
        assert!(Changes::from_json("[1]").is_err());
        assert!(Changes::new().is_empty());
    }

    #[test]
    fn the_changes_schema_takes_any_value_in_a_pair() {
        let schema = serde_json::to_value(Changes::schema()).unwrap();
        let pair = &schema["additionalProperties"];
        assert_eq!(
            (pair["minItems"].as_u64(), pair["maxItems"].as_u64()),
            (Some(2), Some(2))
        );
        assert!(pair["items"].get("type").is_none(), "{schema}");
    }

    #[test]
    fn actions_round_trip_their_names() {
        for action in [
            Action::Create,
            Action::Update,
            Action::Delete,
            Action::Status,
        ] {
            assert_eq!(Action::parse(action.as_str()), Some(action));
            assert_eq!(json_of(action), json!(action.as_str()));
        }
        assert_eq!(Action::parse("Create"), None);
    }

    #[test]
    fn the_object_filter_takes_digits_only() {
        let filter = |query: &str| object_id_filter(&Query::parse(query));
        assert_eq!(filter("").unwrap(), None);
        assert_eq!(filter("object_id=").unwrap(), None);
        assert_eq!(filter("object_id=42").unwrap(), Some(42));
        assert_eq!(filter("object_id=007").unwrap(), Some(7));
        assert_eq!(filter("object_id=0").unwrap(), Some(0));
        assert_eq!(filter("object_id=99999999999999999999").unwrap(), Some(0));
        for bad in ["-1", "+1", "x", "1.5", "%207", &"1".repeat(21)] {
            let error = filter(&format!("object_id={bad}")).unwrap_err();
            assert_eq!(error.status(), 400, "{bad}");
            let body: Value = serde_json::from_slice(&error.body()).unwrap();
            assert!(body["object_id"].is_array(), "{bad}: {body}");
        }
    }
}
