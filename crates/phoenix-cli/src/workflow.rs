//! The operator's workflow around the one pipeline (its entry points for `plan --target` and
//! `observe` are [`crate::target_cmd`]'s): printing the plan or the observation, saved plans
//! (`--out`, `sync all --plan`), asking before a node changes, and the exit code of a dry run.
//! Terminal and file I/O only.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use phoenix_exec::saved::{ObservedExport, SavedPlan};
use phoenix_exec::target::{Failure, Stage, SyncRequest};
use phoenix_plan::action::Effect;
use phoenix_plan::plan::Plan;

use crate::cli::{OutputFormat, SyncAllArgs};
use crate::exit;
use crate::failure::error;

/// What a run of the pipeline is for.
pub(crate) enum Mode<'a> {
    /// `sync all` / `apply`: apply (unless `--dry-run`).
    Sync,
    /// `plan --target`: print the plan, save it with `--out`.
    Plan {
        out: Option<&'a Path>,
        detailed: bool,
    },
    /// `observe --target`: print the observation.
    Observe,
}

impl Mode<'_> {
    /// Observe and plan only?
    pub fn dry(&self, args: &SyncAllArgs) -> bool {
        !matches!(self, Mode::Sync) || args.dry_run
    }
}

/// The saved plan of `--plan FILE` (read before anything is contacted).
pub(crate) fn read_saved(args: &SyncAllArgs) -> Result<Option<SavedPlan>, u8> {
    let Some(path) = &args.plan else {
        return Ok(None);
    };
    SavedPlan::read(path)
        .map(Some)
        .map_err(|f| crate::failure::report_failure(&f))
}

fn digest_of(config: &Path) -> Result<String, Failure> {
    phoenix_exec::saved::config_digest(config).map_err(|e| {
        Failure::new(
            Stage::Refused,
            format!("cannot read the configuration {}: {e}", config.display()),
            "--config names the configuration directory",
        )
    })
}

/// Does `plan` delete or stop something (what `apply` asks about)?
fn destructive(plan: &Plan) -> bool {
    plan.actions().any(|a| {
        a.effect() == Effect::Delete || matches!(a, phoenix_plan::Action::StopGuest { .. })
    })
}

/// What [`phoenix_exec::target::sync_all_gated`] asks before applying: a saved plan still
/// holds; on a node, the operator agrees (`--yes`, a saved plan, or a `y` on a terminal).
/// `ask`: this run changes a node and should ask.
pub(crate) fn gate<'a>(
    args: &'a SyncAllArgs,
    saved: Option<&'a SavedPlan>,
    req: &'a SyncRequest,
    ask: bool,
    destructive_only: bool,
) -> impl FnMut(&Plan, &ObservedExport) -> Result<(), Failure> + 'a {
    move |plan, observed| {
        if let Some(saved) = saved {
            let digest = digest_of(&args.config)?;
            return saved.check(plan, observed, req, &digest);
        }
        if !ask || args.yes || plan.is_empty() || (destructive_only && !destructive(plan)) {
            return Ok(());
        }
        let node = observed.target.trim_start_matches("pve ");
        let n = plan.actions().count() + plan.swarm.len();
        let color = crate::colour::stdout();
        confirm(n, node, &phoenix_plan::display::text(plan, color))
    }
}

/// Show `shown` and ask "Apply these N changes to NODE? [y/N]" on a terminal; refused (with
/// the ways around it) when stdin or stdout is not one, or the answer is not yes.
pub(crate) fn confirm(n: usize, node: &str, shown: &str) -> Result<(), Failure> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(Failure::new(
            Stage::Refused,
            format!(
                "refusing to apply {} to {node} without confirmation: not a terminal",
                crate::report::count(n, "change")
            ),
            "pass --yes to apply without asking, --dry-run to see the plan, or save it with `phoenix plan --target pve --out FILE` and apply that with `--plan FILE`",
        ));
    }
    let mut out = std::io::stdout().lock();
    let these = if n == 1 {
        "this change".to_string()
    } else {
        format!("these {n} changes")
    };
    let _ = write!(out, "{shown}\nApply {these} to {node}? [y/N] ");
    let _ = out.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Failure::new(
            Stage::Refused,
            format!(
                "not applied: the operator did not confirm {} to {node}",
                crate::report::count(n, "change")
            ),
            "answer y to apply, or pass --yes",
        ))
    }
}

/// The end of a `plan --target` or `observe` run: print the plan (or the observation), save
/// it with `--out`, and the exit code.
pub(crate) fn finish_dry(
    mode: &Mode<'_>,
    args: &SyncAllArgs,
    req: &SyncRequest,
    plan: &Plan,
    observed: &ObservedExport,
) -> u8 {
    let mut out = std::io::stdout().lock();
    match mode {
        Mode::Observe => {
            let text = serde_json::to_string_pretty(observed).unwrap_or_default();
            let _ = writeln!(out, "{text}");
            exit::OK
        }
        Mode::Plan {
            out: file,
            detailed,
        } => {
            let written = match args.output {
                OutputFormat::Json => crate::jsonout::print("plan", plan),
                OutputFormat::Text => {
                    let color = crate::colour::stdout();
                    write!(out, "{}", phoenix_plan::display::text(plan, color))
                }
            };
            if let Err(e) = written
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                error(&format!("cannot write output: {e}"), "check stdout");
                return exit::FAILED;
            }
            if let Some(path) = file
                && let Err(code) = save(path, args, req, plan, observed)
            {
                return code;
            }
            dry_exit(plan, *detailed)
        }
        Mode::Sync => dry_exit(plan, args.detailed_exitcode),
    }
}

fn save(
    path: &Path,
    args: &SyncAllArgs,
    req: &SyncRequest,
    plan: &Plan,
    observed: &ObservedExport,
) -> Result<(), u8> {
    let digest = digest_of(&args.config).map_err(|f| crate::failure::report_failure(&f))?;
    let saved = SavedPlan::new(plan, observed, req, digest);
    let text = serde_json::to_string_pretty(&saved).unwrap_or_default();
    std::fs::write(path, format!("{text}\n")).map_err(|e| {
        error(
            &format!("cannot write the plan to {}: {e}", path.display()),
            "--out names a file in a writable directory",
        );
        exit::FAILED
    })?;
    let _ = writeln!(
        anstream::stderr(),
        "saved the plan ({}) to {}; apply it with `phoenix sync all --target {} --plan {}`",
        crate::report::count(saved.actions.len(), "action"),
        path.display(),
        observed.target.split(' ').next().unwrap_or("pve"),
        path.display()
    );
    Ok(())
}

/// A dry run's exit: 0, or 2 for changes with `--detailed-exitcode`.
pub(crate) fn dry_exit(plan: &Plan, detailed: bool) -> u8 {
    if detailed && !plan.is_empty() {
        exit::CHANGES
    } else {
        exit::OK
    }
}

/// The pipeline's failure: as [`crate::failure::report_failure`], except that a run that
/// changes nothing (a dry run, `plan --target`, `observe`) never exits 3 (apply failed): an
/// observation that failed is 1 there.
pub(crate) fn report_failure(f: &Failure, dry_run: bool) -> u8 {
    let code = crate::failure::report_failure(f);
    if dry_run && code == exit::APPLY_FAILED {
        exit::FAILED
    } else {
        code
    }
}
