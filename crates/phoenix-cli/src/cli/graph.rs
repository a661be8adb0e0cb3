//! `phoenix graph` arguments.

use std::path::PathBuf;

use clap::ValueEnum;

use super::DEFAULT_CONFIG_DIR;

/// What `graph` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum GraphFormat {
    /// A self-contained SVG picture
    #[default]
    Svg,
    /// Graphviz DOT (`dot -Tpng`)
    Dot,
    /// A Mermaid flowchart (for Markdown)
    Mermaid,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    /// Picture format
    #[arg(long, short = 'f', value_enum, default_value_t)]
    pub format: GraphFormat,
    /// Write to this file instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}
