//! Compose files, as read by the loader, parsed as YAML; a syntax error is located at its own
//! line:col with the file as snippet. No I/O.

use std::path::Path;

use serde_json::Value;

use crate::diag::file_diag;
use crate::diag::{Code, Diagnostics, range_diag};
use crate::source::SourceMap;

/// Parse the compose file `path`, read as `bytes` (bounded, by the loader).
pub(crate) fn parse_yaml(
    path: &Path,
    bytes: Vec<u8>,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Option<Value> {
    let Ok(text) = String::from_utf8(bytes) else {
        file_diag(
            diags,
            Code::YamlSyntax,
            path,
            format!("{} is not UTF-8 text", path.display()),
            "save the compose file as UTF-8",
        );
        return None;
    };
    match serde_saphyr::from_str::<Value>(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            let hint =
                "fix the compose file; `docker stack config -c FILE` shows what Docker makes of it";
            let message = format!("invalid YAML: {}", yaml_message(&e.to_string()));
            match e.location() {
                Some(l) => {
                    let at = offset_of(&text, l.line() as usize, l.column() as usize);
                    let end = text[at..]
                        .char_indices()
                        .nth(1)
                        .map_or(text.len(), |(i, _)| at + i);
                    let file = sources.add(path.to_path_buf(), text);
                    diags.push(range_diag(Code::YamlSyntax, file, at..end, message, hint));
                }
                None => file_diag(diags, Code::YamlSyntax, path, message, hint),
            }
            None
        }
    }
}

/// The first line of a YAML error, without the position the finding shows anyway.
fn yaml_message(s: &str) -> String {
    let mut first = s.lines().next().unwrap_or(s).trim();
    first = first.strip_prefix("error:").unwrap_or(first).trim_start();
    if first.starts_with("line ")
        && let Some((_, rest)) = first.split_once(": ")
    {
        first = rest;
    }
    let cut = first.find(" at line ").unwrap_or(first.len());
    first[..cut].trim_end_matches('.').to_string()
}

/// Byte offset of 1-based `line` and `column` (in characters), clamped to the text.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[start.min(text.len())..];
    let line_text = rest.split('\n').next().unwrap_or("");
    start
        + line_text
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(line_text.len(), |(i, _)| i)
}
