//! `phoenix apply`'s and `phoenix plan`'s flags after the verb (`phoenix apply create 101
//! --target pve`): moved in front of the verb before clap parses, so every flag is checked in one place, its
//! `requires` and `conflicts_with` included (global flags would be checked per level). Pure.

use std::ffi::OsString;

/// `args` (without the program name) with the flags of `apply` that follow its verb moved in
/// front of it; any other command line unchanged. `apply` is the built `phoenix apply` (or
/// `phoenix plan`) command.
pub fn apply_flags_first(apply: &clap::Command, args: Vec<OsString>) -> Vec<OsString> {
    if args.first().and_then(|a| a.to_str()) != Some(apply.get_name()) {
        return args;
    }
    // The verb: the first word after apply's own flags and their values.
    let mut i = 1;
    let verb = loop {
        let Some(word) = args.get(i).and_then(|a| a.to_str()) else {
            return args;
        };
        if word == "--" {
            return args;
        }
        match flag(apply, word) {
            Some(f) => i += 1 + usize::from(f.separate_value),
            None if word.starts_with('-') && word != "-" => i += 1,
            None => break i,
        }
    };
    let mut moved = Vec::new();
    let mut kept = Vec::new();
    let mut j = verb + 1;
    while j < args.len() {
        let word = args[j].to_str();
        if word == Some("--") {
            kept.extend_from_slice(&args[j..]);
            break;
        }
        match word.and_then(|w| flag(apply, w)) {
            Some(f) => {
                let end = (j + 1 + usize::from(f.separate_value)).min(args.len());
                moved.extend_from_slice(&args[j..end]);
                j = end;
            }
            None => {
                kept.push(args[j].clone());
                j += 1;
            }
        }
    }
    let mut out = args[..verb].to_vec();
    out.extend(moved);
    out.push(args[verb].clone());
    out.extend(kept);
    out
}

/// A flag of `apply` itself (not help or version, which belong to where they are typed).
struct Flag {
    /// Its value is the next word (`--config DIR`, `-c DIR`; not `--config=DIR`, `-cDIR`).
    separate_value: bool,
}

fn flag(apply: &clap::Command, word: &str) -> Option<Flag> {
    let (arg, attached) = if let Some(long) = word.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((n, _)) => (n, true),
            None => (long, false),
        };
        let arg = apply.get_arguments().find(|a| {
            a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
        })?;
        (arg, value)
    } else {
        let mut chars = word.strip_prefix('-')?.chars();
        let short = chars.next()?;
        let arg = apply.get_arguments().find(|a| {
            a.get_short() == Some(short)
                || a.get_all_short_aliases()
                    .is_some_and(|al| al.contains(&short))
        })?;
        (arg, chars.next().is_some())
    };
    if matches!(
        arg.get_action(),
        clap::ArgAction::Help
            | clap::ArgAction::HelpShort
            | clap::ArgAction::HelpLong
            | clap::ArgAction::Version
    ) {
        return None;
    }
    Some(Flag {
        separate_value: arg.get_action().takes_values() && !attached,
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn reorder(args: &str) -> String {
        let mut cmd = crate::cli::Cli::command();
        cmd.build();
        let apply = cmd
            .find_subcommand("apply")
            .unwrap_or_else(|| panic!("no apply"));
        let args = args.split(' ').map(OsString::from).collect();
        let out: Vec<String> = apply_flags_first(apply, args)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        out.join(" ")
    }

    #[test]
    fn flags_after_the_verb_move_in_front_of_it() {
        assert_eq!(
            reorder("apply create 101 --target pve -c etc --dry-run"),
            "apply --target pve -c etc --dry-run create 101"
        );
        assert_eq!(
            reorder("apply --target pve delete 102 --force --config=etc"),
            "apply --target pve --config=etc delete 102 --force"
        );
        assert_eq!(
            reorder("apply -cetc LetsGo --only guests,firewall"),
            "apply -cetc --only guests,firewall LetsGo"
        );
    }

    #[test]
    fn verb_flags_help_and_the_rest_after_double_dash_stay() {
        assert_eq!(
            reorder("apply create --help --target pve"),
            "apply --target pve create --help"
        );
        assert_eq!(
            reorder("apply start 101 -- --target pve"),
            "apply start 101 -- --target pve"
        );
        // A value that looks like a verb is not taken for one.
        assert_eq!(
            reorder("apply --config create start 101 --target pve"),
            "apply --config create --target pve start 101"
        );
    }

    #[test]
    fn other_command_lines_are_left_alone() {
        assert_eq!(
            reorder("plan create 101 --config x"),
            "plan create 101 --config x"
        );
        assert_eq!(reorder("apply --target pve"), "apply --target pve");
        assert_eq!(reorder("apply --target"), "apply --target");
    }
}
