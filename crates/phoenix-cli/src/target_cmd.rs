//! `phoenix plan --target` and `phoenix observe`: the dry run of `sync all` on a target that
//! prints the plan (saved with `--out`) or the observation; the helpers around the pipeline
//! are [`crate::workflow`]'s.

use std::path::PathBuf;

use crate::cli::{
    LockArgs, ObserveArgs, OutputFormat, PassphraseArgs, PlanArgs, SyncAllArgs, SyncTarget,
};
use crate::exit;
use crate::failure::error;
use crate::workflow::Mode;

fn sync_args(
    target: SyncTarget,
    config: PathBuf,
    lab: crate::cli::LabPrefixArg,
    pve: crate::cli::PveConnArgs,
    provision: bool,
) -> SyncAllArgs {
    SyncAllArgs {
        target,
        config,
        lab,
        pve,
        image_store: None,
        parallelism: 4,
        output: OutputFormat::Json,
        dry_run: true,
        plan: None,
        yes: false,
        detailed_exitcode: false,
        lock: LockArgs { lock_timeout: 0 },
        provision,
        ca_dir: None,
        passphrase: PassphraseArgs {
            passphrase_env: None,
            passphrase_file: None,
        },
        provisioner_key: None,
        switch_network: false,
        confirm_within: None,
        probe_tcp: Vec::new(),
        only: Vec::new(),
        // A plan or an observation never wipes a disk or removes storage.
        wipe_disks: false,
        remove_dropped_storage: false,
        docker_host: std::env::var("DOCKER_HOST").ok(),
        docker_cert_path: std::env::var_os("DOCKER_CERT_PATH").map(PathBuf::from),
    }
}

/// `plan --target T …` as the dry run of `sync all --target T …`.
pub(crate) fn sync_args_of_plan(args: &PlanArgs, target: SyncTarget) -> SyncAllArgs {
    let mut s = sync_args(
        target,
        args.config.clone(),
        args.lab.clone(),
        args.pve.clone(),
        args.provision,
    );
    s.output = args.output;
    s.only = args.only.clone();
    s.ca_dir = args.ca_dir.clone();
    s.passphrase = args.passphrase.clone();
    s
}

/// `observe --target T …` as the dry run of `sync all --target T …`.
pub(crate) fn sync_args_of_observe(args: &ObserveArgs) -> SyncAllArgs {
    sync_args(
        args.target,
        args.config.clone(),
        args.lab.clone(),
        args.pve.clone(),
        args.provision,
    )
}

fn run_on(args: &SyncAllArgs, request: &phoenix_plan::Request, mode: &Mode<'_>) -> u8 {
    match args.target {
        SyncTarget::Lab if *request != phoenix_plan::Request::SyncAll => {
            error(
                "the lab twin is planned as a whole",
                "use `phoenix plan --target lab` without a verb",
            );
            exit::USAGE
        }
        SyncTarget::Lab => crate::sync_lab::run_mode(args, mode),
        SyncTarget::Pve => crate::sync_cmd::run_pve(args, request, mode),
    }
}

/// `phoenix observe --target T`: the observation as JSON on stdout.
pub(crate) fn observe(args: &ObserveArgs) -> u8 {
    run_on(
        &sync_args_of_observe(args),
        &phoenix_plan::Request::SyncAll,
        &Mode::Observe,
    )
}

/// `phoenix plan --target T [VERB]`: the plan `sync all` (or `apply VERB`) would apply now.
pub(crate) fn plan_on_target(
    args: &PlanArgs,
    target: SyncTarget,
    request: &phoenix_plan::Request,
) -> u8 {
    let mode = Mode::Plan {
        out: args.out.as_deref(),
        detailed: args.detailed_exitcode,
    };
    run_on(&sync_args_of_plan(args, target), request, &mode)
}
