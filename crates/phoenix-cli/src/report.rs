//! Text output of findings: miette source snippets on stderr, with a `hint:` line.

use std::io::Write;

use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};
use phoenix_model::{Finding, Severity, SourceMap};

#[derive(Debug)]
struct Snippet<'a> {
    finding: &'a Finding,
    source: Option<NamedSource<String>>,
}

impl std::fmt::Display for Snippet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.finding.message)
    }
}

impl std::error::Error for Snippet<'_> {}

impl miette::Diagnostic for Snippet<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.finding.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.finding.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.finding.span.clone()?;
        let label = if self.finding.pointer.is_empty() {
            None
        } else {
            Some(self.finding.pointer.clone())
        };
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(
                label,
                SourceSpan::from(span.start..span.end.max(span.start)),
            ),
        )))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(&self.finding.hint))
    }
}

fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && anstream::stderr().is_terminal_like()
}

trait TerminalLike {
    fn is_terminal_like(&self) -> bool;
}

impl TerminalLike for anstream::Stderr {
    fn is_terminal_like(&self) -> bool {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal()
    }
}

/// Print every finding with its snippet to stderr.
pub fn print_findings(findings: &[Finding], sources: &SourceMap) {
    let theme = if color() {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_links(false)
        .with_width(100);
    let mut err = std::io::stderr().lock();
    for f in findings {
        let source = sources
            .files()
            .find(|(_, s)| s.path == f.file)
            .filter(|_| f.span.is_some())
            .map(|(_, s)| {
                NamedSource::new(s.path.display().to_string(), s.text.clone()).with_language("json")
            });
        let _ = writeln!(
            err,
            "{}: {}:{}:{} {}",
            match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            f.file.display(),
            f.line,
            f.column,
            f.pointer
        );
        let mut out = String::new();
        let snippet = Snippet { finding: f, source };
        if handler.render_report(&mut out, &snippet).is_ok() {
            let out = out.replace("help: ", "hint: ");
            let _ = write!(err, "{out}");
        }
    }
}

/// The closing count line (stdout).
pub fn print_counts(findings: &[Finding]) {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    println!("{errors} errors, {warnings} warnings");
}
