//! The operator's real snapshots with one key taken away at a time: every top-level key of
//! every file, and each key of each guest and certificate entry (a key name at most
//! [`PER_KEY`] times per file, so the run stays short). Validation never panics, never hangs
//! (a deadline per run), and every error it reports is located at `file:line:col`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use phoenix_model::{Severity, validate_dir};
use serde_json::Value;

mod common;
use common::copy_tree;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/upstream"
);
/// How many guests (or entries) of one file lose the same key.
const PER_KEY: usize = 3;
/// A validation of these files takes milliseconds; this is a hang.
const DEADLINE: Duration = Duration::from_secs(30);

/// One change: the file and the value written in its place, with a name for messages.
struct Mutation {
    file: &'static str,
    name: String,
    value: Value,
}

fn without(v: &Value, pointer: &str, key: &str) -> Value {
    let mut out = v.clone();
    if let Some(Value::Object(m)) = out.pointer_mut(pointer) {
        m.shift_remove(key);
    }
    out
}

/// Each key of each object under `parent` (`/lxc_configs`, `/vms`, ``), a key name at most
/// [`PER_KEY`] times.
fn member_keys(file: &'static str, v: &Value, parent: &str, out: &mut Vec<Mutation>) {
    let children: Vec<(String, &Value)> = match v.pointer(parent) {
        Some(Value::Object(m)) => m.iter().map(|(k, c)| (k.clone(), c)).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, c)| (i.to_string(), c))
            .collect(),
        _ => return,
    };
    let mut times: HashMap<String, usize> = HashMap::new();
    for (id, child) in children {
        let Value::Object(m) = child else { continue };
        let pointer = format!("{parent}/{id}");
        for key in m.keys() {
            let n = times.entry(key.clone()).or_default();
            if *n >= PER_KEY {
                continue;
            }
            *n += 1;
            out.push(Mutation {
                file,
                name: format!("{file} without {pointer}/{key}"),
                value: without(v, &pointer, key),
            });
        }
    }
}

fn mutations(etc: &Path) -> Vec<Mutation> {
    let files: [(&'static str, &[&str]); 5] = [
        ("phoenix_hypervisor_config.json", &[]),
        ("phoenix_lxc_configs.json", &["/lxc_configs"]),
        ("phoenix_vm_configs.json", &["/vms"]),
        ("phoenix_stacks_config.json", &["/docker_stacks"]),
        ("certificate-manifest.json", &[""]),
    ];
    let mut out = Vec::new();
    for (file, parents) in files {
        let text = std::fs::read_to_string(etc.join(file)).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        if let Value::Object(m) = &v {
            for key in m.keys() {
                out.push(Mutation {
                    file,
                    name: format!("{file} without /{key}"),
                    value: without(&v, "", key),
                });
            }
        }
        for parent in parents {
            member_keys(file, &v, parent, &mut out);
        }
    }
    out
}

/// What a worker reports: a run starting (for the deadline), or its snapshot's outcome.
enum Report {
    Started(String),
    Done(Outcome),
}

struct Outcome {
    snapshot: &'static str,
    runs: usize,
    /// Runs that reported at least one error (so the location check had something to check).
    rejected: usize,
    problems: Vec<String>,
}

/// Every mutation of `snapshot` validated in turn; a panic is caught and reported as a
/// problem, like an error without a location.
fn run_all(snapshot: &'static str, tx: &mpsc::Sender<Report>) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&Path::new(FIXTURES).join(snapshot), tmp.path());
    let etc: PathBuf = tmp.path().join("etc");
    let all = mutations(&etc);
    let mut out = Outcome {
        snapshot,
        runs: all.len(),
        rejected: 0,
        problems: Vec::new(),
    };
    for m in all {
        let _ = tx.send(Report::Started(format!("{snapshot}: {}", m.name)));
        let path = etc.join(m.file);
        let original = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&m.value).unwrap()).unwrap();
        let result = std::panic::catch_unwind(|| validate_dir(&etc).findings());
        std::fs::write(&path, original).unwrap();
        let Ok(findings) = result else {
            out.problems
                .push(format!("{snapshot}: {}: panicked", m.name));
            continue;
        };
        let errors: Vec<_> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        out.rejected += usize::from(!errors.is_empty());
        for f in errors {
            if f.span.is_none() || f.line == 0 || f.column == 0 {
                out.problems.push(format!(
                    "{snapshot}: {}: {} is not located ({}:{}:{} {:?} {})",
                    m.name,
                    f.code,
                    f.file.display(),
                    f.line,
                    f.column,
                    f.pointer,
                    f.message
                ));
            }
        }
    }
    out
}

#[test]
fn removing_any_key_never_panics_hangs_or_loses_the_location() {
    let (tx, rx) = mpsc::channel();
    for snapshot in ["rootesting-2025-11-25", "main-2025-11-04"] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let outcome = run_all(snapshot, &tx);
            let _ = tx.send(Report::Done(outcome));
        });
    }
    drop(tx);
    let mut last = String::from("(none started)");
    let mut done = Vec::new();
    while done.len() < 2 {
        match rx.recv_timeout(DEADLINE) {
            Ok(Report::Started(name)) => last = name,
            Ok(Report::Done(o)) => done.push(o),
            Err(e) => panic!("no progress for {DEADLINE:?} ({e}); last started: {last}"),
        }
    }
    for o in done {
        assert!(o.runs > 100, "{}: only {} runs", o.snapshot, o.runs);
        assert!(
            o.rejected > 10,
            "{}: only {} rejected",
            o.snapshot,
            o.rejected
        );
        assert!(o.problems.is_empty(), "{}", o.problems.join("\n"));
        eprintln!("{}: {} runs, {} rejected", o.snapshot, o.runs, o.rejected);
    }
}
