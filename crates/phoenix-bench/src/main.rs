//! `phoenix-bench`: generate large synthetic configurations (`gen`) and time
//! `phoenix_model::validate_dir` on a directory in-process (`validate`). Figures go in
//! `docs/benchmarks.md`, never into test assertions. I/O: writes the generated files, reads
//! the configuration, prints to stdout.

mod synthetic;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "phoenix-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a synthetic configuration of N guests (LXCs and VMs mixed) to DIR
    Gen {
        /// Number of guests (at most 60,000: addresses come from two /16 subnets)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=60_000))]
        guests: u32,
        /// Directory to write the five files to (created if missing)
        #[arg(long)]
        out: PathBuf,
        /// Firewall rules per guest (at least 3)
        #[arg(long, default_value_t = 3)]
        rules_per_guest: usize,
        /// One certificate every this many guests (1 = every guest)
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        cert_every: u64,
        /// One Traefik route every this many guests (0 = none)
        #[arg(long, default_value_t = 0)]
        route_every: u64,
    },
    /// Time planning a configuration against an empty host in-process (`phoenix plan`)
    Plan {
        /// The configuration directory
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// How many timed runs (after one warm-up run)
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        iterations: u32,
    },
    /// Time validation of a configuration directory in-process
    Validate {
        /// The configuration directory
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// How many timed runs (after one warm-up run)
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        iterations: u32,
    },
}

/// Write `files` into `dir` as pretty JSON.
fn write(dir: &Path, files: &[(&str, serde_json::Value)]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, value) in files {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(name), text + "\n")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gen {
            guests,
            out,
            rules_per_guest,
            cert_every,
            route_every,
        } => generate(
            guests as usize,
            &out,
            synthetic::Shape {
                rules_per_guest,
                cert_every: cert_every as usize,
                route_every: route_every as usize,
            },
        ),
        Command::Plan { config, iterations } => time_plan(&config, iterations),
        Command::Validate { config, iterations } => time_validate(&config, iterations),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(guests: usize, out: &Path, shape: synthetic::Shape) -> std::io::Result<()> {
    let files = synthetic::config_with(guests, shape);
    write(out, &files)?;
    let bytes: u64 = files
        .iter()
        .filter_map(|(n, _)| std::fs::metadata(out.join(n)).ok())
        .map(|m| m.len())
        .sum();
    writeln!(
        std::io::stdout(),
        "wrote {guests} guests to {} ({bytes} bytes in {} files)",
        out.display(),
        files.len()
    )
}

/// min / median / max of sorted durations, in ms.
fn spread(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    )
}

fn time_plan(config: &Path, iterations: u32) -> std::io::Result<()> {
    let v = phoenix_model::validate_dir(config);
    let Some(d) = v.desired else {
        return Err(std::io::Error::other(format!(
            "{} does not load",
            config.display()
        )));
    };
    let observed = phoenix_plan::ObservedState::default();
    let opts = phoenix_render::RenderOptions::default();
    let run = || {
        phoenix_plan::plan(&d, &observed, &phoenix_plan::Request::SyncAll, &opts)
            .map_err(std::io::Error::other)
    };
    let first = run()?;
    let rules: usize = d.firewall.rules.len()
        + d.guests
            .values()
            .map(|g| g.firewall.rules.len())
            .sum::<usize>();
    let mut times = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations {
        let start = Instant::now();
        let p = run()?;
        times.push(start.elapsed());
        std::hint::black_box(p);
    }
    let (min, median, max) = spread(&mut times);
    writeln!(
        std::io::stdout(),
        "{}: {} guests, {rules} firewall rules, {} certificates; plan of {} actions and {} files; {iterations} runs: min {min:.2} ms, median {median:.2} ms, max {max:.2} ms",
        config.display(),
        d.guests.len(),
        d.certificates.len(),
        first.actions().count(),
        first.files.len(),
    )
}

fn time_validate(config: &Path, iterations: u32) -> std::io::Result<()> {
    if !config.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a directory", config.display()),
        ));
    }
    // Warm-up, and the figures that show the run did real work.
    let v = phoenix_model::validate_dir(config);
    let findings = v.findings();
    let errors = findings
        .iter()
        .filter(|f| f.severity == phoenix_model::Severity::Error)
        .count();
    let guests = v.desired.as_ref().map_or(0, |d| d.guests.len());
    let warnings = findings.len() - errors;
    drop((v, findings));
    let mut times: Vec<Duration> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            let v = phoenix_model::validate_dir(config);
            // Resolving findings to line:col is part of what `phoenix validate` does.
            let n = v.findings().len();
            let t = start.elapsed();
            std::hint::black_box(n);
            t
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = times[times.len() / 2];
    writeln!(
        std::io::stdout(),
        "{}: {guests} guests, {errors} errors, {} warnings; {iterations} runs: min {:.2} ms, median {:.2} ms, max {:.2} ms",
        config.display(),
        warnings,
        ms(times[0]),
        ms(median),
        ms(times[times.len() - 1]),
    )
}
