//! Laying out a hint for the terminal. In `exercises/info.toml` a hint is
//! prose, code, or both: lines indented by four spaces or more are code and
//! are printed exactly as written (line breaks and indentation kept); other
//! lines are prose, joined into paragraphs and wrapped to the width.

/// The lines to print for `hint`, prose wrapped at `width` characters.
pub fn layout(hint: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let flush = |paragraph: &mut Vec<&str>, lines: &mut Vec<String>| {
        if !paragraph.is_empty() {
            lines.extend(wrap(&paragraph.join(" "), width));
            paragraph.clear();
        }
    };
    for line in hint.trim_matches('\n').lines() {
        let line = line.trim_end();
        if is_code(line) {
            flush(&mut paragraph, &mut lines);
            lines.push(line.to_string());
        } else if line.is_empty() {
            flush(&mut paragraph, &mut lines);
            lines.push(String::new());
        } else if let Some(item) = line.strip_prefix("- ") {
            flush(&mut paragraph, &mut lines);
            let wrapped = wrap(item, width.saturating_sub(2).max(1));
            for (i, part) in wrapped.into_iter().enumerate() {
                lines.push(format!("{}{part}", if i == 0 { "- " } else { "  " }));
            }
        } else {
            paragraph.push(line.trim());
        }
    }
    flush(&mut paragraph, &mut lines);
    lines
}

/// Whether a hint line is code: indented by at least four spaces (or a tab).
pub fn is_code(line: &str) -> bool {
    line.starts_with("    ") || line.starts_with('\t')
}

/// `text` cut into lines of at most `width` characters at spaces (a longer
/// word keeps its own line).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let line = lines.last_mut().expect("never empty");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_keeps_its_layout_and_prose_wraps() {
        let hint = "\
Read until EAGAIN:
    loop {
        match read(fd, &mut buf) {
            Ok(0) => return Ok(true),
        }
    }
and then stop, because the socket is empty and another read would only say EAGAIN again.
";
        let lines = layout(hint, 40);
        assert_eq!(
            lines,
            [
                "Read until EAGAIN:",
                "    loop {",
                "        match read(fd, &mut buf) {",
                "            Ok(0) => return Ok(true),",
                "        }",
                "    }",
                "and then stop, because the socket is",
                "empty and another read would only say",
                "EAGAIN again.",
            ]
        );
    }

    #[test]
    fn a_one_line_hint_wraps() {
        let lines = layout("one two three four five", 9);
        assert_eq!(lines, ["one two", "three", "four five"]);
    }

    #[test]
    fn prose_lines_join_into_a_paragraph_and_blank_lines_stay() {
        let lines = layout("first line\nsecond line\n\nafter a gap", 80);
        assert_eq!(lines, ["first line second line", "", "after a gap"]);
    }

    #[test]
    fn list_items_are_lines_of_their_own() {
        let lines = layout("Each turn:\n- build the array of pollfds,\n- poll", 16);
        assert_eq!(
            lines,
            [
                "Each turn:",
                "- build the",
                "  array of",
                "  pollfds,",
                "- poll"
            ]
        );
    }

    #[test]
    fn long_words_keep_their_own_line() {
        assert_eq!(wrap("a verylongword b", 5), ["a", "verylongword", "b"]);
    }
}
