//! Reading the book's sources: the `{{#include ...}}` directives of a page,
//! its headings, and the links of `SUMMARY.md`, the way mdBook reads them.

/// What part of a file an include directive asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// The whole file: `{{#include FILE}}`.
    All,
    /// `{{#include FILE:anchor}}`.
    Anchor(String),
    /// Lines, 1-based and inclusive: `FILE:5:` is `Lines(Some(5), None)`,
    /// `FILE:3:7` is `Lines(Some(3), Some(7))`, `FILE::7` is `Lines(None, Some(7))`,
    /// and `FILE:5` (one line) is `Lines(Some(5), Some(5))`.
    Lines(Option<usize>, Option<usize>),
}

/// One `{{#include ...}}`-like directive of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The 1-based line of the page it is on.
    pub line: usize,
    /// The directive as written, e.g. `{{#include ../x.rs:drain}}`.
    pub text: String,
    /// The file, relative to the page.
    pub path: String,
    pub range: Range,
}

/// The directives that name a file: `include`, `rustdoc_include`, `playground`.
const FILE_DIRECTIVES: [&str; 3] = ["include", "rustdoc_include", "playground"];

/// Every file-including directive in `page`, except escaped ones
/// (`\{{#include ...}}`, which mdBook prints as is).
pub fn includes(page: &str) -> Vec<Include> {
    let mut found = Vec::new();
    for (index, line) in page.lines().enumerate() {
        let mut rest = line;
        let mut offset = 0;
        while let Some(start) = rest.find("{{#") {
            let absolute = offset + start;
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            let text = &rest[start..start + len + 2];
            let escaped = line[..absolute].ends_with('\\');
            if !escaped && let Some(include) = parse_directive(text, index + 1) {
                found.push(include);
            }
            offset = absolute + len + 2;
            rest = &line[offset..];
        }
    }
    found
}

fn parse_directive(text: &str, line: usize) -> Option<Include> {
    let inner = text.strip_prefix("{{#")?.strip_suffix("}}")?.trim();
    let (kind, args) = inner.split_once(char::is_whitespace)?;
    if !FILE_DIRECTIVES.contains(&kind) {
        return None;
    }
    // `playground` takes extra words (`editable`) after the path.
    let target = args.split_whitespace().next()?;
    let (path, range) = match target.split_once(':') {
        None => (target, Range::All),
        Some((path, spec)) => (path, parse_range(spec)),
    };
    Some(Include {
        line,
        text: text.to_string(),
        path: path.to_string(),
        range,
    })
}

fn parse_range(spec: &str) -> Range {
    let number = |s: &str| s.parse::<usize>().ok();
    match spec.split_once(':') {
        None => match number(spec) {
            Some(n) => Range::Lines(Some(n), Some(n)),
            None => Range::Anchor(spec.to_string()),
        },
        Some((start, end)) => {
            let start_ok = start.is_empty() || number(start).is_some();
            let end_ok = end.is_empty() || number(end).is_some();
            if start_ok && end_ok {
                Range::Lines(number(start), number(end))
            } else {
                Range::Anchor(spec.to_string())
            }
        }
    }
}

/// Whether `file` marks `anchor` with both `ANCHOR: anchor` and
/// `ANCHOR_END: anchor` (as mdBook looks for them: the whole word).
pub fn has_anchor(file: &str, anchor: &str) -> (bool, bool) {
    let marks = |tag: &str| {
        file.lines().any(|line| {
            line.match_indices(tag).any(|(at, _)| {
                let name: String = line[at + tag.len()..]
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                name == anchor
            })
        })
    };
    (marks("ANCHOR:"), marks("ANCHOR_END:"))
}

/// The links of `SUMMARY.md` as `(line, title, target)`; draft chapters
/// (`[Title]()`) and external links are left out.
pub fn summary_links(summary: &str) -> Vec<(usize, String, String)> {
    let mut links = Vec::new();
    for (index, line) in summary.lines().enumerate() {
        let mut rest = line;
        while let Some(open) = rest.find('[') {
            let Some(close) = rest[open..].find("](") else {
                break;
            };
            let title = &rest[open + 1..open + close];
            let after = &rest[open + close + 2..];
            let Some(end) = after.find(')') else {
                break;
            };
            let target = after[..end].trim();
            if !target.is_empty() && !target.contains("://") {
                links.push((index + 1, title.to_string(), target.to_string()));
            }
            rest = &after[end + 1..];
        }
    }
    links
}

/// The text of every ATX heading of a page (`## The loop` -> `The loop`),
/// outside fenced code blocks, without a closing `#` sequence or an
/// attribute block (`{#custom-id}`).
pub fn headings(page: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fence: Option<&str> = None;
    for line in page.lines() {
        let trimmed = line.trim_start();
        if let Some(open) = fence {
            if trimmed.starts_with(open) {
                fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") {
            fence = Some("```");
            continue;
        }
        if trimmed.starts_with("~~~") {
            fence = Some("~~~");
            continue;
        }
        let level = trimmed.chars().take_while(|&c| c == '#').count();
        let rest = &trimmed[level..];
        if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        let mut text = rest.trim();
        if text.ends_with('}')
            && let Some(open) = text.rfind("{#")
        {
            text = text[..open].trim_end();
        }
        let without_closing = text.trim_end_matches('#');
        if without_closing.is_empty() || without_closing.ends_with(' ') {
            text = without_closing.trim_end();
        }
        found.push(text.to_string());
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form_of_include() {
        let page = "\
text {{#include ../a.rs}} and {{#include ../a.rs:drain}}
{{#include ../t.snap:5:}}
{{#rustdoc_include ../b.rs:3:7}}
{{ #include nothing }} \\{{#include escaped.rs}}
{{#include ../c.rs::4}} {{#include ../c.rs:2}}
{{#playground ../d.rs editable}} {{#title Not a file}}
";
        let found = includes(page);
        let seen: Vec<(usize, &str, &Range)> = found
            .iter()
            .map(|i| (i.line, i.path.as_str(), &i.range))
            .collect();
        assert_eq!(
            seen,
            [
                (1, "../a.rs", &Range::All),
                (1, "../a.rs", &Range::Anchor("drain".into())),
                (2, "../t.snap", &Range::Lines(Some(5), None)),
                (3, "../b.rs", &Range::Lines(Some(3), Some(7))),
                (5, "../c.rs", &Range::Lines(None, Some(4))),
                (5, "../c.rs", &Range::Lines(Some(2), Some(2))),
                (6, "../d.rs", &Range::All),
            ]
        );
    }

    #[test]
    fn anchors_match_whole_names() {
        let file = "// ANCHOR: drain_all\nfn f() {}\n// ANCHOR_END: drain_all\n// ANCHOR: rearm\n";
        assert_eq!(has_anchor(file, "drain_all"), (true, true));
        assert_eq!(has_anchor(file, "drain"), (false, false));
        assert_eq!(has_anchor(file, "rearm"), (true, false));
    }

    #[test]
    fn summary_links_skip_drafts_and_urls() {
        let summary = "# Summary\n\n[Introduction](introduction.md)\n\n- [01. Blocking I/O](ch01-blocking-io.md)\n- [Later]()\n- [Web](https://example.com)\n";
        let links = summary_links(summary);
        assert_eq!(
            links,
            [
                (3, "Introduction".to_string(), "introduction.md".to_string()),
                (
                    5,
                    "01. Blocking I/O".to_string(),
                    "ch01-blocking-io.md".to_string()
                ),
            ]
        );
    }

    #[test]
    fn headings_of_a_page() {
        let page = "# 06. A server\n\ntext # not a heading\n## The loop ##\n```rust\n// # not a heading\n## nor this\n```\n### When `epoll_ctl` says no {#errors}\n#hashtag\n####### seven\n";
        assert_eq!(
            headings(page),
            ["06. A server", "The loop", "When `epoll_ctl` says no"]
        );
    }
}
