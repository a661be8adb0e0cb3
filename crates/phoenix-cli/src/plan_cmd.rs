//! `phoenix plan` and `phoenix render`: what phoenix would do, and the files it would write.

use std::io::Write;
use std::path::Path;

use phoenix_plan::{ObservedState, PkiContext, PlanContext, Request};
use phoenix_render::{FileTarget, RenderOptions};

use crate::cli::{OutputFormat, PlanArgs, RenderArgs};
use crate::{config, exit};

fn request(args: &PlanArgs) -> Request {
    crate::cli::request_of(args.verb.as_ref())
}

/// The CA context from `--ca-dir` (public files only), and now from the system clock.
fn context(
    args: &PlanArgs,
    desired: &phoenix_model::model::DesiredState,
) -> Result<PlanContext, String> {
    let now = phoenix_pki::issue::unix_seconds(std::time::SystemTime::now());
    let Some(dir) = &args.ca_dir else {
        return Ok(PlanContext { now, pki: None });
    };
    let policy = phoenix_pki::RenewalPolicy {
        renew_after_fraction: args.renew_after,
    };
    let ca = phoenix_pki::CaPublic::load(dir).map_err(|e| error_chain(&e))?;
    let pki = PkiContext::from_ca(&ca, desired, policy).map_err(|e| error_chain(&e))?;
    Ok(PlanContext {
        now,
        pki: Some(pki),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn read_observed(path: &Path) -> Result<Observed, String> {
    use phoenix_model::input::{InputKind, read_text};
    let text = read_text(path, InputKind::Config).map_err(|e| e.to_string())?;
    let located =
        |e: serde_json::Error| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column());
    let value: serde_json::Value = serde_json::from_str(&text).map_err(located)?;
    if value.get("format_version").is_some() {
        serde_json::from_str(&text)
            .map(Observed::Export)
            .map_err(located)
    } else {
        serde_json::from_str(&text)
            .map(|s| Observed::State(Box::new(s)))
            .map_err(located)
    }
}

/// The node name offline: --node, else $PROXMOX_VE_NODE, else `pve`.
fn node_name(args: &PlanArgs) -> String {
    args.pve
        .node
        .clone()
        .or_else(|| std::env::var("PROXMOX_VE_NODE").ok())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "pve".into())
}

/// `--observed FILE`: `phoenix observe`'s document (planned as the target plans it) or a
/// bare observed state (docs/observed.md).
enum Observed {
    Export(Box<phoenix_exec::saved::ObservedExport>),
    State(Box<ObservedState>),
}

pub fn plan(args: &PlanArgs) -> u8 {
    if let Some(target) = args.target {
        if args.observed.is_some() {
            crate::failure::error(
                "--observed and --target both say what exists",
                "use --target to observe now, or --observed FILE (from `phoenix observe`) offline",
            );
            return exit::USAGE;
        }
        return crate::target_cmd::plan_on_target(args, target, &request(args));
    }
    let mut stderr = anstream::stderr();
    let json = matches!(args.output, OutputFormat::Json);
    let (desired, ignored) = match config::load_ignoring(&args.config, json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let observed = match &args.observed {
        Some(p) => match read_observed(p) {
            Ok(Observed::Export(export)) => return plan_export(args, &desired, &ignored, &export),
            Ok(Observed::State(o)) => *o,
            Err(e) => {
                let _ = writeln!(
                    stderr,
                    "error: observed state: {e}\n  hint: the format is documented in `phoenix_plan::observed` docs/observed.md"
                );
                return exit::USAGE;
            }
        },
        None => ObservedState::default(),
    };
    // Offline, an unobserved Swarm is an empty one, like the rest of the default empty host.
    let mut observed = observed;
    if observed.swarm.is_none() {
        observed.swarm = Some(phoenix_plan::swarm::SwarmObserved::default());
    }
    let opts = RenderOptions {
        node: node_name(args),
    };
    if !(args.renew_after > 0.0 && args.renew_after <= 1.0) {
        let _ = writeln!(
            stderr,
            "error: --renew-after {} is not in (0, 1]\n  hint: the default is 0.667 (two thirds of the lifetime)",
            args.renew_after
        );
        return exit::USAGE;
    }
    let ctx = match context(args, &desired) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(
                stderr,
                "error: CA: {e}\n  hint: --ca-dir takes a directory made by `phoenix ca init`"
            );
            return exit::FAILED;
        }
    };
    let provision = args
        .provision
        .then(phoenix_plan::provision::ProvisionOptions::default);
    let plan = match phoenix_plan::plan::plan_full(
        &desired,
        &observed,
        &request(args),
        &opts,
        &ctx,
        provision.as_ref(),
    ) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            return exit::FAILED;
        }
    };
    output(args, &plan, &ignored)
}

/// Print `plan` as --output says, what it leaves out, and the exit code.
fn output(
    args: &PlanArgs,
    plan: &phoenix_plan::Plan,
    ignored: &phoenix_model::notyet::Ignored,
) -> u8 {
    let mut stderr = anstream::stderr();
    let mut out = std::io::stdout().lock();
    let written = match args.output {
        OutputFormat::Json => crate::jsonout::print("plan", plan),
        OutputFormat::Text => {
            let color = crate::colour::stdout();
            // What the plan leaves out goes above its summary, which stays the last line.
            let text = phoenix_plan::display::text(plan, color);
            let (body, summary) = text
                .trim_end_matches('\n')
                .rsplit_once('\n')
                .unwrap_or(("", text.trim_end_matches('\n')));
            writeln!(out, "{body}")
                .and_then(|_| write_ignored(&mut out, ignored))
                .and_then(|_| {
                    if ignored.is_empty() {
                        writeln!(out, "{summary}")
                    } else {
                        writeln!(out, "\n{summary}")
                    }
                })
        }
    };
    if matches!(args.output, OutputFormat::Json) {
        // The JSON plan keeps its shape; what it leaves out goes to stderr.
        let _ = write_ignored(&mut stderr, ignored);
    }
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = writeln!(stderr, "error: cannot write output: {e}");
        return exit::FAILED;
    }
    if args.detailed_exitcode && !plan.is_empty() {
        exit::CHANGES
    } else {
        exit::OK
    }
}

/// The plan against `phoenix observe`'s document: the target's own planner
/// ([`phoenix_exec::plan::plan_target`]), so the same actions a sync would run.
fn plan_export(
    args: &PlanArgs,
    desired: &phoenix_model::model::DesiredState,
    ignored: &phoenix_model::notyet::Ignored,
    export: &phoenix_exec::saved::ObservedExport,
) -> u8 {
    let ctx = match context(args, desired) {
        Ok(c) => c,
        Err(e) => {
            crate::failure::error(
                &format!("CA: {e}"),
                "--ca-dir takes a directory made by `phoenix ca init`",
            );
            return exit::FAILED;
        }
    };
    let input = phoenix_exec::plan::PlanInput {
        state: &export.state,
        existing: &export.existing,
        firewall: export.firewall.as_ref(),
        now: ctx.now,
        pki: ctx.pki,
    };
    let req = phoenix_exec::target::SyncRequest {
        request: request(args),
        only: args.only.iter().copied().collect(),
        provision: args.provision,
        dry_run: true,
    };
    let opts = RenderOptions {
        node: node_name(args),
    };
    match phoenix_exec::plan::plan_target(desired, &input, &req, &opts) {
        Ok(p) => output(args, &p.plan, ignored),
        Err(f) => crate::failure::report_failure(&f),
    }
}

/// The end of a plan: what it leaves out although the configuration sets it.
fn write_ignored(
    out: &mut dyn Write,
    ignored: &phoenix_model::notyet::Ignored,
) -> std::io::Result<()> {
    if ignored.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nwill ignore (read, not applied yet; PHX-W002/W032 in `phoenix validate`):"
    )?;
    for line in ignored.lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// Where a rendered file goes under `--out`: `host/<path>` or `guest-<id>/<path>`.
fn out_path(root: &Path, target: FileTarget, path: &str) -> std::path::PathBuf {
    let base = match target {
        FileTarget::Host => root.join("host"),
        FileTarget::Guest(id) => root.join(format!("guest-{id}")),
    };
    base.join(path.trim_start_matches('/'))
}

pub fn render(args: &RenderArgs) -> u8 {
    let mut stderr = anstream::stderr();
    let desired = match config::load(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let opts = RenderOptions {
        node: args.node.clone(),
    };
    let files = match phoenix_render::render_all(&desired, &opts) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(stderr, "error: cannot render the configuration: {e}");
            return exit::FAILED;
        }
    };
    let params = phoenix_render::guestparams::all_guest_params(&desired);
    let mut written = 0usize;
    let mut write = |path: std::path::PathBuf, content: &str| -> Result<(), String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, content)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written += 1;
        Ok(())
    };
    let mut result = Ok(());
    for f in &files {
        result = result.and_then(|_| write(out_path(&args.out, f.target, &f.path), &f.content));
    }
    for (id, p) in &params {
        let json = serde_json::to_string_pretty(p).unwrap_or_default();
        result = result.and_then(|_| {
            write(
                args.out.join("pve").join(format!("{id}.json")),
                &format!("{json}\n"),
            )
        });
    }
    if let Err(e) = result {
        let _ = writeln!(stderr, "error: {e}");
        return exit::FAILED;
    }
    let _ = writeln!(
        std::io::stdout(),
        "wrote {written} files under {}",
        args.out.display()
    );
    exit::OK
}
