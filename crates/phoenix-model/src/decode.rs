//! Turning a JSON value into a raw type while collecting *every* problem: unknown keys become
//! warnings with their location, and a type error is reported, the offending member removed,
//! and decoding retried, so one bad field does not hide the next. No I/O.

use crate::diag::Quote;
use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::{Location, pointer_push, pointer_segments};

/// Most type errors reported for one value before giving up on it.
const MAX_ATTEMPTS: usize = 32;

/// Decode `value` (found at `loc`) as `T`. Returns `None` when a required member is missing
/// or malformed beyond repair; every problem is in `diags`.
pub fn decode<T: DeserializeOwned>(
    value: &Value,
    loc: &Location,
    diags: &mut Diagnostics,
) -> Option<T> {
    let mut current: Cow<'_, Value> = Cow::Borrowed(value);
    // Members removed after a type error: a "missing field" on their parent is a consequence
    // of the removal, not a second finding.
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let mut unknown: Vec<String> = Vec::new();
        let result = {
            let mut on_ignored =
                |path: serde_ignored::Path<'_>| unknown.push(ignored_pointer(&path));
            let de = serde_ignored::Deserializer::new(current.as_ref(), &mut on_ignored);
            serde_path_to_error::deserialize::<_, T>(de)
        };
        match result {
            Ok(v) => {
                for p in unknown {
                    let at = Location::new(loc.file, format!("{}{}", loc.pointer, p));
                    let key = pointer_segments(&p).pop().unwrap_or_default();
                    diags.push(
                        Diagnostic::new(
                            Code::UnknownKey,
                            &at,
                            format!("unknown key `{}`", key.quoted()),
                            "phoenix keeps it but nothing reads it; check the spelling against `phoenix schema`",
                        )
                        .at_key(),
                    );
                }
                return Some(v);
            }
            Err(e) => {
                let rel = error_pointer(e.path());
                let message = e.inner().to_string();
                let missing = message.starts_with("missing field");
                let at = Location::new(loc.file, format!("{}{}", loc.pointer, rel));
                let (code, hint) = if missing {
                    (
                        Code::MissingField,
                        "add the field; `phoenix schema` documents it",
                    )
                } else {
                    (
                        Code::TypeMismatch,
                        "`phoenix schema` shows the expected type of every field",
                    )
                };
                // serde names the field: "missing field `port`".
                let field = message.split('`').nth(1).unwrap_or_default();
                let consequence =
                    missing && removed.contains(&crate::source::pointer_push(&rel, field));
                if !consequence {
                    diags.emit(code, &at, tidy(&shorten_quoted(&message)), hint);
                }
                // A required member missing at the top gives up on the value; one missing in a
                // nested object drops that object, so the rest of the value still loads (a bad
                // `traefik_service.port` must not make the whole guest disappear).
                if rel.is_empty() {
                    return None;
                }
                removed.push(rel.clone());
                let mut owned = current.into_owned();
                if !remove_pointer(&mut owned, &rel) {
                    return None;
                }
                current = Cow::Owned(owned);
            }
        }
    }
    None
}

/// serde quotes the whole offending string (`invalid type: string "…", expected u32`): cut
/// it as every other message quotes a value.
fn shorten_quoted(message: &str) -> String {
    match (message.find('"'), message.rfind('"')) {
        (Some(a), Some(b)) if b > a + crate::diag::QUOTE_CHARS => format!(
            "{}\"{}\"{}",
            &message[..a],
            crate::diag::cut(&message[a + 1..b], crate::diag::QUOTE_CHARS),
            &message[b + 1..]
        ),
        _ => message.to_string(),
    }
}

/// serde's messages end with a period and speak of maps and sequences; the configuration is
/// JSON, made of objects and arrays.
fn tidy(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, word) in message.trim_end_matches('.').split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let bare = word.trim_end_matches([',', ':']);
        let rest = &word[bare.len()..];
        match bare {
            "map" => out.push_str("object"),
            "sequence" => out.push_str("array"),
            "unit" => out.push_str("null"),
            _ => out.push_str(bare),
        }
        out.push_str(rest);
    }
    out.replace(" a object", " an object")
        .replace(" a array", " an array")
}

fn error_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out = pointer_push(&out, &index.to_string()),
            Segment::Map { key } => out = pointer_push(&out, key),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

fn ignored_pointer(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => pointer_push(&ignored_pointer(parent), &index.to_string()),
        Path::Map { parent, key } => pointer_push(&ignored_pointer(parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_pointer(parent),
    }
}

/// Remove the member at `pointer`; `false` if there is nothing to remove.
fn remove_pointer(value: &mut Value, pointer: &str) -> bool {
    let mut segs = pointer_segments(pointer);
    let Some(last) = segs.pop() else { return false };
    let mut node = value;
    for s in &segs {
        node = match node {
            Value::Object(m) => match m.get_mut(s) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(a) => match s.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        Value::Object(m) => m.shift_remove(&last).is_some(),
        // A wrong-typed element is dropped; a later error in the same list may then be
        // reported one index early, which is rare enough (the element must itself be of the
        // wrong JSON type) not to justify index bookkeeping.
        Value::Array(a) => match last.parse::<usize>().ok().filter(|i| *i < a.len()) {
            Some(i) => {
                a.remove(i);
                true
            }
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct T {
        name: String,
        cores: Option<u32>,
        memory_mb: Option<u64>,
    }

    #[test]
    fn collects_every_type_error_and_unknown_key() {
        let v = serde_json::json!({"name": "a", "cores": "four", "memory_mb": "lots", "colour": 1});
        let mut d = Diagnostics::default();
        let t: Option<T> = decode(&v, &Location::new(FileId(0), "/x"), &mut d);
        let t = t.unwrap_or(T {
            name: String::new(),
            cores: Some(9),
            memory_mb: Some(9),
        });
        assert_eq!(t.name, "a");
        assert_eq!(t.cores, None);
        assert_eq!(t.memory_mb, None);
        let codes: Vec<_> = d.iter().map(|x| (x.code, x.anchor.clone())).collect();
        assert_eq!(codes.len(), 3, "{codes:?}");
        assert_eq!(d.iter().filter(|x| x.code == Code::TypeMismatch).count(), 2);
        assert_eq!(d.iter().filter(|x| x.code == Code::UnknownKey).count(), 1);
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        id: u32,
        service: Option<Inner>,
        cores: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        port: u16,
    }

    #[test]
    fn a_bad_nested_field_drops_only_its_object() {
        let v = serde_json::json!({"id": 7, "service": {"port": "x"}, "cores": 2});
        let mut d = Diagnostics::default();
        let t: Option<Outer> = decode(&v, &Location::new(FileId(0), ""), &mut d);
        let t = t.unwrap_or(Outer {
            id: 0,
            service: None,
            cores: None,
        });
        assert_eq!((t.id, t.service.is_none(), t.cores), (7, true, Some(2)));
        // One finding: the type error; the resulting "missing field `port`" is not repeated.
        assert_eq!(d.len(), 1);
        assert!(d.iter().all(|x| x.code == Code::TypeMismatch));
    }

    #[test]
    fn an_unrelated_missing_field_is_still_reported() {
        let v = serde_json::json!({"cores": "four"});
        let mut d = Diagnostics::default();
        let t: Option<Outer> = decode(&v, &Location::new(FileId(0), ""), &mut d);
        assert!(t.is_none());
        assert!(d.iter().any(|x| x.code == Code::TypeMismatch));
        assert!(
            d.iter().any(|x| x.code == Code::MissingField),
            "missing `id` must be reported"
        );
    }

    #[test]
    fn messages_speak_json() {
        assert_eq!(
            tidy("invalid type: map, expected a sequence."),
            "invalid type: object, expected an array"
        );
        assert_eq!(
            tidy("invalid type: sequence, expected a map"),
            "invalid type: array, expected an object"
        );
        assert_eq!(tidy("unknown field `mapping`"), "unknown field `mapping`");
    }

    #[test]
    fn missing_required_field_gives_up() {
        let v = serde_json::json!({"cores": 2});
        let mut d = Diagnostics::default();
        let t: Option<T> = decode(&v, &Location::new(FileId(0), ""), &mut d);
        assert!(t.is_none());
        assert!(d.iter().any(|x| x.code == Code::MissingField));
    }
}
