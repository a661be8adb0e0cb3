//! Plaintext secrets in the configuration files: found by key name, masked in the source text
//! every snippet is cut from, and redacted from finding messages. No I/O.

use serde_json::Value;

use crate::source::{FileId, PointerIndex, SourceMap, Target, pointer_push};

/// Key (or variable) names whose string values are secrets.
pub fn looks_secret(name: &str) -> bool {
    // Runs on every key of every file: no allocation.
    const WORDS: [&[u8]; 7] = [
        b"PASS",
        b"SECRET",
        b"TOKEN",
        b"API_KEY",
        b"APIKEY",
        b"PRIVATE",
        b"CREDENTIAL",
    ];
    let n = name.as_bytes();
    let has = |w: &[u8]| n.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w));
    // `hf_token_file`, `docker_token_file`: where a secret is, not the secret.
    let ends = |w: &[u8]| n.len() >= w.len() && n[n.len() - w.len()..].eq_ignore_ascii_case(w);
    if ends(b"_FILE") || ends(b"_PATH") {
        return false;
    }
    WORDS.iter().any(|w| has(w))
}

/// JSON pointers of every string value that is a secret: a member whose key looks secret, and
/// the `value` of a `{"name": …, "value": …}` variable whose name does.
pub fn pointers(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// `path` holds the steps to `v`; a pointer is spelled out only for a secret.
fn walk<'v>(v: &'v Value, path: &mut Vec<Step<'v>>, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let variable = m
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(looks_secret);
            for (k, child) in m {
                let secret = looks_secret(k) || (variable && k == "value");
                path.push(Step::Key(k));
                if secret && matches!(child, Value::String(_) | Value::Number(_)) {
                    out.push(pointer(path));
                } else if matches!(child, Value::Object(_) | Value::Array(_)) {
                    walk(child, path, out);
                }
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                if matches!(child, Value::Object(_) | Value::Array(_)) {
                    path.push(Step::Index(i));
                    walk(child, path, out);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

enum Step<'v> {
    Key(&'v str),
    Index(usize),
}

fn pointer(path: &[Step<'_>]) -> String {
    path.iter().fold(String::new(), |p, s| match s {
        Step::Key(k) => pointer_push(&p, k),
        Step::Index(i) => pointer_push(&p, &i.to_string()),
    })
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
