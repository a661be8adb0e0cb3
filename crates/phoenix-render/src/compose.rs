//! Compose-file variable interpolation, as the Compose specification defines it
//! (<https://github.com/compose-spec/compose-spec/blob/main/12-interpolation.md>): every string
//! *value* of a parsed compose file (never a key) is tokenised and evaluated against the stack
//! environment's variables.
//!
//! Forms: `$VAR`, `${VAR}`, `${VAR:-default}` (default when unset or empty), `${VAR-default}`
//! (default when unset), `${VAR:?message}` / `${VAR?message}` (error when unset or empty / unset),
//! `${VAR:+alt}` / `${VAR+alt}` (alt when set and non-empty / set, else empty), `$$` for a
//! literal `$`. Defaults, messages and alternatives are themselves interpolated, so
//! `${A:-${B:-x}}` nests; they are evaluated only when used. Unlike `docker compose`, which
//! substitutes an empty string with a warning, a variable that is unset and has no default is
//! an error: a stack deployed with a silently empty setting is worse than one not deployed.
//!
//! A real tokenizer and parser (no pattern replacement): the text is parsed into pieces first,
//! so a malformed expression (`${`, `${}`, `${1A}`, a lone `$`) is an error even in a branch that
//! is not used. Errors carry the JSON pointer of the value, the 1-based column (in characters)
//! of the offending `$` and a hint; they never contain a variable's value (stack variables
//! are secrets).
//! No I/O: values in, values out.

use std::collections::BTreeMap;

use serde_json::Value;

/// What went wrong in one string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("variable `{name}` is not set and has no default")]
    Unset { name: String },
    #[error("required variable `{name}` is missing a value: {message}")]
    Required { name: String, message: String },
    #[error("`${{` is not closed by `}}`")]
    Unterminated,
    #[error("`${{}}` names no variable")]
    EmptyName,
    #[error("`{found}` is not a variable name")]
    BadName { found: String },
    #[error("`$` is followed by neither a name, `{{` nor `$`")]
    LoneDollar,
    #[error("unexpected `{found}` after the variable name `{name}`")]
    BadOperator { name: String, found: String },
}

impl Problem {
    /// A line telling the user how to fix it.
    pub fn hint(&self) -> String {
        match self {
            Problem::Unset { name } => format!(
                "add `{name}` to the environment's `variables`, or give a default: `${{{name}:-value}}`"
            ),
            Problem::Required { name, .. } => {
                format!("add `{name}` (non-empty) to the environment's `variables`")
            }
            Problem::Unterminated => {
                "close the expression with `}`, or write `$$` for a literal `$`".into()
            }
            Problem::EmptyName | Problem::BadName { .. } => {
                "names are letters, digits and `_`, not starting with a digit".into()
            }
            Problem::LoneDollar => "write `$$` for a literal `$`".into(),
            Problem::BadOperator { .. } => {
                "after the name only `:-`, `-`, `:?`, `?`, `:+`, `+` or `}` may follow".into()
            }
        }
    }
}

/// An interpolation error in the value at `pointer` (RFC 6901), at `column` (1-based, in
/// characters) of that string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: column {column}: {problem}")]
pub struct InterpolationError {
    pub pointer: String,
    pub column: usize,
    #[source]
    pub problem: Problem,
}

impl InterpolationError {
    pub fn hint(&self) -> String {
        self.problem.hint()
    }
}

/// How an operator treats the variable (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `:-` (`colon` = true) or `-`.
    Default { colon: bool },
    /// `:?` or `?`.
    Required { colon: bool },
    /// `:+` or `+`.
    Alternative { colon: bool },
}

/// One parsed piece of a string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var {
        name: String,
        /// Column of the `$`.
        column: usize,
        op: Option<(Op, Vec<Piece>)>,
    },
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
}

type Failure = (usize, Problem);

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Pieces up to the end, or (when `nested`) up to the `}` closing the enclosing `${…}`,
    /// which is consumed.
    fn sequence(&mut self, nested: bool, open: usize) -> Result<Vec<Piece>, Failure> {
        let mut out = Vec::new();
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else {
                if nested {
                    return Err((open, Problem::Unterminated));
                }
                break;
            };
            if c == '}' && nested {
                self.pos += 1;
                break;
            }
            if c != '$' {
                text.push(c);
                self.pos += 1;
                continue;
            }
            let column = self.pos + 1;
            self.pos += 1;
            match self.peek() {
                Some('$') => {
                    text.push('$');
                    self.pos += 1;
                }
                Some('{') => {
                    self.pos += 1;
                    if !text.is_empty() {
                        out.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    out.push(self.braced(column)?);
                }
                Some(c) if is_name_start(c) => {
                    if !text.is_empty() {
                        out.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    let name = self.name();
                    out.push(Piece::Var {
                        name,
                        column,
                        op: None,
                    });
                }
                _ => return Err((column, Problem::LoneDollar)),
            }
        }
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        Ok(out)
    }

    fn name(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// After `${`: name, optional operator and its word, `}`.
    fn braced(&mut self, column: usize) -> Result<Piece, Failure> {
        let Some(first) = self.peek() else {
            return Err((column, Problem::Unterminated));
        };
        if first == '}' {
            return Err((column, Problem::EmptyName));
        }
        if !is_name_start(first) {
            // Report the whole would-be name: up to `}` or an operator character.
            let start = self.pos;
            let mut end = start;
            while self
                .chars
                .get(end)
                .is_some_and(|c| !matches!(c, '}' | ':' | '-' | '?' | '+' | '$'))
            {
                end += 1;
            }
            let found: String = self.chars[start..end.max(start + 1)].iter().collect();
            return Err((column, Problem::BadName { found }));
        }
        let name = self.name();
        let colon = self.peek() == Some(':');
        if colon {
            self.pos += 1;
        }
        let op = match self.peek() {
            Some('}') if !colon => {
                self.pos += 1;
                return Ok(Piece::Var {
                    name,
                    column,
                    op: None,
                });
            }
            Some('-') => Op::Default { colon },
            Some('?') => Op::Required { colon },
            Some('+') => Op::Alternative { colon },
            None => return Err((column, Problem::Unterminated)),
            Some(c) => {
                let found = if colon {
                    format!(":{c}")
                } else {
                    c.to_string()
                };
                return Err((column, Problem::BadOperator { name, found }));
            }
        };
        self.pos += 1;
        let word = self.sequence(true, column)?;
        Ok(Piece::Var {
            name,
            column,
            op: Some((op, word)),
        })
    }
}

fn parse(s: &str) -> Result<Vec<Piece>, Failure> {
    let chars: Vec<char> = s.chars().collect();
    Parser {
        chars: &chars,
        pos: 0,
    }
    .sequence(false, 0)
}

fn eval(
    pieces: &[Piece],
    vars: &BTreeMap<String, String>,
    out: &mut String,
) -> Result<(), Failure> {
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var { name, column, op } => {
                let value = vars.get(name);
                let set_nonempty = |colon: bool| match value {
                    None => false,
                    Some(v) => !colon || !v.is_empty(),
                };
                match op {
                    None => match value {
                        Some(v) => out.push_str(v),
                        None => {
                            return Err((*column, Problem::Unset { name: name.clone() }));
                        }
                    },
                    Some((Op::Default { colon }, word)) => match value {
                        Some(v) if set_nonempty(*colon) => out.push_str(v),
                        _ => eval(word, vars, out)?,
                    },
                    Some((Op::Required { colon }, word)) => match value {
                        Some(v) if set_nonempty(*colon) => out.push_str(v),
                        _ => {
                            let mut message = String::new();
                            eval(word, vars, &mut message)?;
                            if message.is_empty() {
                                message = "(no message)".into();
                            }
                            return Err((
                                *column,
                                Problem::Required {
                                    name: name.clone(),
                                    message,
                                },
                            ));
                        }
                    },
                    Some((Op::Alternative { colon }, word)) => {
                        if set_nonempty(*colon) {
                            eval(word, vars, out)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Interpolate one string; on error the 1-based column and what is wrong. Pure.
pub fn interpolate_str(
    s: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, (usize, Problem)> {
    let pieces = parse(s)?;
    let mut out = String::with_capacity(s.len());
    eval(&pieces, vars, &mut out)?;
    Ok(out)
}

/// `base` + `/` + `token` escaped as RFC 6901 says (`~` → `~0`, `/` → `~1`).
pub fn pointer_push(base: &str, token: &str) -> String {
    format!("{base}/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// Interpolate every string value of `v` (recursively; keys are left alone). `pointer` is the
/// JSON pointer of `v` itself (`""` for a whole document). Pure.
pub fn interpolate(
    v: &Value,
    vars: &BTreeMap<String, String>,
    pointer: &str,
) -> Result<Value, InterpolationError> {
    Ok(match v {
        Value::String(s) => {
            Value::String(interpolate_str(s, vars).map_err(|(column, problem)| {
                InterpolationError {
                    pointer: pointer.to_string(),
                    column,
                    problem,
                }
            })?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| interpolate(item, vars, &pointer_push(pointer, &i.to_string())))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, item)| {
                    Ok((
                        k.clone(),
                        interpolate(item, vars, &pointer_push(pointer, k))?,
                    ))
                })
                .collect::<Result<_, InterpolationError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use serde_json::json;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("TZ".to_string(), "America/New_York".to_string()),
            ("EMPTY".to_string(), String::new()),
            ("B".to_string(), "bee".to_string()),
        ])
    }

    fn ok(s: &str) -> String {
        interpolate_str(s, &vars()).unwrap()
    }

    fn err(s: &str) -> (usize, Problem) {
        interpolate_str(s, &vars()).unwrap_err()
    }

    #[test]
    fn plain_text_and_escapes() {
        assert_eq!(ok("no variables"), "no variables");
        assert_eq!(ok(""), "");
        assert_eq!(ok("cost $$5"), "cost $5");
        assert_eq!(ok("$$TZ"), "$TZ");
        assert_eq!(ok("$${TZ}"), "${TZ}");
        assert_eq!(ok("a } b {"), "a } b {");
    }

    #[test]
    fn bare_and_braced() {
        assert_eq!(ok("$TZ"), "America/New_York");
        assert_eq!(ok("tz=$TZ!"), "tz=America/New_York!");
        assert_eq!(ok("${TZ}"), "America/New_York");
        assert_eq!(ok("x${B}y"), "xbeey");
        assert_eq!(ok("$B$B"), "beebee");
        assert_eq!(ok("$EMPTY"), "");
        // The bare form takes the longest name.
        assert_eq!(err("$Bx").1, Problem::Unset { name: "Bx".into() });
    }

    #[test]
    fn defaults() {
        assert_eq!(ok("${NOPE:-fallback}"), "fallback");
        assert_eq!(ok("${EMPTY:-fallback}"), "fallback");
        assert_eq!(ok("${TZ:-fallback}"), "America/New_York");
        assert_eq!(ok("${NOPE-fallback}"), "fallback");
        assert_eq!(ok("${EMPTY-fallback}"), "");
        assert_eq!(ok("${NOPE:-}"), "");
        assert_eq!(ok("${NOPE:-a b:c-d}"), "a b:c-d");
        assert_eq!(ok("${NOPE:-$$}"), "$");
    }

    #[test]
    fn nested_defaults() {
        assert_eq!(ok("${A:-${B}}"), "bee");
        assert_eq!(ok("${A:-${C:-deep}}"), "deep");
        assert_eq!(ok("${A:-x${B}y}z"), "xbeeyz");
        assert_eq!(ok("${A:-$B}"), "bee");
        // Unused branches are not evaluated, but are parsed.
        assert_eq!(ok("${TZ:-${UNSET}}"), "America/New_York");
        assert_eq!(err("${TZ:-${}}").1, Problem::EmptyName);
    }

    #[test]
    fn required() {
        assert_eq!(ok("${TZ:?need it}"), "America/New_York");
        assert_eq!(ok("${EMPTY?need it}"), "");
        assert_eq!(
            err("x ${NOPE:?set the zone}"),
            (
                3,
                Problem::Required {
                    name: "NOPE".into(),
                    message: "set the zone".into()
                }
            )
        );
        assert_eq!(
            err("${EMPTY:?no ${B}}").1,
            Problem::Required {
                name: "EMPTY".into(),
                message: "no bee".into()
            }
        );
        assert!(matches!(err("${NOPE?}").1, Problem::Required { .. }));
    }

    #[test]
    fn alternatives() {
        assert_eq!(ok("${TZ:+set}"), "set");
        assert_eq!(ok("${EMPTY:+set}"), "");
        assert_eq!(ok("${EMPTY+set}"), "set");
        assert_eq!(ok("${NOPE+set}"), "");
        assert_eq!(ok("${NOPE:+${UNSET}}"), "");
        assert_eq!(ok("${B:+<${B}>}"), "<bee>");
    }

    #[test]
    fn errors_with_columns() {
        assert_eq!(
            err("${NOPE}"),
            (
                1,
                Problem::Unset {
                    name: "NOPE".into()
                }
            )
        );
        assert_eq!(
            err("ab $NOPE"),
            (
                4,
                Problem::Unset {
                    name: "NOPE".into()
                }
            )
        );
        assert_eq!(err("ab ${"), (4, Problem::Unterminated));
        assert_eq!(err("${TZ"), (1, Problem::Unterminated));
        assert_eq!(err("${A:-x"), (1, Problem::Unterminated));
        assert_eq!(err("é ${}"), (3, Problem::EmptyName));
        assert_eq!(err("${1A}"), (1, Problem::BadName { found: "1A".into() }));
        assert_eq!(err("${ A}"), (1, Problem::BadName { found: " A".into() }));
        assert_eq!(err("price $5"), (7, Problem::LoneDollar));
        assert_eq!(err("end $"), (5, Problem::LoneDollar));
        assert_eq!(
            err("${A!x}"),
            (
                1,
                Problem::BadOperator {
                    name: "A".into(),
                    found: "!".into()
                }
            )
        );
        assert_eq!(
            err("${A:x}").1,
            Problem::BadOperator {
                name: "A".into(),
                found: ":x".into()
            }
        );
        for (s, _) in [("${NOPE}", 0), ("$5", 0), ("${", 0)] {
            assert!(!err(s).1.hint().is_empty());
        }
    }

    #[test]
    fn whole_documents_keep_keys_and_report_pointers() {
        let doc = json!({
            "services": {"web/$x": {"environment": {"TZ": "${TZ}"}, "command": ["a", "$$B", 3, true, null]}}
        });
        let out = interpolate(&doc, &vars(), "").unwrap();
        assert_eq!(
            out,
            json!({
                "services": {"web/$x": {"environment": {"TZ": "America/New_York"}, "command": ["a", "$B", 3, true, null]}}
            })
        );
        let bad = json!({"services": {"a~b": {"command": ["ok", "x ${MISSING}"]}}});
        let e = interpolate(&bad, &vars(), "").unwrap_err();
        assert_eq!(e.pointer, "/services/a~0b/command/1");
        assert_eq!(e.column, 3);
        assert_eq!(
            e.to_string(),
            "/services/a~0b/command/1: column 3: variable `MISSING` is not set and has no default"
        );
        assert!(e.hint().contains("MISSING"));
    }

    #[test]
    fn errors_never_show_values() {
        let secret = BTreeMap::from([("PASS".to_string(), "hunter2".to_string())]);
        let e = interpolate(&json!({"a": "${PASS} ${OTHER}"}), &secret, "").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        assert!(!format!("{e:?}").contains("hunter2"));
    }
}
