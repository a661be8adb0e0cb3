//! Plaintext secrets in the configuration files: found by key name, masked in the source text
//! every snippet is cut from, and redacted from finding messages. No I/O.

use serde_json::Value;

use crate::source::{FileId, PointerIndex, SourceMap, Target, pointer_push};

/// Key (or variable) names whose string values are secrets.
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    // `hf_token_file`, `docker_token_file`: where a secret is, not the secret.
    if n.ends_with("_FILE") || n.ends_with("_PATH") {
        return false;
    }
    [
        "PASS",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE",
        "CREDENTIAL",
    ]
    .iter()
    .any(|k| n.contains(k))
}

/// JSON pointers of every string value that is a secret: a member whose key looks secret, and
/// the `value` of a `{"name": …, "value": …}` variable whose name does.
pub fn pointers(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

fn walk(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let variable = m
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(looks_secret);
            for (k, child) in m {
                let p = pointer_push(at, k);
                let secret = looks_secret(k) || (variable && k == "value");
                if secret && matches!(child, Value::String(_) | Value::Number(_)) {
                    out.push(p);
                } else {
                    walk(child, &p, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                walk(child, &pointer_push(at, &i.to_string()), out);
            }
        }
        _ => {}
    }
}

/// Mask the secrets of `file` in `sources`: every `"secret-key": "value"` pair found in the
/// text (also in a file that does not parse, and both copies of a duplicate key), and, with
/// the parsed `value`, the variables' values.
pub fn mask_file(sources: &mut SourceMap, file: FileId, value: Option<&Value>) {
    let text = &sources.get(file).text;
    let mut ranges = text_pairs(text);
    let found = value.map(pointers).unwrap_or_default();
    if !found.is_empty() {
        let index = PointerIndex::new(text);
        ranges.extend(found.iter().filter_map(|p| index.locate(p, Target::Value)));
    }
    if !ranges.is_empty() {
        sources.mask(file, &ranges);
    }
}

/// Byte ranges (quotes included) of string values whose key looks secret, by a scan of the
/// text that needs no valid JSON.
pub fn text_pairs(text: &str) -> Vec<std::ops::Range<usize>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let key_end = string_end(b, i);
        let mut j = key_end;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b':' {
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let value_end = string_end(b, j);
                if text.get(i + 1..key_end - 1).is_some_and(looks_secret) {
                    out.push(j..value_end);
                }
                i = value_end;
                continue;
            }
        }
        i = key_end;
    }
    out
}

/// End (exclusive, after the closing quote) of the string starting at `b[start] == '"'`.
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' => return i,
            _ => i += 1,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_secret_keys_and_variables() {
        let v = serde_json::json!({
            "portainer_api": {"admin_user": "admin", "admin_password": "pw", "api_key": {"env": "K"}},
            "variables": [{"name": "DATABASE_PASS", "value": "x"}, {"name": "HOST", "value": "db"}],
        });
        assert_eq!(
            pointers(&v),
            ["/portainer_api/admin_password", "/variables/0/value"]
        );
    }

    #[test]
    fn text_pairs_need_no_valid_json() {
        let text =
            "{\"admin_password\": \"a\\\"b\", \"x\": \"y\",, \"api_key\" : \"k\"\n\"token\": 3";
        let found: Vec<&str> = text_pairs(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(found, ["\"a\\\"b\"", "\"k\""]);
    }
}
