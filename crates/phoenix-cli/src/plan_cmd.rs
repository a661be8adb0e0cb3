//! `phoenix plan` and `phoenix render`: what phoenix would do, and the files it would write.

use std::io::{IsTerminal, Write};
use std::path::Path;

use phoenix_plan::{ObservedState, Request};
use phoenix_render::{FileTarget, RenderOptions};

use crate::cli::{OutputFormat, PlanArgs, PlanVerb, RenderArgs};
use crate::{config, exit};

fn request(args: &PlanArgs) -> Request {
    match &args.verb {
        None | Some(PlanVerb::Sync) => Request::SyncAll,
        Some(PlanVerb::Create { id }) => Request::Create(*id),
        Some(PlanVerb::Converge { id }) => Request::Converge(*id),
        Some(PlanVerb::Delete { id, force }) => Request::Delete {
            id: *id,
            force: *force,
        },
        Some(PlanVerb::Start { id }) => Request::Start(*id),
        Some(PlanVerb::Stop { id }) => Request::Stop(*id),
        Some(PlanVerb::Restart { id }) => Request::Restart(*id),
        Some(PlanVerb::LetsGo) => Request::LetsGo,
    }
}

fn read_observed(path: &Path) -> Result<ObservedState, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))
}

pub fn plan(args: &PlanArgs) -> u8 {
    let mut stderr = anstream::stderr();
    let desired = match config::load(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let observed = match &args.observed {
        Some(p) => match read_observed(p) {
            Ok(o) => o,
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
    let opts = RenderOptions {
        node: args.node.clone(),
    };
    let plan = match phoenix_plan::plan(&desired, &observed, &request(args), &opts) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            return exit::FAILED;
        }
    };
    let mut out = std::io::stdout().lock();
    let written = match args.output {
        OutputFormat::Json => serde_json::to_string_pretty(&plan)
            .map_err(std::io::Error::other)
            .and_then(|s| writeln!(out, "{s}")),
        OutputFormat::Text => {
            let color = std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            write!(out, "{}", phoenix_plan::display::text(&plan, color))
        }
    };
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
