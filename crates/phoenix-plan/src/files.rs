//! The plan's managed files: each rendered file against what the target holds (create,
//! update with a unified diff, or unchanged), and the rendered files no provision step serves.
//! Pure, no I/O.

use phoenix_model::model::{DesiredState, GuestId};
use phoenix_render::RenderedFile;

use crate::action::{Action, KeyChange, Reason};
use crate::observed::{ObservedState, sha256_hex};
use crate::plan_types::{FileStatus, PlannedFile};
use crate::provision::ProvisionOptions;

/// The program that reads the rendered files under a directory inside a guest.
const SERVICE_DIRS: &[(&str, &str)] = &[("/etc/nginx/", "nginx"), ("/etc/traefik/", "traefik")];

/// A note for each rendered file placed in a guest where no provision step starts the
/// program that reads it (its `features` lack it): on a node nothing would serve it. Pure.
pub fn unserved_files(d: &DesiredState, rendered: &[phoenix_render::RenderedFile]) -> Vec<String> {
    let steps = crate::provision::plan_steps(d, rendered, &ProvisionOptions::default());
    let runs = |guest: GuestId, service: &str| {
        steps.iter().any(|(g, p)| {
            *g == guest
                && p.steps.iter().any(|s| {
                    matches!(&s.kind, crate::provision::StepKind::Service { name, .. } if name == service)
                })
        })
    };
    let mut notes = Vec::new();
    for f in rendered {
        let phoenix_render::FileTarget::Guest(g) = f.target else {
            continue;
        };
        if let Some((_, service)) = SERVICE_DIRS.iter().find(|(dir, _)| f.path.starts_with(dir))
            && !runs(g, service)
        {
            notes.push(format!(
                "guest {g} gets {} but no provision step installs or starts {service} there (its `features` lack `{service}`): nothing will serve it",
                f.path
            ));
        }
    }
    notes
}

pub(crate) fn plan_file(
    f: RenderedFile,
    observed: &ObservedState,
) -> (PlannedFile, Option<Action>) {
    let sha = sha256_hex(&f.content);
    let Some(o) = observed.file(f.target, &f.path) else {
        let action = Action::WriteFile {
            target: f.target,
            path: f.path.clone(),
            reason: Reason::Missing,
        };
        return (
            PlannedFile {
                file: f,
                sha256: sha,
                status: FileStatus::Create,
                diff: None,
            },
            Some(action),
        );
    };
    let mut changes = Vec::new();
    let mut diff = None;
    if o.hash().as_deref() != Some(sha.as_str()) {
        changes.push(KeyChange {
            key: "content".into(),
            from: o.hash(),
            to: Some(sha.clone()),
        });
        diff = o
            .content
            .as_deref()
            .map(|old| unified_diff(old, &f.content, &f.path));
    }
    for (key, have, want) in [
        ("owner", o.owner.clone(), f.owner.clone()),
        ("group", o.group.clone(), f.group.clone()),
        (
            "mode",
            o.mode.map(|m| format!("{m:o}")),
            format!("{:o}", f.mode),
        ),
    ] {
        if have.as_deref().is_some_and(|h| h != want) {
            changes.push(KeyChange {
                key: key.into(),
                from: have,
                to: Some(want),
            });
        }
    }
    if changes.is_empty() {
        return (
            PlannedFile {
                file: f,
                sha256: sha,
                status: FileStatus::Unchanged,
                diff: None,
            },
            None,
        );
    }
    let action = Action::WriteFile {
        target: f.target,
        path: f.path.clone(),
        reason: Reason::Differs { changes },
    };
    (
        PlannedFile {
            file: f,
            sha256: sha,
            status: FileStatus::Update,
            diff,
        },
        Some(action),
    )
}

/// A unified diff (no colour; the CLI colours it).
pub fn unified_diff(old: &str, new: &str, path: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (on target)"), &format!("{path} (planned)"))
        .to_string()
}
