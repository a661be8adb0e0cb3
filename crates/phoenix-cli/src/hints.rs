//! Tips for the bash system's habits: `phoenix create 101` is not a command, and the answer
//! names the phoenix command that does it (`phoenix apply --target pve create 101`). Pure.

/// The bash verbs that are verbs of `phoenix apply` now, as `apply` spells them.
const APPLY_VERBS: &[&str] = &[
    "create", "converge", "delete", "start", "stop", "restart", "LetsGo", "shutdown",
];

/// What to run instead of an unknown top-level command `args[0]` of the bash system, with the
/// rest of `args` kept; `None` when `args[0]` is no such verb.
pub fn bash_verb(args: &[String]) -> Option<Suggestion> {
    let (first, rest) = args.split_first()?;
    let has_target = rest
        .iter()
        .any(|a| a == "--target" || a.starts_with("--target="));
    let target: &[&str] = if has_target {
        &[]
    } else {
        &["--target", "pve"]
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let words = |head: &[&str], tail: &[&str]| -> String {
        let mut w: Vec<String> = vec!["phoenix".into()];
        w.extend(head.iter().chain(tail).map(|a| quote(a)));
        w.join(" ")
    };
    if let Some(verb) = APPLY_VERBS.iter().find(|v| v.eq_ignore_ascii_case(first)) {
        let mut head = vec!["apply"];
        head.extend(target);
        head.push(verb);
        let mut preview = vec!["plan", *verb];
        // The guest id, when it follows the verb.
        preview.extend(rest.first().filter(|a| !a.starts_with('-')));
        return Some(Suggestion {
            bash: first.clone(),
            command: words(&head, &rest),
            hint: format!(
                "`{}` shows what it would change first",
                words(&preview, &[])
            ),
        });
    }
    let (instead, hint): (&[&str], &str) = match first.as_str() {
        "health-check" => (
            &["verify"],
            "`phoenix status --target pve` shows what differs from the configuration",
        ),
        _ => return None,
    };
    let mut head = instead.to_vec();
    head.extend(target);
    Some(Suggestion {
        bash: first.clone(),
        command: words(&head, &rest),
        hint: hint.to_string(),
    })
}

/// A replacement for a bash verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The verb as typed.
    pub bash: String,
    /// The phoenix command line to run instead.
    pub command: String,
    pub hint: String,
}

impl std::fmt::Display for Suggestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error: unrecognized subcommand '{}': the bash system's verbs are phoenix commands now\n  did you mean: {}\n  hint: {}",
            self.bash, self.command, self.hint
        )
    }
}

/// `a` as a shell word: bare when it is plain, else in single quotes.
fn quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn command(a: &[&str]) -> Option<String> {
        bash_verb(&args(a)).map(|s| s.command)
    }

    #[test]
    fn apply_verbs_become_apply_commands_with_the_rest_kept() {
        assert_eq!(
            command(&["create", "101"]).as_deref(),
            Some("phoenix apply --target pve create 101")
        );
        assert_eq!(
            command(&["letsgo"]).as_deref(),
            Some("phoenix apply --target pve LetsGo")
        );
        assert_eq!(
            command(&["delete", "102", "--force", "--config", "/etc/my phoenix"]).as_deref(),
            Some("phoenix apply --target pve delete 102 --force --config '/etc/my phoenix'")
        );
        // A target given is kept, not doubled.
        assert_eq!(
            command(&["start", "103", "--target=pve"]).as_deref(),
            Some("phoenix apply start 103 --target=pve")
        );
    }

    #[test]
    fn the_hint_previews_with_plan() {
        let hint = |a: &[&str]| bash_verb(&args(a)).map(|s| s.hint);
        assert_eq!(
            hint(&["create", "101", "--config", "x"]).as_deref(),
            Some("`phoenix plan create 101` shows what it would change first")
        );
        assert_eq!(
            hint(&["LetsGo", "--config", "x"]).as_deref(),
            Some("`phoenix plan LetsGo` shows what it would change first")
        );
    }

    #[test]
    fn health_check_names_its_command() {
        assert_eq!(
            command(&["health-check", "-c", "etc"]).as_deref(),
            Some("phoenix verify --target pve -c etc")
        );
    }

    #[test]
    fn other_words_get_no_tip() {
        assert_eq!(command(&["cretae", "101"]), None);
        assert_eq!(command(&[]), None);
    }

    #[test]
    fn quoting_defuses_shell_words() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
    }
}
