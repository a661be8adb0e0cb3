//! Ordering: creation levels from dependencies plus clone sources, start order from
//! `boot_order`, and the reverse for stop and delete. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use phoenix_model::model::{DesiredState, Guest, GuestId, GuestSource};

/// What a guest needs to exist first: its dependencies and its clone source.
pub fn prerequisites(g: &Guest) -> BTreeSet<GuestId> {
    let mut out: BTreeSet<GuestId> = g
        .dependencies
        .iter()
        .copied()
        .filter(|d| *d != g.id)
        .collect();
    if let GuestSource::Clone { from, .. } = &g.source {
        out.insert(*from);
    }
    out
}

/// Creation level of every guest: 0 for guests with no prerequisites, else one more than the
/// deepest prerequisite. Unknown prerequisites are ignored (validation reports them); members
/// of a cycle (also reported by validation) get the level they had when the cycle was found.
pub fn levels(d: &DesiredState) -> BTreeMap<GuestId, usize> {
    let mut out = BTreeMap::new();
    let mut visiting = BTreeSet::new();
    for id in d.guests.keys() {
        level_of(d, *id, &mut out, &mut visiting);
    }
    out
}

fn level_of(
    d: &DesiredState,
    id: GuestId,
    memo: &mut BTreeMap<GuestId, usize>,
    visiting: &mut BTreeSet<GuestId>,
) -> usize {
    if let Some(l) = memo.get(&id) {
        return *l;
    }
    let Some(g) = d.guests.get(&id) else { return 0 };
    if !visiting.insert(id) {
        return 0;
    }
    let level = prerequisites(g)
        .into_iter()
        .filter(|p| d.guests.contains_key(p))
        .map(|p| level_of(d, p, memo, visiting) + 1)
        .max()
        .unwrap_or(0);
    visiting.remove(&id);
    memo.insert(id, level);
    level
}

/// Guests grouped by creation level, each group sorted by id.
pub fn creation_waves(d: &DesiredState) -> Vec<Vec<GuestId>> {
    let levels = levels(d);
    let depth = levels.values().copied().max().map(|m| m + 1).unwrap_or(0);
    let mut waves = vec![Vec::new(); depth];
    for (id, l) in levels {
        waves[l].push(id);
    }
    waves
}

/// Start order: ascending `boot_order` (guests without one last), then creation level, then
/// id. Groups of equal order may start together.
pub fn start_groups(d: &DesiredState, ids: &BTreeSet<GuestId>) -> Vec<Vec<GuestId>> {
    let levels = levels(d);
    let mut keyed: Vec<((u32, usize), GuestId)> = ids
        .iter()
        .filter_map(|id| {
            let g = d.guests.get(id)?;
            Some((
                (
                    g.boot_order.unwrap_or(u32::MAX),
                    levels.get(id).copied().unwrap_or(0),
                ),
                *id,
            ))
        })
        .collect();
    keyed.sort();
    let mut groups: Vec<Vec<GuestId>> = Vec::new();
    let mut last = None;
    for (key, id) in keyed {
        if last == Some(key) {
            if let Some(g) = groups.last_mut() {
                g.push(id);
            }
        } else {
            groups.push(vec![id]);
            last = Some(key);
        }
    }
    groups
}

/// Every guest that (transitively) needs `id`.
pub fn dependents(d: &DesiredState, id: GuestId) -> BTreeSet<GuestId> {
    let mut out = BTreeSet::new();
    let mut frontier = vec![id];
    while let Some(cur) = frontier.pop() {
        for g in d.guests.values() {
            if prerequisites(g).contains(&cur) && out.insert(g.id) {
                frontier.push(g.id);
            }
        }
    }
    out
}

/// `id` and everything it (transitively) needs.
pub fn chain(d: &DesiredState, id: GuestId) -> BTreeSet<GuestId> {
    let mut out = BTreeSet::new();
    let mut frontier = vec![id];
    while let Some(cur) = frontier.pop() {
        if !out.insert(cur) {
            continue;
        }
        if let Some(g) = d.guests.get(&cur) {
            frontier.extend(
                prerequisites(g)
                    .into_iter()
                    .filter(|p| d.guests.contains_key(p)),
            );
        }
    }
    out
}
