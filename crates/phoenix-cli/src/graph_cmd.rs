//! `phoenix graph`: the configuration's platform drawn by `phoenix_render::graph`, to stdout
//! or a file. Reads the configuration only.

use std::io::Write;

use crate::cli::{GraphArgs, GraphFormat};
use crate::{config, exit};

pub fn run(args: &GraphArgs) -> u8 {
    let d = match config::load(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let g = phoenix_render::graph::graph(&d, &[phoenix_plan::swarm::OVERLAY_NETWORK]);
    let text = match args.format {
        GraphFormat::Svg => phoenix_render::graph::svg(&g),
        GraphFormat::Dot => phoenix_render::graph::dot(&g),
        GraphFormat::Mermaid => phoenix_render::graph::mermaid(&g),
    };
    let written = match &args.out {
        Some(path) => std::fs::write(path, &text).map_err(|e| (path.display().to_string(), e)),
        None => write!(std::io::stdout().lock(), "{text}").map_err(|e| ("stdout".into(), e)),
    };
    match written {
        Ok(()) => exit::OK,
        Err((_, e)) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err((to, e)) => {
            crate::failure::error(
                &format!("cannot write {to}: {e}"),
                "check that the directory exists and is writable",
            );
            exit::FAILED
        }
    }
}
