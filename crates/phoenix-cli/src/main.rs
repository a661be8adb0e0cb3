//! `phoenix`: command-line front end. Argument definitions live in `cli`, output in `report`;
//! the work itself is done by the library crates.
//!
//! Streams: data (the model summary, JSON findings, schemas) on stdout; findings in text
//! mode, the count line and errors on stderr.

mod argv;
mod ca_cmd;
mod cli;
mod colour;
mod config;
mod doctor_cmd;
mod failure;
mod graph_cmd;
mod hints;
mod jsonout;
mod lab_cmd;
mod lint;
mod locking;
mod manual;
mod materials;
mod netswitch_cmd;
mod plan_cmd;
mod progress;
mod report;
mod session;
mod setup_cmd;
mod status_cmd;
mod swarm_cmd;
mod sync_cmd;
mod sync_lab;
mod target_cmd;
mod verify_cmd;
mod verify_pve;
mod verify_text;
mod workflow;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command, OutputFormat};
use phoenix_model::{Code, Severity};

/// Exit codes shared by every command (ARCHITECTURE.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    /// `plan --detailed-exitcode`: the plan has changes (Terraform's convention).
    pub const CHANGES: u8 = 2;
    /// Applying failed (the journal says where).
    pub const APPLY_FAILED: u8 = 3;
    /// Another run holds the target's lock (`--lock-timeout` passed, or 0).
    pub const LOCKED: u8 = 4;
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    colour::set(cli.color);
    let argv: Vec<String> = std::env::args().skip(1).collect();
    jsonout::set_requested(jsonout::requested_by(&argv));
    let code = match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Schema(args) => schema(&args),
        Command::Codes => codes(),
        Command::Explain(args) => explain(&args),
        Command::Plan(args) => plan_cmd::plan(&args),
        Command::Render(args) => plan_cmd::render(&args),
        Command::Ca(args) => ca_cmd::run(&args),
        Command::Lab(args) => lab_cmd::run(&args),
        Command::Sync { command } => sync_cmd::run(&command),
        Command::Verify(args) => verify_cmd::run(&args),
        Command::Observe(args) => target_cmd::observe(&args),
        Command::Status(args) => status_cmd::run(&args),
        Command::Apply(args) => sync_cmd::apply_verb(&args),
        Command::Doctor(args) => doctor_cmd::run(&args),
        Command::Graph(args) => graph_cmd::run(&args),
        Command::Setup(args) => setup_cmd::run(&args),
        Command::Swarm(args) => swarm_cmd::run(&args),
        Command::Completions { shell } => manual::completions(shell),
        Command::Man { command } => manual::man(&command),
    };
    jsonout::finish(code);
    ExitCode::from(code)
}

/// The command line, or the exit code of a usage error already reported. clap exits with 2 on
/// usage errors and 0 for --help/--version; a bash verb (`phoenix create 101`) is answered
/// with the phoenix command that does it.
fn parse() -> Result<Cli, u8> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_else(|| "phoenix".into());
    let args: Vec<std::ffi::OsString> = args.collect();
    // `apply` and `plan` take their flags after the verb too (`plan stop 102 --target pve`).
    let verb_command = args
        .first()
        .and_then(|a| a.to_str())
        .filter(|name| matches!(*name, "apply" | "plan"))
        .and_then(|name| cmd.find_subcommand(name));
    let args = match verb_command {
        Some(c) => argv::apply_flags_first(c, args),
        None => args,
    };
    let matches = match cmd.try_get_matches_from_mut(std::iter::once(program).chain(args)) {
        Ok(m) => m,
        Err(e) => {
            if e.kind() == clap::error::ErrorKind::InvalidSubcommand {
                let args: Vec<String> = std::env::args_os()
                    .skip(1)
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                if let Some(tip) = hints::bash_verb(&args) {
                    let _ = writeln!(anstream::stderr(), "{tip}");
                    return Err(exit::USAGE);
                }
            }
            e.exit()
        }
    };
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd).exit())
}

fn validate(args: &cli::ValidateArgs) -> u8 {
    let mut stderr = anstream::stderr();
    if !args.config.is_dir() {
        let what = if args.config.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        let _ = writeln!(
            stderr,
            "error: config directory {} {what}\n  hint: pass the directory holding phoenix_hypervisor_config.json with --config",
            args.config.display()
        );
        return exit::USAGE;
    }
    let policy = match lint::Policy::load(&args.config, &args.allow, &args.deny, args.deny_warnings)
    {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            return exit::USAGE;
        }
    };
    let v = phoenix_model::validate_dir(&args.config);
    let (findings, allowed) = policy.apply(v.findings());
    let mut stdout = std::io::stdout().lock();
    let written = match args.output {
        // One document: the findings and their counts (`--with-counts` adds nothing here).
        OutputFormat::Json => jsonout::print("validate", &report::with_counts(&findings, allowed)),
        OutputFormat::Text => {
            let summary = match &v.desired {
                Some(d) if !args.quiet && !v.has_errors() => {
                    writeln!(stdout, "{}", phoenix_model::summary::render(d).trim_end())
                }
                _ => Ok(()),
            };
            let _ = stdout.flush();
            summary
                .and(report::print_findings(
                    &mut stderr,
                    &findings,
                    &v.sources,
                    allowed,
                ))
                .and_then(|_| skipped_note(&mut stderr, v.checks_skipped))
        }
    };
    if let Err(e) = written {
        // A closed pipe (`phoenix validate | head`) is not a validation failure.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = writeln!(stderr, "error: cannot write output: {e}");
            return exit::FAILED;
        }
    }
    if findings.iter().any(|f| policy.fails(f)) {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// Said once when a file could not be used: the checks across files wait for it.
pub fn skipped_note(stream: &mut dyn Write, skipped: bool) -> std::io::Result<()> {
    if skipped {
        writeln!(
            stream,
            "note: the checks across files were not run, and findings that follow from the errors above are left out; fix those first"
        )?;
    }
    Ok(())
}

fn explain(args: &cli::ExplainArgs) -> u8 {
    let code = match lint::parse_code(&args.code) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(
                anstream::stderr(),
                "error: {e}\n  hint: `phoenix codes` lists every code"
            );
            return exit::USAGE;
        }
    };
    let x = phoenix_model::explain::explain(code);
    let severity = match code.severity() {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = write!(
        std::io::stdout(),
        "{} ({severity}): {}\n\n{}\n\nexample:\n  {}\n\nfix:\n  {}\n",
        code.as_str(),
        code.title(),
        x.meaning,
        x.example,
        x.fix
    );
    exit::OK
}

fn schema(args: &cli::SchemaArgs) -> u8 {
    let schema = match args.file {
        Some(f) => phoenix_model::schema::for_file(f.into()),
        None => phoenix_model::schema::bundle(),
    };
    match serde_json::to_string_pretty(&schema) {
        Ok(s) => {
            let _ = writeln!(std::io::stdout(), "{s}");
            exit::OK
        }
        Err(e) => {
            let _ = writeln!(
                anstream::stderr(),
                "error: cannot serialise the schema: {e}"
            );
            exit::FAILED
        }
    }
}

/// The table in `docs/codes.md` (a test keeps the two equal).
fn codes() -> u8 {
    let mut out = String::from("| code | severity | meaning |\n|---|---|---|\n");
    for c in Code::ALL {
        let severity = match c.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "| `{}` | {severity} | {} |\n",
            c.as_str(),
            c.title()
        ));
    }
    let _ = write!(std::io::stdout(), "{out}");
    exit::OK
}
