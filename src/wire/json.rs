//! JSON request bodies read one way on every route: an object, each key
//! once, at every depth.
//!
//! serde_json keeps the last of two equal keys when it builds a `Value`,
//! and a derived struct refuses them, so the same body could mean one
//! thing on one route and be refused on another; and a body whose two
//! `code`s a WAF or a backend reads differently from wxgate is ambiguous
//! the way a repeated header is. A repeated key is a `400 bad_request`
//! that names it.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a body is not one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum JsonError {
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("the body repeats the key `{0}`")]
    RepeatedKey(String),
}

/// The JSON object `bytes` hold, refused when a key repeats anywhere.
pub fn object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    match serde_json::from_slice::<Once>(bytes) {
        Ok(Once(Value::Object(map))) => Ok(map),
        Ok(_) => Err(JsonError::NotAnObject),
        Err(e) => {
            let message = e.to_string();
            match message.strip_prefix(REPEATED) {
                Some(rest) => Err(JsonError::RepeatedKey(
                    rest.split('\u{1f}').next().unwrap_or("").to_owned(),
                )),
                None => Err(JsonError::NotAnObject),
            }
        }
    }
}

/// The marker of the error the visitor raises (serde's errors are text).
const REPEATED: &str = "wxgate: repeated key\u{1f}";
/// A repeated key longer than this is named by its start.
const KEY_SHOWN: usize = 64;

/// A `Value` whose objects had each key once.
struct Once(Value);

impl<'de> Deserialize<'de> for Once {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OnceVisitor).map(Once)
    }
}

struct OnceVisitor;

impl<'de> Visitor<'de> for OnceVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Once(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let shown: String = key.chars().take(KEY_SHOWN).collect();
                return Err(de::Error::custom(format!("{REPEATED}{shown}\u{1f}")));
            }
            let Once(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reading_of_an_object() {
        let repeated = |key: &str| Err(JsonError::RepeatedKey(key.to_owned()));
        let cases: &[(&str, Result<usize, JsonError>)] = &[
            (r#"{"code":"a"}"#, Ok(1)),
            (
                r#"{"code":"a","iv":"b","n":[1,{"x":null}],"f":1.5,"t":true}"#,
                Ok(5),
            ),
            (r#"{"code":"a","code":"b"}"#, repeated("code")),
            (r#"{"a":{"k":1,"k":2}}"#, repeated("k")),
            (r#"{"a":[{"k":1,"k":1}]}"#, repeated("k")),
            (r#"{"c\u006fde":"a","code":"b"}"#, repeated("code")),
            ("[1,2]", Err(JsonError::NotAnObject)),
            ("\"s\"", Err(JsonError::NotAnObject)),
            ("{", Err(JsonError::NotAnObject)),
            ("", Err(JsonError::NotAnObject)),
        ];
        for (body, want) in cases {
            assert_eq!(&object(body.as_bytes()).map(|m| m.len()), want, "{body}");
        }
    }
}
