//! JSON request bodies: the 415/400 answers for bodies that are not a JSON object, and
//! typed field readers that collect DRF-shaped messages across all fields.

use std::collections::HashMap;

use serde_json::value::RawValue;

use crate::error::{ApiError, FieldErrors, NON_FIELD_ERRORS};
use crate::request::ApiRequest;

/// DRF's message for a missing required field.
pub const REQUIRED: &str = "This field is required.";
/// DRF's message for `null` in a field that does not accept it.
pub const NOT_NULL: &str = "This field may not be null.";

/// The deepest nesting of arrays and objects a body may have. The API's bodies are flat;
/// Python's `json`, which DRF parses with, refuses deep nesting with a 400 too, and so does this
/// reader instead of walking a 100,000-level document.
pub const MAX_DEPTH: usize = 128;

/// The fields of a JSON object body, each kept as its exact JSON text.
#[derive(Debug, Default)]
pub struct JsonObject<'a> {
    fields: HashMap<String, &'a RawValue>,
}

/// Parses the body as a JSON object.
///
/// An empty body is an empty object (as DRF treats it). Otherwise the media type must be
/// `application/json` (parameters such as `charset` allowed), else 415; malformed JSON or
/// invalid UTF-8 is a 400 `{"detail": "JSON parse error - ..."}`; JSON that is not an object
/// is a 400 `{"non_field_errors": ["Invalid data. Expected a dictionary, but got <type>."]}`.
pub fn object(request: &ApiRequest) -> Result<JsonObject<'_>, ApiError> {
    let body = request.body();
    if body.is_empty() {
        return Ok(JsonObject::default());
    }
    let content_type = request.header("content-type").unwrap_or("");
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type != "application/json" {
        return Err(ApiError::UnsupportedMediaType(
            content_type.trim().to_owned(),
        ));
    }
    parse_object(body)
}

/// Parses bytes as a JSON object (see [`object`] for the errors).
pub fn parse_object(body: &[u8]) -> Result<JsonObject<'_>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let position = e.valid_up_to();
        let byte = body.get(position).copied().unwrap_or_default();
        ApiError::BadRequest(format!(
            "JSON parse error - 'utf-8' codec can't decode byte 0x{byte:02x} in position {position}: invalid utf-8"
        ))
    })?;
    if nested_deeper_than(text, MAX_DEPTH) {
        return Err(ApiError::BadRequest(format!(
            "JSON parse error - nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let parse_error =
        |e: serde_json::Error| ApiError::BadRequest(format!("JSON parse error - {e}"));
    let value: &RawValue = serde_json::from_str(text).map_err(parse_error)?;
    match kind(value) {
        JsonKind::Object => {
            let fields: HashMap<String, &RawValue> =
                serde_json::from_str(value.get()).map_err(parse_error)?;
            Ok(JsonObject { fields })
        }
        other => Err(ApiError::field(
            NON_FIELD_ERRORS,
            format!(
                "Invalid data. Expected a dictionary, but got {}.",
                other.python_name(value)
            ),
        )),
    }
}

/// Whether arrays and objects nest deeper than `limit` in `text` (brackets inside strings do
/// not count); one pass, no recursion, valid JSON or not.
fn nested_deeper_than(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

impl<'a> JsonObject<'a> {
    /// The value of a field, if present.
    pub fn get(&self, name: &str) -> Option<FieldValue<'a>> {
        self.fields.get(name).map(|raw| FieldValue { raw })
    }

    /// Whether the object has this field (even `null`).
    pub fn contains(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }
}

/// The JSON types, as a reader needs to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `null`
    Null,
    /// `true` or `false`
    Bool,
    /// A number, kept as written.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonKind {
    /// The Python type name DRF's messages use for a value of this kind.
    fn python_name(self, raw: &RawValue) -> &'static str {
        match self {
            JsonKind::Null => "NoneType",
            JsonKind::Bool => "bool",
            JsonKind::Number if raw.get().contains(['.', 'e', 'E']) => "float",
            JsonKind::Number => "int",
            JsonKind::String => "str",
            JsonKind::Array => "list",
            JsonKind::Object => "dict",
        }
    }
}

fn kind(raw: &RawValue) -> JsonKind {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'n') => JsonKind::Null,
        Some(b't' | b'f') => JsonKind::Bool,
        Some(b'"') => JsonKind::String,
        Some(b'[') => JsonKind::Array,
        Some(b'{') => JsonKind::Object,
        _ => JsonKind::Number,
    }
}

/// One field's value, with readers that apply DRF's field rules and messages.
#[derive(Debug, Clone, Copy)]
pub struct FieldValue<'a> {
    raw: &'a RawValue,
}

/// How a text field is validated (DRF's `CharField` options).
#[derive(Debug, Clone, Copy)]
pub struct TextRules {
    /// At most this many characters (after trimming).
    pub max_chars: Option<usize>,
    /// At least this many characters (after trimming).
    pub min_chars: usize,
    /// Whether `""` (or only whitespace) is accepted.
    pub allow_blank: bool,
    /// Whether leading and trailing whitespace is removed.
    pub trim: bool,
}

impl TextRules {
    /// DRF's defaults: trimmed, not blank, at most `max_chars` characters.
    pub const fn required(max_chars: usize) -> Self {
        Self {
            max_chars: Some(max_chars),
            min_chars: 0,
            allow_blank: false,
            trim: true,
        }
    }

    /// Trimmed, may be blank, no length limit (a model `TextField(blank=True)`).
    pub const fn blank_allowed() -> Self {
        Self {
            max_chars: None,
            min_chars: 0,
            allow_blank: true,
            trim: true,
        }
    }
}

impl<'a> FieldValue<'a> {
    /// Wraps a JSON value kept as its raw text (e.g. an element of a nested document).
    pub fn from_raw(raw: &'a RawValue) -> Self {
        Self { raw }
    }

    /// The JSON type of the value.
    pub fn kind(&self) -> JsonKind {
        kind(self.raw)
    }

    /// The exact JSON text of the value.
    pub fn raw(&self) -> &'a str {
        self.raw.get()
    }

    /// The value of a JSON string.
    pub fn as_str(&self) -> Option<String> {
        match self.kind() {
            JsonKind::String => serde_json::from_str(self.raw.get()).ok(),
            _ => None,
        }
    }

    /// The text of a number as written, or a string's content, as DRF's numeric fields read
    /// input (`str(data)`); booleans give `True`/`False`, which no number parser accepts.
    pub fn number_text(&self) -> Option<String> {
        match self.kind() {
            JsonKind::Number => Some(self.raw.get().trim().to_owned()),
            JsonKind::String => self.as_str(),
            JsonKind::Bool if self.raw.get().starts_with('t') => Some("True".to_owned()),
            JsonKind::Bool => Some("False".to_owned()),
            _ => None,
        }
    }

    /// A text field, as DRF's `CharField` validates it.
    pub fn text(&self, rules: TextRules) -> Result<String, Vec<String>> {
        let text = match self.kind() {
            JsonKind::String => self
                .as_str()
                .ok_or_else(|| vec!["Not a valid string.".to_owned()])?,
            // A number is not text: the schema says `string` (DRF would take its digits).
            _ => return Err(vec!["Not a valid string.".to_owned()]),
        };
        let text = if rules.trim {
            text.trim().to_owned()
        } else {
            text
        };
        if text.is_empty() {
            return if rules.allow_blank {
                Ok(text)
            } else {
                Err(vec!["This field may not be blank.".to_owned()])
            };
        }
        let mut messages = Vec::new();
        let chars = text.chars().count();
        if let Some(max) = rules.max_chars.filter(|max| chars > *max) {
            messages.push(format!(
                "Ensure this field has no more than {max} characters."
            ));
        }
        if chars < rules.min_chars {
            messages.push(format!(
                "Ensure this field has at least {} characters.",
                rules.min_chars
            ));
        }
        if text.contains('\0') {
            messages.push("Null characters are not allowed.".to_owned());
        }
        if messages.is_empty() {
            Ok(text)
        } else {
            Err(messages)
        }
    }

    /// An integer within `min..=max`, with DRF's messages. Only a JSON number is one (`7` or
    /// `7.0`; not `7.5`, `"7"` or `true`): what the OpenAPI document promises as `integer`.
    pub fn integer(&self, min: i64, max: i64) -> Result<i64, Vec<String>> {
        const INVALID: &str = "A valid integer is required.";
        if self.kind() != JsonKind::Number {
            return Err(vec![INVALID.to_owned()]);
        }
        let text = self.number_text().ok_or_else(|| vec![INVALID.to_owned()])?;
        if text.chars().count() > 1000 {
            return Err(vec!["String value too large.".to_owned()]);
        }
        let value = parse_integer(&text).ok_or_else(|| vec![INVALID.to_owned()])?;
        if value > i128::from(max) {
            return Err(vec![format!(
                "Ensure this value is less than or equal to {max}."
            )]);
        }
        if value < i128::from(min) {
            return Err(vec![format!(
                "Ensure this value is greater than or equal to {min}."
            )]);
        }
        i64::try_from(value).map_err(|_| vec![INVALID.to_owned()])
    }

    /// A boolean, as DRF's `BooleanField` reads it (`true`, `"yes"`, `1`, `"off"`, ...).
    pub fn boolean(&self) -> Result<bool, Vec<String>> {
        let text = match self.kind() {
            JsonKind::Bool | JsonKind::Number => self.raw.get().trim().to_owned(),
            JsonKind::String => self.as_str().unwrap_or_default(),
            _ => String::new(),
        };
        match text.as_str() {
            "true" | "t" | "T" | "y" | "Y" | "yes" | "Yes" | "YES" | "True" | "TRUE" | "on"
            | "On" | "ON" | "1" | "1.0" => Ok(true),
            "false" | "f" | "F" | "n" | "N" | "no" | "No" | "NO" | "False" | "FALSE" | "off"
            | "Off" | "OFF" | "0" | "0.0" => Ok(false),
            _ => Err(vec!["Must be a valid boolean.".to_owned()]),
        }
    }
}

/// Python's `int(re.sub(r'\.0*\s*$', '', text))`, saturating far beyond `i64`.
fn parse_integer(text: &str) -> Option<i128> {
    let trimmed = text.trim_end();
    let without_zero_fraction = match trimmed.rfind('.') {
        Some(dot) if trimmed[dot + 1..].bytes().all(|b| b == b'0') => &trimmed[..dot],
        _ => trimmed,
    };
    let text = without_zero_fraction.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i128, |acc, b| {
        acc.saturating_mul(10).saturating_add(i128::from(b - b'0'))
    });
    Some(if negative { -magnitude } else { magnitude })
}

/// Whether a field must be present (create, full replace) or may be left out (partial update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Absent is "This field is required."
    Required,
    /// Absent is fine: the reader answers `None`.
    Optional,
}

impl Presence {
    /// `Optional` for a partial update (PATCH), `Required` otherwise.
    pub fn for_update(partial: bool) -> Self {
        if partial {
            Presence::Optional
        } else {
            Presence::Required
        }
    }
}

/// Reads the fields of a body one by one, collecting every field's messages so that the
/// client learns about all of its mistakes at once.
#[derive(Debug)]
pub struct Fields<'a> {
    object: JsonObject<'a>,
    errors: FieldErrors,
}

impl<'a> Fields<'a> {
    /// Starts reading `object`.
    pub fn new(object: JsonObject<'a>) -> Self {
        Self {
            object,
            errors: FieldErrors::new(),
        }
    }

    /// Reads the request's JSON object body (see [`object`] for the 400/415 answers).
    pub fn from_request(request: &'a ApiRequest) -> Result<Self, ApiError> {
        object(request).map(Self::new)
    }

    /// Reads one field with `read`; a missing field is `None`, plus "This field is required."
    /// when `presence` is `Required`; `null` is "This field may not be null.".
    pub fn read<T>(
        &mut self,
        name: &str,
        presence: Presence,
        read: impl FnOnce(&FieldValue<'a>) -> Result<T, Vec<String>>,
    ) -> Option<T> {
        let Some(value) = self.object.get(name) else {
            if presence == Presence::Required {
                self.errors.add(name, REQUIRED);
            }
            return None;
        };
        if value.kind() == JsonKind::Null {
            self.errors.add(name, NOT_NULL);
            return None;
        }
        match read(&value) {
            Ok(value) => Some(value),
            Err(messages) => {
                self.errors.extend(name, messages);
                None
            }
        }
    }

    /// [`Fields::read`] with `Presence::Required`.
    pub fn required<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&FieldValue<'a>) -> Result<T, Vec<String>>,
    ) -> Option<T> {
        self.read(name, Presence::Required, read)
    }

    /// [`Fields::read`] with `Presence::Optional`.
    pub fn optional<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&FieldValue<'a>) -> Result<T, Vec<String>>,
    ) -> Option<T> {
        self.read(name, Presence::Optional, read)
    }

    /// Adds a message that is not about the shape of one field (e.g. a cross-field rule).
    pub fn reject(&mut self, name: &str, message: impl Into<String>) {
        self.errors.add(name, message);
    }

    /// `Ok(())` if every field read cleanly, otherwise the 400 listing every message.
    pub fn finish(self) -> Result<(), ApiError> {
        self.errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>, body: &str) -> ApiRequest {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| vec![("Content-Type", ct)])
            .unwrap_or_default();
        ApiRequest::new("POST", "/api/products/", &headers, body.as_bytes().to_vec())
    }

    fn detail(error: ApiError) -> serde_json::Value {
        serde_json::from_slice(&error.body()).unwrap()
    }

    #[test]
    fn media_type_must_be_json() {
        let req = request(Some("application/json; charset=utf-8"), r#"{"a": 1}"#);
        assert!(object(&req).unwrap().contains("a"));
        let req = request(Some("text/plain"), r#"{"a": 1}"#);
        let error = object(&req).unwrap_err();
        assert_eq!(error.status(), 415);
        assert_eq!(
            detail(error),
            serde_json::json!({"detail": "Unsupported media type \"text/plain\" in request."})
        );
        let req = request(None, r#"{"a": 1}"#);
        assert_eq!(object(&req).unwrap_err().status(), 415);
        let req = request(None, "");
        assert!(!object(&req).unwrap().contains("a"));
    }

    #[test]
    fn malformed_bodies_are_400() {
        for body in ["{", "nope", "{\"a\": 1,}", "[1, 2"] {
            let error = object(&request(Some("application/json"), body)).unwrap_err();
            assert_eq!(error.status(), 400, "{body}");
            assert!(
                error.detail().unwrap().starts_with("JSON parse error - "),
                "{body}"
            );
        }
        let error = parse_object(b"{\"a\": \"\xff\"}").unwrap_err();
        assert!(error.detail().unwrap().starts_with("JSON parse error - "));
        // A lone surrogate parses (as in Python) but is no string a field accepts.
        let object = parse_object(br#"{"a": "\ud800"}"#).unwrap();
        let mut fields = Fields::new(object);
        fields.required("a", |v| v.text(TextRules::required(5)));
        let Err(ApiError::Validation(errors)) = fields.finish() else {
            panic!()
        };
        assert_eq!(
            errors.get("a"),
            Some(&["Not a valid string.".to_owned()][..])
        );
    }

    #[test]
    fn deep_nesting_is_400() {
        let deep = |depth: usize| {
            format!(
                "{{\"a\": {}1{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        assert!(parse_object(deep(MAX_DEPTH).as_bytes()).is_ok());
        for body in [
            deep(MAX_DEPTH + 1),
            "[".repeat(100_000),
            format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)),
        ] {
            let error = parse_object(body.as_bytes()).unwrap_err();
            assert_eq!(error.status(), 400);
            assert_eq!(
                error.detail().as_deref(),
                Some("JSON parse error - nested deeper than 128 levels")
            );
        }
        // Brackets in strings, escaped quotes included, are text.
        let text = format!(r#"{{"a": "\"{}"}}"#, "[".repeat(1000));
        assert!(parse_object(text.as_bytes()).is_ok());
    }

    #[test]
    fn non_objects_name_their_python_type() {
        for (body, name) in [
            ("[1]", "list"),
            ("\"x\"", "str"),
            ("3", "int"),
            ("3.5", "float"),
            ("true", "bool"),
            ("null", "NoneType"),
        ] {
            let error = parse_object(body.as_bytes()).unwrap_err();
            assert_eq!(
                detail(error),
                serde_json::json!({"non_field_errors": [format!("Invalid data. Expected a dictionary, but got {name}.")]})
            );
        }
    }

    fn read<T>(
        body: &str,
        read: impl FnOnce(&FieldValue<'_>) -> Result<T, Vec<String>>,
    ) -> Result<T, Vec<String>> {
        let object = parse_object(body.as_bytes()).unwrap();
        let mut fields = Fields::new(object);
        let value = fields.required("f", read);
        match fields.finish() {
            Ok(()) => Ok(value.unwrap()),
            Err(ApiError::Validation(errors)) => Err(errors.get("f").unwrap().to_vec()),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn text_fields_follow_char_field() {
        let name = TextRules::required(5);
        assert_eq!(
            read(r#"{"f": "  ab  "}"#, |v| v.text(name)),
            Ok("ab".into())
        );
        assert_eq!(
            read(r#"{"f": 12}"#, |v| v.text(name)),
            Err(vec!["Not a valid string.".into()])
        );
        assert_eq!(
            read(r#"{"f": "ééééé"}"#, |v| v.text(name)),
            Ok("ééééé".into())
        );
        assert_eq!(
            read(r#"{"f": "   "}"#, |v| v.text(name)),
            Err(vec!["This field may not be blank.".into()])
        );
        assert_eq!(
            read(r#"{"f": "abcdef"}"#, |v| v.text(name)),
            Err(vec![
                "Ensure this field has no more than 5 characters.".into()
            ])
        );
        assert_eq!(
            read(r#"{"f": true}"#, |v| v.text(name)),
            Err(vec!["Not a valid string.".into()])
        );
        assert_eq!(
            read(r#"{"f": ["a"]}"#, |v| v.text(name)),
            Err(vec!["Not a valid string.".into()])
        );
        assert_eq!(
            read(r#"{"f": null}"#, |v| v.text(name)),
            Err(vec![NOT_NULL.into()])
        );
        assert_eq!(
            read(r#"{"g": 1}"#, |v| v.text(name)),
            Err(vec![REQUIRED.into()])
        );
        assert_eq!(
            read(r#"{"f": "a\u0000b"}"#, |v| v.text(name)),
            Err(vec!["Null characters are not allowed.".into()])
        );
        assert_eq!(
            read(r#"{"f": " "}"#, |v| v.text(TextRules::blank_allowed())),
            Ok(String::new())
        );
    }

    #[test]
    fn integer_fields_follow_integer_field() {
        let stock = |v: &FieldValue<'_>| v.integer(0, 2_147_483_647);
        assert_eq!(read(r#"{"f": 7}"#, stock), Ok(7));
        assert_eq!(read(r#"{"f": 7.0}"#, stock), Ok(7));
        assert_eq!(read(r#"{"f": 2147483647}"#, stock), Ok(2_147_483_647));
        let invalid = Err(vec!["A valid integer is required.".to_owned()]);
        for bad in [
            r#"{"f": 7.5}"#,
            r#"{"f": "7"}"#,
            r#"{"f": " 7 "}"#,
            r#"{"f": "x"}"#,
            r#"{"f": true}"#,
            r#"{"f": [1]}"#,
            r#"{"f": ""}"#,
        ] {
            assert_eq!(read(bad, stock), invalid, "{bad}");
        }
        assert_eq!(
            read(r#"{"f": 2147483648}"#, stock),
            Err(vec![
                "Ensure this value is less than or equal to 2147483647.".into()
            ])
        );
        assert_eq!(
            read(r#"{"f": 99999999999999999999999999999999999999999}"#, stock),
            Err(vec![
                "Ensure this value is less than or equal to 2147483647.".into()
            ])
        );
        assert_eq!(
            read(r#"{"f": -1}"#, stock),
            Err(vec![
                "Ensure this value is greater than or equal to 0.".into()
            ])
        );
    }

    #[test]
    fn boolean_fields_follow_boolean_field() {
        assert_eq!(read(r#"{"f": true}"#, |v| v.boolean()), Ok(true));
        assert_eq!(read(r#"{"f": "off"}"#, |v| v.boolean()), Ok(false));
        assert_eq!(read(r#"{"f": 1}"#, |v| v.boolean()), Ok(true));
        assert_eq!(
            read(r#"{"f": "maybe"}"#, |v| v.boolean()),
            Err(vec!["Must be a valid boolean.".into()])
        );
    }

    #[test]
    fn errors_are_collected_across_fields() {
        let object = parse_object(br#"{"b": "x", "ignored": 1}"#).unwrap();
        let mut fields = Fields::new(object);
        fields.required("a", |v| v.text(TextRules::required(10)));
        fields.required("b", |v| v.integer(0, 10));
        fields.optional("c", |v| v.integer(0, 10));
        let Err(ApiError::Validation(errors)) = fields.finish() else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(&errors).unwrap(),
            serde_json::json!({"a": [REQUIRED], "b": ["A valid integer is required."]})
        );
    }
}
