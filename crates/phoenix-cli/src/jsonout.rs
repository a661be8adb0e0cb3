//! JSON documents on stdout (`--output json`): each top-level document carries
//! `format_version` and `kind` (their shapes: docs/json.md), and a command that fails before
//! writing its document writes an `error` document instead, so a script always reads JSON.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The version of every document's shape; raised when a field changes meaning or goes.
pub const FORMAT_VERSION: u32 = 1;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static WRITTEN: AtomicBool = AtomicBool::new(false);
static LAST_ERROR: Mutex<Option<(String, String)>> = Mutex::new(None);

/// Whether the command line asks for JSON (`--output json`, `--output=json`, `-o json`,
/// `-ojson`); read once clap has accepted it.
pub fn requested_by(args: &[String]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        let next_is_json = || args.get(i + 1).is_some_and(|n| n == "json");
        a == "--output=json" || a == "-ojson" || ((a == "--output" || a == "-o") && next_is_json())
    })
}

pub fn set_requested(on: bool) {
    REQUESTED.store(on, Ordering::Relaxed);
}

/// `value` with `format_version` and `kind` (an object gets both keys; anything else is
/// wrapped as `value`).
pub fn versioned(kind: &str, value: serde_json::Value) -> serde_json::Value {
    let mut doc = match value {
        serde_json::Value::Object(m) => m,
        other => {
            let mut m = serde_json::Map::new();
            m.insert("value".into(), other);
            m
        }
    };
    doc.insert("format_version".into(), FORMAT_VERSION.into());
    doc.insert("kind".into(), kind.into());
    serde_json::Value::Object(doc)
}

/// Print `value` as the command's `kind` document (pretty, one per run).
pub fn print(kind: &str, value: &impl serde::Serialize) -> std::io::Result<()> {
    let v = serde_json::to_value(value).map_err(std::io::Error::other)?;
    let text = serde_json::to_string_pretty(&versioned(kind, v)).map_err(std::io::Error::other)?;
    WRITTEN.store(true, Ordering::Relaxed);
    writeln!(std::io::stdout().lock(), "{text}")
}

/// Remember the error the command reported (its last one wins).
pub fn note_error(message: &str, hint: &str) {
    if let Ok(mut e) = LAST_ERROR.lock() {
        *e = Some((message.to_string(), hint.to_string()));
    }
}

/// At exit: when JSON was asked for, the command failed and wrote no document, the error as
/// one (`kind: error`). The text on stderr stays as it was.
pub fn finish(code: u8) {
    if code == 0 || !REQUESTED.load(Ordering::Relaxed) || WRITTEN.load(Ordering::Relaxed) {
        return;
    }
    let (message, hint) = LAST_ERROR
        .lock()
        .ok()
        .and_then(|e| e.clone())
        .unwrap_or_else(|| {
            (
                "the command failed; stderr says why".to_string(),
                String::new(),
            )
        });
    let doc = serde_json::json!({"error": {"message": message, "hint": hint, "exit_code": code}});
    let _ = print("error", &doc);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn json_is_recognised_in_every_spelling() {
        assert!(requested_by(&args("plan --output json")));
        assert!(requested_by(&args("plan -o json --config x")));
        assert!(requested_by(&args("plan --output=json")));
        assert!(requested_by(&args("plan -ojson")));
        assert!(!requested_by(&args("plan --output text")));
        assert!(!requested_by(&args("plan --out json")));
    }

    #[test]
    fn documents_carry_their_version_and_kind() {
        let v = versioned("plan", serde_json::json!({"waves": []}));
        assert_eq!(v["format_version"], FORMAT_VERSION);
        assert_eq!(v["kind"], "plan");
        assert_eq!(v["waves"], serde_json::json!([]));
        let v = versioned("x", serde_json::json!([1]));
        assert_eq!(v["value"], serde_json::json!([1]));
    }
}
