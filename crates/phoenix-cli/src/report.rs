//! Text output of findings, in the shape of a compiler's:
//!
//! ```text
//! error[PHX-E020]: 10.0.0.5 is outside 172.16.100.0/24, the subnet of vmbr100
//!   --> etc/phoenix_lxc_configs.json:12:19 (/lxc_configs/102/network_config/ip)
//!    ╭─[phoenix_lxc_configs.json:12:19]
//! 12 │   "ip": "10.0.0.5/24",
//!    ·         ────────────
//!    ╰────
//!   hint: pick an address inside 172.16.100.0/24
//! ```
//!
//! The first two lines and the hint are written here; miette renders only the snippet (its
//! own header line with the message is dropped, and the code and help are not handed to it,
//! so nothing is printed twice). Colour goes through `anstream`, which strips the escape codes
//! when stderr is not a terminal or `NO_COLOR` is set. I/O: writes to the given stream only.

use std::io::Write;

use miette::{
    GraphicalReportHandler, GraphicalTheme, MietteSpanContents, SourceSpan, SpanContents,
};
use phoenix_model::{Finding, Severity, SourceMap};

/// `1 action`, `3 actions`: a count with its noun (regular plurals only).
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

const ERROR: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();
const WARNING: anstyle::Style = anstyle::AnsiColor::Yellow.on_default().bold();
const BOLD: anstyle::Style = anstyle::Style::new().bold();
const ARROW: anstyle::Style = anstyle::AnsiColor::Blue.on_default().bold();
const HINT: anstyle::Style = anstyle::AnsiColor::Cyan.on_default().bold();

/// Only the snippet of a finding, as miette sees it: no code, no help, an empty message.
#[derive(Debug)]
struct Snippet<'a> {
    finding: &'a Finding,
    source: &'a WindowedSource,
}

impl std::fmt::Display for Snippet<'_> {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

impl std::error::Error for Snippet<'_> {}

impl miette::Diagnostic for Snippet<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.finding.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.finding.span.clone()?;
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(
                None,
                SourceSpan::from(span.start..span.end.max(span.start)),
            ),
        )))
    }
}

/// Longest source line a snippet shows; a longer one leaves the finding without a snippet.
const SNIPPET_LINE_BYTES: usize = 4096;

/// A file as miette reads it, but each snippet is cut from a window of a few lines around
/// its span (found through the line starts), so a thousand findings in a 3 MB file do not
/// each scan the file from the top.
#[derive(Debug)]
struct WindowedSource {
    name: String,
    text: String,
    /// Byte offset of each line's start.
    starts: Vec<usize>,
}

impl WindowedSource {
    fn new(name: String, text: String) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        WindowedSource { name, text, starts }
    }

    /// Whether a line a snippet of `span` shows (one of context on each side) is longer than
    /// [`SNIPPET_LINE_BYTES`].
    fn long_lines_near(&self, span: &std::ops::Range<usize>) -> bool {
        let first = self.line_of(span.start).saturating_sub(1);
        let last = self.line_of(span.end) + 1;
        (first..=last).any(|l| {
            let (Some(start), end) = (self.starts.get(l), self.starts.get(l + 1)) else {
                return false;
            };
            end.copied().unwrap_or(self.text.len()) - start > SNIPPET_LINE_BYTES
        })
    }

    /// 0-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|s| *s <= offset)
            .saturating_sub(1)
    }
}

impl miette::SourceCode for WindowedSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, miette::MietteError> {
        let first = self.line_of(span.offset()).saturating_sub(before + 1);
        let last = self.line_of(span.offset() + span.len()) + after + 2;
        let start = self.starts.get(first).copied().unwrap_or(0);
        let end = self
            .starts
            .get(last)
            .copied()
            .unwrap_or(self.text.len())
            .min(self.text.len());
        let window = self.text.get(start..end).unwrap_or("");
        let rel = SourceSpan::new((span.offset().saturating_sub(start)).into(), span.len());
        let c = window.read_span(&rel, before, after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            c.data(),
            SourceSpan::new((c.span().offset() + start).into(), c.span().len()),
            c.line() + first,
            c.column(),
            c.line_count(),
        )))
    }
}

/// Renders findings; one per configuration run.
pub struct Renderer<'a> {
    sources: &'a SourceMap,
    handler: GraphicalReportHandler,
    /// Each file's text as miette reads it, copied once per file, not once per finding.
    named: std::cell::RefCell<Vec<(std::path::PathBuf, std::rc::Rc<WindowedSource>)>>,
}

impl<'a> Renderer<'a> {
    pub fn new(sources: &'a SourceMap) -> Self {
        // Always styled: the anstream writer removes the styles where colour is off.
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode())
            .with_links(false)
            .with_width(100)
            .with_context_lines(1);
        Renderer {
            sources,
            handler,
            named: Default::default(),
        }
    }

    /// The full text of one finding (ANSI-styled; strip for plain output).
    pub fn render(&self, f: &Finding) -> String {
        let (label, style) = match f.severity {
            Severity::Error => ("error", ERROR),
            Severity::Warning => ("warning", WARNING),
        };
        let mut out = format!(
            "{style}{label}[{code}]{style:#}{BOLD}: {msg}{BOLD:#}\n",
            code = f.code,
            msg = one_line(&f.message),
        );
        let mut location = f.file.display().to_string();
        if f.span.is_some() {
            location.push_str(&format!(":{}:{}", f.line, f.column));
        }
        if !f.pointer.is_empty() {
            location.push_str(&format!(" ({})", f.pointer));
        }
        out.push_str(&format!("  {ARROW}-->{ARROW:#} {location}\n"));
        if let Some(snippet) = self.snippet(f) {
            out.push_str(&snippet);
        }
        if !f.hint.is_empty() {
            out.push_str(&format!("  {HINT}hint{HINT:#}: {}\n", one_line(&f.hint)));
        }
        out
    }

    fn snippet(&self, f: &Finding) -> Option<String> {
        let span = f.span.clone()?;
        let source = self.named_source(&f.file)?;
        if source.long_lines_near(&span) {
            // A 5 MB value on one line would be printed whole: the location says where it is.
            return None;
        }
        // A finding anchored at a whole object shows its first line, not all of it.
        let text = &source.text;
        let cut = text
            .get(span.clone())
            .and_then(|t| t.find('\n'))
            .map(|i| span.start..span.start + i.max(1));
        let shortened;
        let f = match cut {
            Some(span) => {
                shortened = Finding {
                    span: Some(span),
                    ..f.clone()
                };
                &shortened
            }
            None => f,
        };
        let snippet = Snippet {
            finding: f,
            source: &source,
        };
        let mut rendered = String::new();
        self.handler.render_report(&mut rendered, &snippet).ok()?;
        // miette's first line is the (empty) message after a severity icon; the snippet follows.
        let body = rendered.split_once('\n').map(|(_, rest)| rest)?;
        let body = body.trim_end_matches('\n');
        if body.trim().is_empty() {
            return None;
        }
        Some(format!("{body}\n"))
    }
}

impl Renderer<'_> {
    fn named_source(&self, path: &std::path::Path) -> Option<std::rc::Rc<WindowedSource>> {
        if let Some((_, n)) = self.named.borrow().iter().find(|(p, _)| p == path) {
            return Some(n.clone());
        }
        let (_, file) = self.sources.files().find(|(_, s)| s.path == path)?;
        let name = file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let named = std::rc::Rc::new(WindowedSource::new(name, file.text.clone()));
        self.named
            .borrow_mut()
            .push((path.to_path_buf(), named.clone()));
        Some(named)
    }
}

/// Messages are one line; a newline from the configuration must not forge another finding.
fn one_line(s: &str) -> String {
    if s.contains(['\n', '\r']) {
        s.replace('\n', "\\n").replace('\r', "\\r")
    } else {
        s.to_string()
    }
}

/// Print every finding to `stream` (stderr in the binary), then the summary by code and the
/// count line; `allowed` findings were left out by the operator's allow-list.
pub fn print_findings(
    stream: &mut dyn Write,
    findings: &[Finding],
    sources: &SourceMap,
    allowed: usize,
) -> std::io::Result<()> {
    let renderer = Renderer::new(sources);
    for f in findings {
        writeln!(stream, "{}", renderer.render(f))?;
    }
    print_counts(stream, findings, allowed)
}

/// `validate --output json --with-counts`: the findings and what the text output's summary
/// and count line say.
pub fn with_counts(findings: &[Finding], allowed: usize) -> serde_json::Value {
    let mut by_code = serde_json::Map::new();
    for f in findings {
        let n = by_code.get(f.code).and_then(serde_json::Value::as_u64);
        by_code.insert(f.code.to_string(), (n.unwrap_or(0) + 1).into());
    }
    by_code.sort_keys();
    let (errors, warnings) = counts(findings);
    serde_json::json!({
        "findings": findings,
        "summary": {
            "errors": errors,
            "warnings": warnings,
            "allowed": allowed,
            "by_code": by_code,
        },
    })
}

/// The summary by code (with more than one finding) and the count line.
fn print_counts(
    stream: &mut dyn Write,
    findings: &[Finding],
    allowed: usize,
) -> std::io::Result<()> {
    if findings.len() > 1 {
        write!(stream, "{}", summary(findings))?;
    }
    let (errors, warnings) = counts(findings);
    let style = if errors > 0 {
        ERROR
    } else if warnings > 0 {
        WARNING
    } else {
        BOLD
    };
    let mut line = count_line(errors, warnings);
    if allowed > 0 {
        line.push_str(&format!(" ({allowed} allowed, not shown)"));
    }
    writeln!(stream, "{style}{line}{style:#}")
}

/// One line per code, errors first, with its count and title.
pub fn summary(findings: &[Finding]) -> String {
    let mut by_code: std::collections::BTreeMap<(Severity, &str), usize> = Default::default();
    for f in findings {
        *by_code.entry((f.severity, f.code)).or_default() += 1;
    }
    let mut out = String::from("summary by code:\n");
    for ((severity, code), n) in by_code {
        let title = phoenix_model::Code::ALL
            .iter()
            .find(|c| c.as_str() == code)
            .map_or("", |c| c.title());
        let label = match severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("  {code}  {label:<7} {n:>5}  {title}\n"));
    }
    out
}

/// `(errors, warnings)`.
pub fn counts(findings: &[Finding]) -> (usize, usize) {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    (errors, findings.len() - errors)
}

fn count_line(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_line_pluralises() {
        assert_eq!(count_line(1, 0), "1 error, 0 warnings");
        assert_eq!(count_line(2, 1), "2 errors, 1 warning");
    }

    #[test]
    fn newlines_in_messages_are_escaped() {
        assert_eq!(one_line("a\nb\rc"), "a\\nb\\rc");
    }
}
