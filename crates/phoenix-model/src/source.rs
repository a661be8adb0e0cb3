//! Source files of a configuration and how a JSON pointer maps back to `file:line:col`.
//!
//! No I/O: the loader hands in the text; this module only indexes it. Locating is done lazily
//! (a second parse of the file) because most files never need it.

use std::ops::Range;
use std::path::PathBuf;

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub usize);

/// One configuration file as read from disk.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// Every file the loader read, in the order it read them.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    /// Plaintext secret values masked in the texts, to redact from messages too.
    secrets: Vec<String>,
}

impl SourceMap {
    /// Replace each byte of the string values at `ranges` (quotes excluded) of `id` with `*`,
    /// keeping every offset, and remember the values for [`SourceMap::redact`].
    pub fn mask(&mut self, id: FileId, ranges: &[Range<usize>]) {
        let Some(file) = self.files.get_mut(id.0) else {
            return;
        };
        let mut bytes = std::mem::take(&mut file.text).into_bytes();
        for r in ranges {
            let (start, end) = (r.start.min(bytes.len()), r.end.min(bytes.len()));
            let quoted = end > start + 1 && bytes[start] == b'"' && bytes[end - 1] == b'"';
            let inner = if quoted {
                start + 1..end - 1
            } else {
                start..end
            };
            if let Ok(value) = std::str::from_utf8(&bytes[inner.clone()]) {
                // Short values ("", "x") would redact unrelated words from messages.
                if value.chars().count() >= 4 && !self.secrets.iter().any(|s| s == value) {
                    self.secrets.push(value.to_string());
                }
            }
            for b in &mut bytes[inner] {
                *b = b'*';
            }
        }
        // Whole UTF-8 sequences were replaced by ASCII, so the text stays valid.
        file.text = String::from_utf8(bytes).unwrap_or_default();
    }

    /// `s` with every masked secret value replaced by `<redacted>`.
    pub fn redact(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }

    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile { path, text });
        FileId(self.files.len() - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i), f))
    }
}

/// Where in the configuration a value sits: a file and an RFC 6901 JSON pointer into it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub file: FileId,
    pub pointer: String,
}

impl Location {
    pub fn new(file: FileId, pointer: impl Into<String>) -> Self {
        Location {
            file,
            pointer: pointer.into(),
        }
    }

    /// The location of a member of this value (object key or array index).
    pub fn child(&self, segment: impl std::fmt::Display) -> Location {
        Location {
            file: self.file,
            pointer: pointer_push(&self.pointer, &segment.to_string()),
        }
    }
}

/// Append one segment to a JSON pointer, escaping `~` and `/` as RFC 6901 requires.
pub fn pointer_push(pointer: &str, segment: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + segment.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// Split a JSON pointer into unescaped segments.
pub fn pointer_segments(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Line starts of a text, for many [`line_col`] look-ups in one file: each costs a binary
/// search and the length of one line, not a scan from the top.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// Same as [`line_col`].
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.starts.partition_point(|s| *s <= offset);
        let start = self
            .starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        (line.max(1), text[start..offset].chars().count() + 1)
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Which part of a member a diagnostic points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The value (type errors, bad addresses).
    Value,
    /// The key of an object member (unknown or duplicate keys).
    Key,
}

/// Resolves JSON pointers to byte ranges in one JSON file.
pub struct PointerIndex<'a> {
    root: Option<jsonc_parser::ast::Value<'a>>,
    /// Member positions of large objects by key (the last copy wins), built on first use so
    /// that a thousand findings under one `lxc_configs` cost a thousand look-ups, not a
    /// thousand scans.
    members: std::cell::RefCell<
        std::collections::HashMap<usize, std::collections::HashMap<String, usize>>,
    >,
}

/// Objects with more members than this get a key index.
const INDEXED_OBJECT: usize = 16;

impl<'a> PointerIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let root = jsonc_parser::parse_to_ast(
            text,
            &jsonc_parser::CollectOptions::default(),
            &crate::json::strict_options(),
        )
        .ok()
        .and_then(|r| r.value);
        PointerIndex {
            root,
            members: Default::default(),
        }
    }

    /// Index of the last member named `key` of `obj`.
    fn member(&self, obj: &jsonc_parser::ast::Object<'_>, key: &str) -> Option<usize> {
        if obj.properties.len() <= INDEXED_OBJECT {
            return obj.properties.iter().rposition(|p| p.name.as_str() == key);
        }
        let mut cache = self.members.borrow_mut();
        let map = cache.entry(obj.range.start).or_insert_with(|| {
            obj.properties
                .iter()
                .enumerate()
                .map(|(i, p)| (p.name.as_str().to_string(), i))
                .collect()
        });
        map.get(key).copied()
    }

    /// The byte range of the value (or key) at `pointer`; falls back to the deepest existing
    /// ancestor so that a missing member points at the object that should hold it.
    pub fn locate(&self, pointer: &str, target: Target) -> Option<Range<usize>> {
        use jsonc_parser::ast::Value;
        let mut node = self.root.as_ref()?;
        let mut key_range = None;
        for segment in pointer_segments(pointer) {
            let next = match node {
                Value::Object(obj) => self
                    .member(obj, &segment)
                    .and_then(|i| obj.properties.get(i))
                    .map(|p| {
                        let r = match &p.name {
                            jsonc_parser::ast::ObjectPropName::String(s) => s.range,
                            jsonc_parser::ast::ObjectPropName::Word(w) => w.range,
                        };
                        (Some(r), &p.value)
                    }),
                Value::Array(arr) => segment
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| arr.elements.get(i))
                    .map(|v| (None, v)),
                _ => None,
            };
            match next {
                Some((k, v)) => {
                    key_range = k;
                    node = v;
                }
                None => {
                    key_range = None;
                    break;
                }
            }
        }
        let r = match (target, key_range) {
            (Target::Key, Some(k)) => k,
            _ => node_range(node),
        };
        Some(r.start..r.end)
    }
}

fn node_range(v: &jsonc_parser::ast::Value<'_>) -> jsonc_parser::common::Range {
    use jsonc_parser::ast::Value;
    match v {
        Value::StringLit(s) => s.range,
        Value::NumberLit(n) => n.range,
        Value::BooleanLit(b) => b.range,
        Value::Object(o) => o.range,
        Value::Array(a) => a.range,
        Value::NullKeyword(n) => n.range,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_escaping_round_trips() {
        let p = pointer_push(&pointer_push("", "a/b"), "c~d");
        assert_eq!(p, "/a~1b/c~0d");
        assert_eq!(pointer_segments(&p), vec!["a/b", "c~d"]);
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "{\n  \"é\": 1,\n  \"x\": 2\n}";
        let off = text.find("\"x\"").unwrap_or(0);
        assert_eq!(line_col(text, off), (3, 3));
        let index = LineIndex::new(text);
        for off in 0..=text.len() + 2 {
            assert_eq!(
                index.line_col(text, off),
                line_col(text, off),
                "offset {off}"
            );
        }
    }

    #[test]
    fn locate_finds_nested_values_and_keys() {
        let text = "{\"a\": {\"b\": [1, {\"c\": true}]}}";
        let idx = PointerIndex::new(text);
        let r = idx.locate("/a/b/1/c", Target::Value).unwrap_or(0..0);
        assert_eq!(&text[r], "true");
        let r = idx.locate("/a/b/1/c", Target::Key).unwrap_or(0..0);
        assert_eq!(&text[r], "\"c\"");
        let r = idx.locate("/a/missing", Target::Value).unwrap_or(0..0);
        assert_eq!(&text[r], "{\"b\": [1, {\"c\": true}]}");
    }
}
