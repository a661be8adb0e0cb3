//! `phoenix`: command-line front end. Argument definitions live in `cli`, output in `report`;
//! the work itself is done by the library crates.

mod cli;
mod report;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, OutputFormat};

/// Exit codes shared by every command (ARCHITECTURE.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Schema(args) => schema(&args),
    };
    ExitCode::from(code)
}

fn validate(args: &cli::ValidateArgs) -> u8 {
    if !args.config.is_dir() {
        eprintln!(
            "error: config directory {} does not exist or is not a directory\n  hint: pass the directory holding phoenix_hypervisor_config.json with --config",
            args.config.display()
        );
        return exit::USAGE;
    }
    let v = phoenix_model::validate_dir(&args.config);
    let findings = v.findings();
    match args.output {
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&findings).unwrap_or_else(|_| "[]".into())
            );
        }
        OutputFormat::Text => {
            report::print_findings(&findings, &v.sources);
            if let Some(d) = &v.desired {
                if !v.has_errors() {
                    print!("{}", phoenix_model::summary::render(d));
                }
            }
            report::print_counts(&findings);
        }
    }
    let errors = findings
        .iter()
        .any(|f| f.severity == phoenix_model::Severity::Error);
    let warnings = findings
        .iter()
        .any(|f| f.severity == phoenix_model::Severity::Warning);
    if errors || (args.deny_warnings && warnings) {
        exit::FAILED
    } else {
        exit::OK
    }
}

fn schema(args: &cli::SchemaArgs) -> u8 {
    let schema = match args.file {
        Some(f) => phoenix_model::schema::for_file(f.into()),
        None => phoenix_model::schema::bundle(),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    );
    exit::OK
}
