//! Which warnings an operator allows (hidden, counted apart) or denies (exit 1): from
//! `--allow`/`--deny` and the configuration directory's `phoenix-lint.json`. I/O: reads that
//! file only.

use std::collections::BTreeSet;
use std::path::Path;

use phoenix_model::{Code, Finding, Severity};

/// The list file kept next to the configuration.
pub const LINT_FILE: &str = "phoenix-lint.json";

/// The resolved policy.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub allow: BTreeSet<Code>,
    pub deny: BTreeSet<Code>,
    pub deny_warnings: bool,
}

/// `phoenix-lint.json`: `{"allow": ["PHX-W002"], "deny": ["PHX-W010"]}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LintFile {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

/// A code as an operator writes it: `PHX-W002`, `phx-w002` or `W002`.
pub fn parse_code(s: &str) -> Result<Code, String> {
    let t = s.trim().to_ascii_uppercase();
    let t = if t.starts_with("PHX-") {
        t
    } else {
        format!("PHX-{t}")
    };
    Code::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == t)
        .ok_or_else(|| format!("`{}` is not a diagnostic code", s.escape_debug()))
}

impl Policy {
    /// The list file in `dir` (if any) with the flags on top. A flag wins over the file: a
    /// code denied on the command line is not allowed by the file, and the other way round.
    pub fn load(
        dir: &Path,
        allow: &[String],
        deny: &[String],
        deny_warnings: bool,
    ) -> Result<Policy, String> {
        let mut p = Policy {
            deny_warnings,
            ..Policy::default()
        };
        let path = dir.join(LINT_FILE);
        match phoenix_model::input::read_text(&path, phoenix_model::input::InputKind::Config) {
            Ok(text) => {
                let file: LintFile = serde_json::from_str(&text).map_err(|e| {
                    format!(
                        "{}:{}:{}: {e}\n  hint: the file holds {{\"allow\": [\"PHX-W002\"], \"deny\": [\"PHX-W010\"]}}",
                        path.display(),
                        e.line(),
                        e.column()
                    )
                })?;
                for (list, into) in [(&file.allow, &mut p.allow), (&file.deny, &mut p.deny)] {
                    for c in list {
                        into.insert(parse_code(c).map_err(|m| {
                            format!(
                                "{}: {m}\n  hint: `phoenix codes` lists every code",
                                path.display()
                            )
                        })?);
                    }
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(format!("{e}\n  hint: {}", e.hint())),
        }
        for c in allow {
            let code = parse_code(c).map_err(|m| format!("--allow: {m}"))?;
            p.deny.remove(&code);
            p.allow.insert(code);
        }
        for c in deny {
            let code = parse_code(c).map_err(|m| format!("--deny: {m}"))?;
            p.allow.remove(&code);
            p.deny.insert(code);
        }
        if let Some(e) = p.allow.iter().find(|c| c.severity() == Severity::Error) {
            return Err(format!(
                "{} is an error and cannot be allowed\n  hint: errors stop every later stage; fix the configuration instead",
                e.as_str()
            ));
        }
        Ok(p)
    }

    pub fn allows(&self, f: &Finding) -> bool {
        self.allow.iter().any(|c| c.as_str() == f.code)
    }

    /// Whether `f` (not allowed) makes the run fail.
    pub fn fails(&self, f: &Finding) -> bool {
        f.severity == Severity::Error
            || self.deny_warnings
            || self.deny.iter().any(|c| c.as_str() == f.code)
    }

    /// Split `findings` into those shown and the number allowed.
    pub fn apply(&self, findings: Vec<Finding>) -> (Vec<Finding>, usize) {
        let before = findings.len();
        let shown: Vec<Finding> = findings.into_iter().filter(|f| !self.allows(f)).collect();
        let allowed = before - shown.len();
        (shown, allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_loosely() {
        assert_eq!(parse_code("phx-w002"), Ok(Code::NotSupportedYet));
        assert_eq!(parse_code("W002"), Ok(Code::NotSupportedYet));
        assert!(parse_code("W999").is_err());
    }

    #[test]
    fn flags_win_over_the_file_and_errors_cannot_be_allowed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join(LINT_FILE),
            r#"{"allow": ["PHX-W002", "W010"], "deny": ["PHX-W003"]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = Policy::load(dir.path(), &["W003".into()], &["W010".into()], false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(p.allow.contains(&Code::NotSupportedYet));
        assert!(p.allow.contains(&Code::UnusedKey));
        assert!(p.deny.contains(&Code::StaleRuleAddress));
        assert!(!p.allow.contains(&Code::StaleRuleAddress));
        assert!(Policy::load(dir.path(), &["E002".into()], &[], false).is_err());
    }
}
