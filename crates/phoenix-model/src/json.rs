//! Strict JSON parsing into `serde_json::Value`, with the checks serde_json does not make:
//! duplicate keys are errors (serde_json silently keeps the last), and oversized or deeply
//! nested files fail fast with a clear error instead of exhausting memory or the stack.
//!
//! No I/O.

use crate::diag::Quote;
use serde_json::{Map, Number, Value};

use crate::diag::{Anchor, Code, Diagnostic, Diagnostics, range_diag};
use crate::source::{FileId, pointer_push};

/// Largest configuration file phoenix reads (a 2,000-guest file is about 4 MiB).
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of objects and arrays accepted (real files stay below 10).
pub const MAX_DEPTH: usize = 64;

/// Plain JSON: no comments, trailing commas or other JSON5 leniencies.
pub fn strict_options() -> jsonc_parser::ParseOptions {
    jsonc_parser::ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// Parse `text` (the contents of `file`). Syntax errors, size and depth violations and
/// duplicate keys are reported into `diags`; `None` means the file could not be used at all.
pub fn parse(file: FileId, text: &str, diags: &mut Diagnostics) -> Option<Value> {
    if text.len() > MAX_FILE_BYTES {
        diags.push(range_diag(
            Code::TooLarge,
            file,
            0..0,
            format!(
                "file is {} bytes; phoenix reads configuration files up to {} bytes",
                text.len(),
                MAX_FILE_BYTES
            ),
            "split the configuration or check that the right file was given",
        ));
        return None;
    }
    if let Some(offset) = depth_exceeded(text) {
        diags.push(range_diag(
            Code::TooLarge,
            file,
            offset..offset + 1,
            format!("nesting deeper than {MAX_DEPTH} levels"),
            "configuration files nest a few levels deep; this file is probably not a phoenix config",
        ));
        return None;
    }
    // Fast path: almost every file is valid JSON without duplicate keys, which serde_json
    // reads several times faster than building the span-carrying AST. Anything else (syntax
    // errors, duplicates) takes the AST path below, which locates the problem exactly.
    if let Ok(UniqueKeys(v)) = serde_json::from_str::<UniqueKeys>(text) {
        return Some(v);
    }
    let parsed = match jsonc_parser::parse_to_ast(
        text,
        &jsonc_parser::CollectOptions::default(),
        &strict_options(),
    ) {
        Ok(p) => p,
        Err(e) => {
            let r = e.range();
            diags.push(range_diag(
                Code::JsonSyntax,
                file,
                r.start..r.end.max(r.start + 1).min(text.len().max(r.start)),
                format!("invalid JSON: {}", e.kind()),
                "fix the syntax at the marked position (JSON allows no comments or trailing commas)",
            ));
            return None;
        }
    };
    let Some(root) = parsed.value else {
        diags.push(range_diag(
            Code::JsonSyntax,
            file,
            0..0,
            "the file is empty",
            "a phoenix configuration file holds one JSON object",
        ));
        return None;
    };
    let mut conv = Converter { file, text, diags };
    Some(conv.convert(&root, &mut Vec::with_capacity(MAX_DEPTH)))
}

/// Byte offset where bracket nesting first passes [`MAX_DEPTH`], ignoring string contents.
fn depth_exceeded(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

struct Converter<'d> {
    file: FileId,
    text: &'d str,
    diags: &'d mut Diagnostics,
}

/// One step of the path to the value being converted. The JSON pointer is only spelled out
/// when a diagnostic needs it: building it for every node cost a fifth of the parse.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn pointer_of(path: &[Step<'_>]) -> String {
    path.iter().fold(String::new(), |p, step| match step {
        Step::Key(k) => pointer_push(&p, k),
        Step::Index(i) => pointer_push(&p, &i.to_string()),
    })
}

impl Converter<'_> {
    fn convert<'a>(
        &mut self,
        v: &'a jsonc_parser::ast::Value<'a>,
        path: &mut Vec<Step<'a>>,
    ) -> Value {
        use jsonc_parser::ast::Value as A;
        match v {
            A::NullKeyword(_) => Value::Null,
            A::BooleanLit(b) => Value::Bool(b.value),
            A::StringLit(s) => Value::String(s.value.to_string()),
            A::NumberLit(n) => number(n.value),
            A::Array(a) => Value::Array(
                a.elements
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        path.push(Step::Index(i));
                        let v = self.convert(e, path);
                        path.pop();
                        v
                    })
                    .collect(),
            ),
            A::Object(o) => {
                let mut map = Map::with_capacity(o.properties.len());
                let key_range = |p: &jsonc_parser::ast::ObjectProp<'_>| match &p.name {
                    jsonc_parser::ast::ObjectPropName::String(s) => s.range,
                    jsonc_parser::ast::ObjectPropName::Word(w) => w.range,
                };
                for (i, p) in o.properties.iter().enumerate() {
                    let name = p.name.as_str();
                    path.push(Step::Key(name));
                    let value = self.convert(&p.value, path);
                    // The last copy wins, as in serde_json and jq: phoenix reads what the bash
                    // system read, but the duplicate is an error so nothing is applied.
                    if map.insert(name.to_string(), value).is_some() {
                        let r = key_range(p);
                        let first = o.properties[..i]
                            .iter()
                            .find(|q| q.name.as_str() == name)
                            .map(|q| crate::source::line_col(self.text, key_range(q).start));
                        let (line, col) = first.unwrap_or((0, 0));
                        self.diags.push(Diagnostic {
                            code: Code::DuplicateKey,
                            severity: Code::DuplicateKey.severity(),
                            message: format!(
                                "duplicate key `{}`, first given at line {line}:{col}",
                                name.quoted()
                            ),
                            hint: "JSON readers disagree on which copy wins (phoenix and jq read the last); keep exactly one"
                                .into(),
                            anchor: Anchor::Range {
                                file: self.file,
                                pointer: pointer_of(path),
                                range: r.start..r.end,
                            },
                        });
                    }
                    path.pop();
                }
                Value::Object(map)
            }
        }
    }
}

/// A JSON value read by serde_json that fails on the first duplicate key.
struct UniqueKeys(Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        // `-0` and such take the AST path, which keeps the number as written.
        Number::from_f64(v)
            .filter(|_| v != 0.0 || v.is_sign_positive())
            .map(Value::Number)
            .ok_or_else(|| E::custom("number takes the exact path"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(UniqueKeys(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let UniqueKeys(v) = map.next_value()?;
            if out.insert(key, v).is_some() {
                return Err(serde::de::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(out))
    }
}

fn number(text: &str) -> Value {
    if let Ok(u) = text.parse::<u64>() {
        return Value::Number(u.into());
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Option<Value>, Diagnostics) {
        let mut d = Diagnostics::default();
        let v = parse(FileId(0), text, &mut d);
        (v, d)
    }

    #[test]
    fn duplicate_keys_are_errors_and_last_wins() {
        let (v, d) = run("{\"a\": 1,\n \"b\": {\"x\": 1,\n \"x\": 2}}");
        assert_eq!(d.len(), 1);
        assert!(d.iter().all(|x| x.code == Code::DuplicateKey));
        // Both copies are named: the finding sits at the second, its message names the first.
        assert!(
            d.iter()
                .all(|x| x.message.ends_with("first given at line 2:8")),
            "{d:?}"
        );
        assert_eq!(
            v.and_then(|v| v.pointer("/b/x").cloned()),
            Some(Value::from(2))
        );
    }

    #[test]
    fn deep_nesting_fails_fast() {
        let text = "[".repeat(100_000);
        let (v, d) = run(&text);
        assert!(v.is_none());
        assert!(d.iter().any(|x| x.code == Code::TooLarge));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = format!("{{\"a\": \"{}\"}}", "[".repeat(1000));
        let (v, d) = run(&text);
        assert!(v.is_some());
        assert!(d.is_empty());
    }

    #[test]
    fn comments_and_trailing_commas_are_rejected() {
        for bad in ["{\"a\": 1,}", "{// c\n}", "{'a': 1}", ""] {
            let (v, d) = run(bad);
            assert!(v.is_none(), "{bad:?} parsed");
            assert!(d.iter().any(|x| x.code == Code::JsonSyntax), "{bad:?}");
        }
    }

    #[test]
    fn fast_and_exact_paths_agree() {
        let text = r#"{"a": [1, -2, 0.5, 1e3, true, null, "x\u00e9"], "b": {"c": {}}, "d": []}"#;
        let fast = serde_json::from_str::<UniqueKeys>(text).map(|u| u.0).ok();
        let parsed = jsonc_parser::parse_to_ast(
            text,
            &jsonc_parser::CollectOptions::default(),
            &strict_options(),
        )
        .ok()
        .and_then(|p| p.value);
        let mut d = Diagnostics::default();
        let exact = parsed.map(|root| {
            Converter {
                file: FileId(0),
                text,
                diags: &mut d,
            }
            .convert(&root, &mut Vec::new())
        });
        assert!(fast.is_some());
        assert_eq!(fast, exact);
    }

    #[test]
    fn numbers_keep_their_kind() {
        let (v, _) = run(r#"{"i": 4, "n": -3, "f": 0.5}"#);
        let v = v.unwrap_or_default();
        assert!(v["i"].is_u64());
        assert!(v["n"].is_i64());
        assert!(v["f"].is_f64());
    }
}
