//! Editing a manifest's text in place, so that a conversion keeps the comments and the
//! formatting of everything it does not change.
//!
//! A multi-document text is split into its documents at the `---` lines ([`split_documents`]);
//! a document nothing changed in is written back byte for byte. In a converted workload only
//! the pod template's `containers` sequence changes, and only some of its items: the first
//! sidecar's item is replaced by the new container, the other sidecars' items are removed, and
//! every other item — its comments and layout included — stays as it was
//! ([`edit_containers`]). The spans are found by indentation in block-style YAML, and the
//! caller checks that the edited text parses to the converted document; a document written in
//! a style this does not follow (flow collections, anchors in the way, a `containers` value on
//! the key's line) is reported back so the caller can fall back to re-serialising it.

use serde_yaml::{Mapping, Value};

/// The documents of `text`, each with the `---` line that starts it (the first one may have
/// none): joined again they are `text`. A line `---` at column 0 always ends a document in
/// YAML (even inside a quoted or block scalar), so no parsing is needed to find them.
pub fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if is_marker && offset > start {
            docs.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    if start < text.len() || docs.is_empty() {
        docs.push(&text[start..]);
    }
    docs
}

/// One line of a document.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    /// Byte offset of its first character.
    start: usize,
    /// Byte offset after its line break (or the end of the text).
    end: usize,
    /// The line without its break.
    text: &'a str,
    /// Leading spaces.
    indent: usize,
}

impl Line<'_> {
    /// Neither blank nor only a comment.
    fn is_content(&self) -> bool {
        let rest = self.text[self.indent..].trim_end();
        !rest.is_empty() && !rest.starts_with('#')
    }

    fn is_comment(&self) -> bool {
        self.text.trim_start().starts_with('#')
    }

    /// What follows the indentation.
    fn rest(&self) -> &str {
        &self.text[self.indent..]
    }

    /// A sequence item (`- …` or `-` alone).
    fn is_item(&self) -> bool {
        let rest = self.rest();
        rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t") || rest.trim_end() == "-"
    }
}

fn lines(doc: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in doc.split_inclusive('\n') {
        let text = raw.trim_end_matches(['\n', '\r']);
        out.push(Line {
            start: offset,
            end: offset + raw.len(),
            text,
            indent: text.len() - text.trim_start_matches(' ').len(),
        });
        offset += raw.len();
    }
    out
}

/// Why a document's text cannot be edited in place.
pub type Unsupported = String;

/// The lines `[from, to)` that hold the block value of `key` in the block mapping of the
/// lines `[from, to)`: returns `(key line, first value line, end)`.
fn block_value(
    lines: &[Line<'_>],
    from: usize,
    to: usize,
    key: &str,
) -> Result<(usize, usize, usize), Unsupported> {
    let indent = lines[from..to]
        .iter()
        .find(|l| l.is_content())
        .map(|l| l.indent)
        .ok_or_else(|| format!("{key}: an empty mapping"))?;
    let prefix = format!("{key}:");
    let mut found = None;
    for (i, l) in lines.iter().enumerate().take(to).skip(from) {
        if !l.is_content() || l.indent != indent {
            continue;
        }
        if let Some(after) = l.rest().strip_prefix(&prefix) {
            let after = after.trim();
            if !(after.is_empty() || after.starts_with('#')) {
                return Err(format!("{key}: its value is on the key's line"));
            }
            if found.is_some() {
                return Err(format!("{key}: twice"));
            }
            found = Some(i);
        }
    }
    let key_line = found.ok_or_else(|| format!("{key}: not found as a block mapping key"))?;
    let mut end = key_line + 1;
    for (i, l) in lines.iter().enumerate().take(to).skip(key_line + 1) {
        if !l.is_content() {
            continue;
        }
        if l.indent > indent || (l.indent == indent && l.is_item()) {
            end = i + 1;
        } else {
            break;
        }
    }
    Ok((key_line, key_line + 1, end))
}

/// The items of the block sequence in lines `[from, to)`: `(first line of the item with the
/// comment lines directly above it, its `-` line)`, and the item indentation.
fn items(
    lines: &[Line<'_>],
    from: usize,
    to: usize,
) -> Result<(Vec<(usize, usize)>, usize), Unsupported> {
    let indent = lines[from..to]
        .iter()
        .find(|l| l.is_content())
        .map(|l| l.indent)
        .ok_or("containers: an empty sequence")?;
    let mut out = Vec::new();
    for i in from..to {
        let l = &lines[i];
        if !l.is_content() {
            continue;
        }
        if l.indent < indent {
            return Err("containers: an item less indented than the first".into());
        }
        if l.indent == indent {
            if !l.is_item() {
                return Err("containers: not a block sequence".into());
            }
            let mut lead = i;
            while lead > from && lines[lead - 1].is_comment() {
                lead -= 1;
            }
            out.push((lead, i));
        }
    }
    Ok((out, indent))
}

/// The document `doc` with item `replace` of its pod template's `containers` replaced by
/// `container` and the items in `remove` removed; every other byte kept.
pub fn edit_containers(
    doc: &str,
    replace: usize,
    container: &Mapping,
    remove: &[usize],
) -> Result<String, Unsupported> {
    let lines = lines(doc);
    if let Some(first) = lines.iter().find(|l| l.is_content())
        && first.text.starts_with("---")
        && first.text.trim_end() != "---"
    {
        return Err("content on the --- line".into());
    }
    let body = lines
        .iter()
        .position(|l| l.is_content() && !l.text.starts_with("---"))
        .ok_or("an empty document")?;
    let mut range = (body, lines.len());
    for key in ["spec", "template", "spec"] {
        let (_, from, to) = block_value(&lines, range.0, range.1, key)?;
        range = (from, to);
    }
    let (key_line, from, to) = block_value(&lines, range.0, range.1, "containers")?;
    let (found, item_indent) = items(&lines, from, to)?;
    if replace >= found.len() || remove.iter().any(|&i| i >= found.len()) {
        return Err(format!(
            "containers: {} items in the text, not as parsed",
            found.len()
        ));
    }
    let key_indent = lines[key_line].indent;
    let seq_offset = item_indent.saturating_sub(key_indent);
    let map_step = mapping_step(&lines, &found, to).unwrap_or(2);
    let newline = if lines[key_line].text.len() + 1 < lines[key_line].end - lines[key_line].start {
        "\r\n"
    } else {
        "\n"
    };
    let mut rendered = String::new();
    let style = Style {
        seq_offset,
        map_step,
    };
    sequence_item(
        &mut rendered,
        &Value::Mapping(container.clone()),
        item_indent,
        style,
    )?;
    let rendered = rendered.replace('\n', newline);

    let mut out = String::with_capacity(doc.len() + rendered.len());
    let mut copied = 0;
    for (n, &(lead, _)) in found.iter().enumerate() {
        if n != replace && !remove.contains(&n) {
            continue;
        }
        // The item's span: from its leading comments to the next item's, or to the end of
        // the sequence's last content line.
        let start = lines[lead].start;
        let end = match found.get(n + 1) {
            Some(&(next, _)) => lines[next].start,
            None => lines[to - 1].end,
        };
        out.push_str(&doc[copied..start]);
        if n == replace {
            out.push_str(&rendered);
            // The last item's last line may have had no line break.
            if end == doc.len() && !doc.ends_with('\n') {
                out.truncate(out.trim_end_matches(['\n', '\r']).len());
            }
        }
        copied = end;
    }
    out.push_str(&doc[copied..]);
    Ok(out)
}

/// How far a mapping's keys are indented under the key that holds it, as the existing items
/// show it (the indentation of the first nested key below an item's first key).
fn mapping_step(lines: &[Line<'_>], items: &[(usize, usize)], end: usize) -> Option<usize> {
    for (n, &(_, dash)) in items.iter().enumerate() {
        let stop = items.get(n + 1).map_or(end, |&(lead, _)| lead);
        let key_indent = lines[dash].indent + 2;
        for pair in (dash..stop).collect::<Vec<_>>().windows(2) {
            let (a, b) = (&lines[pair[0]], &lines[pair[1]]);
            let a_indent = if pair[0] == dash {
                key_indent
            } else {
                a.indent
            };
            if a.is_content()
                && b.is_content()
                && a.text.trim_end().ends_with(':')
                && !b.is_item()
                && b.indent > a_indent
            {
                return Some(b.indent - a_indent);
            }
        }
    }
    None
}

/// The layout the existing text uses.
#[derive(Debug, Clone, Copy)]
struct Style {
    /// Indentation of a block sequence's items beyond the key that holds it (0 or 2, usually).
    seq_offset: usize,
    /// Indentation of a nested mapping's keys beyond the key that holds it.
    map_step: usize,
}

/// A scalar as YAML writes it: possibly quoted, possibly a block scalar whose lines follow.
fn scalar(value: &Value, indent: usize) -> Result<String, Unsupported> {
    let text = serde_yaml::to_string(value).map_err(|e| e.to_string())?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if !text.contains('\n') {
        return Ok(text.to_string());
    }
    // A block scalar (`|-` and its lines, indented two spaces): indented under its key.
    let mut lines = text.lines();
    let mut out = lines.next().unwrap_or_default().to_string();
    for line in lines {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(line);
    }
    Ok(out)
}

fn is_collection(value: &Value) -> bool {
    match value {
        Value::Mapping(m) => !m.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        _ => false,
    }
}

fn mapping(
    out: &mut String,
    map: &Mapping,
    indent: usize,
    style: Style,
) -> Result<(), Unsupported> {
    let pad = " ".repeat(indent);
    for (k, v) in map {
        if is_collection(k) || matches!(k, Value::Tagged(_)) {
            return Err("a complex mapping key".into());
        }
        let key = scalar(k, indent)?;
        match v {
            Value::Mapping(m) if !m.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                mapping(out, m, indent + style.map_step, style)?;
            }
            Value::Sequence(s) if !s.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                for item in s {
                    sequence_item(out, item, indent + style.seq_offset, style)?;
                }
            }
            Value::Tagged(_) => return Err("a tagged value".into()),
            other => {
                out.push_str(&format!("{pad}{key}: {}\n", scalar(other, indent)?));
            }
        }
    }
    Ok(())
}

fn sequence_item(
    out: &mut String,
    item: &Value,
    indent: usize,
    style: Style,
) -> Result<(), Unsupported> {
    let pad = " ".repeat(indent);
    match item {
        Value::Mapping(m) if !m.is_empty() => {
            // The first key goes on the `- ` line; the others line up with it.
            let mut inner = String::new();
            mapping(&mut inner, m, indent + 2, style)?;
            out.push_str(&pad);
            out.push_str("- ");
            out.push_str(&inner[indent + 2..]);
        }
        Value::Sequence(s) if !s.is_empty() => {
            out.push_str(&format!("{pad}-\n"));
            for inner in s {
                sequence_item(out, inner, indent + 2, style)?;
            }
        }
        Value::Tagged(_) => return Err("a tagged value".into()),
        other => out.push_str(&format!("{pad}- {}\n", scalar(other, indent + 2)?)),
    }
    Ok(())
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
