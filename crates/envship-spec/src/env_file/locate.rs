//! Where in an environment file something is: marked-yaml's line/column markers as byte spans,
//! and a YAML syntax error's place (which, when the parser ran into the end of the file, is where
//! the construct it could not finish starts).

use std::path::Path;

use marked_yaml::Span;
use miette::SourceSpan;

use super::{EnvFileError, EnvSource, Location};

pub(super) fn yaml_error(
    e: &marked_yaml::LoadError,
    path: &Path,
    source: &EnvSource,
    index: &LineIndex<'_>,
) -> EnvFileError {
    use marked_yaml::LoadError as L;
    let (marker, message) = match e {
        L::TopLevelMustBeMapping(m) => (Some(*m), "the top level must be a mapping".to_string()),
        L::TopLevelMustBeSequence(m) => (Some(*m), "the top level must be a sequence".to_string()),
        L::UnexpectedAnchor(m) => (Some(*m), "YAML anchors are not supported".to_string()),
        L::MappingKeyMustBeScalar(m) => {
            (Some(*m), "mapping keys must be plain strings".to_string())
        }
        L::UnexpectedTag(m) => (Some(*m), "YAML tags are not supported".to_string()),
        L::ScanError(m, s) => (Some(*m), s.info().to_string()),
        L::DuplicateKey(d) => (
            d.key.span().start().copied(),
            format!("duplicate key `{}`", d.key.as_str()),
        ),
    };
    let (at, label) = match marker.map(|m| index.location_at(m.line(), m.column(), None)) {
        // The parser ran into the end of the file: the place to fix is where it started reading
        // what it could not finish.
        Some(at) if index.past_content(at.span.0) => index.unfinished_construct(),
        Some(at) => (at.source_span(), "the parser stopped here".to_string()),
        None => (SourceSpan::new(0.into(), 0), "here".to_string()),
    };
    EnvFileError::Yaml {
        path: path.to_path_buf(),
        message,
        src: source.clone(),
        at,
        label,
    }
}

/// What a line opens and does not close: its byte offset in the line and a label for it.
fn unclosed_on(line: &str) -> Option<(usize, String)> {
    let mut open: Vec<(usize, char)> = Vec::new();
    let mut quote: Option<(usize, char)> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some((_, q)) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if prev.is_whitespace() => break,
                // A quote opens a scalar only where one can start.
                '"' | '\'' if prev.is_whitespace() || matches!(prev, '[' | '{' | ',') => {
                    quote = Some((i, c))
                }
                '[' | '{' => open.push((i, c)),
                ']' | '}' => {
                    open.pop();
                }
                _ => {}
            },
        }
        prev = c;
    }
    if let Some((i, q)) = quote {
        return Some((i, format!("this {q} is never closed")));
    }
    let (i, c) = *open.first()?;
    let close = if c == '[' { ']' } else { '}' };
    Some((i, format!("this `{c}` is never closed by a `{close}`")))
}

/// Turns marked-yaml's line/column markers into byte spans.
pub(super) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, line_starts }
    }

    pub(super) fn location(&self, span: &Span, raw: Option<&str>) -> Location {
        match span.start() {
            Some(m) => self.location_at(m.line(), m.column(), raw),
            None => Location {
                line: 1,
                column: 1,
                span: (0, 0),
            },
        }
    }

    /// Whether `offset` is past the last character that is not whitespace.
    pub(super) fn past_content(&self, offset: usize) -> bool {
        offset >= self.text.trim_end().len()
    }

    /// Where the construct starts that the file ends inside of, and a label for it: the line
    /// after the longest run of whole lines that parses (there the unfinished construct starts),
    /// at what that line opens and does not close, else at its first character.
    pub(super) fn unfinished_construct(&self) -> (SourceSpan, String) {
        let lines = self.line_starts.len();
        let start_line = (2..=lines)
            .rev()
            .find(|&k| marked_yaml::parse_yaml(0, &self.text[..self.line_starts[k - 1]]).is_ok())
            .unwrap_or(1);
        let start = self.line_starts[start_line - 1];
        let end = self
            .line_starts
            .get(start_line)
            .copied()
            .unwrap_or(self.text.len());
        let line = self.text[start..end].trim_end();
        let (col, label) = unclosed_on(line).unwrap_or_else(|| {
            (
                line.len() - line.trim_start().len(),
                "the file ends before this is complete".to_string(),
            )
        });
        let len = line.len().saturating_sub(col).max(1);
        (SourceSpan::new((start + col).into(), len), label)
    }

    /// `line` and `column` are 1-based; column counts characters.
    pub(super) fn location_at(&self, line: usize, column: usize, raw: Option<&str>) -> Location {
        let line = line.max(1);
        let start = self
            .line_starts
            .get(line - 1)
            .copied()
            .unwrap_or(self.text.len());
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        let line_text = &self.text[start..end];
        let col_byte = line_text
            .char_indices()
            .nth(column.saturating_sub(1))
            .map(|(i, _)| i)
            .unwrap_or(line_text.len());
        let mut offset = start + col_byte;
        let mut len = 1;
        if let Some(raw) = raw {
            // A quoted scalar starts at its quote; point at the text itself when we can find it.
            if let Some(pos) = line_text[col_byte..].find(raw) {
                offset = start + col_byte + pos;
                len = raw.len().max(1);
            } else {
                len = line_text[col_byte..].trim_end().len().max(1);
            }
        }
        Location {
            line,
            column: self.text[start..offset].chars().count() + 1,
            span: (offset, len.min(self.text.len().saturating_sub(offset))),
        }
    }
}
