//! Reading an exercise file as text, without compiling it: its tests
//! section, its `#[test]` functions in the order they are written (with
//! their bodies), and the "Read first:" paragraph of its `//!` doc.
//!
//! The file may not compile (a learner's half-written code), so nothing here
//! needs it to: comments and string literals are blanked out first, so that
//! a brace or a `#[test]` inside them is not taken for code.

use crate::workspace::TESTS_MARKER;

/// The text from the tests marker line to the end of the file, if the
/// marker is there (alone on its line).
pub fn tests_section(text: &str) -> Option<&str> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == TESTS_MARKER {
            return Some(&text[offset..]);
        }
        offset += line.len();
    }
    None
}

/// One `#[test]` function of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFn {
    /// The function's name: `keeps_the_access_mode`.
    pub name: String,
    /// The 1-based line of `fn NAME` in the text it was found in.
    pub line: usize,
    /// The body between its braces, with comments and the insides of string
    /// literals blanked out (so `within(` in a comment does not count).
    pub code: String,
}

/// The `#[test]` functions of `text`, in the order they are written.
pub fn test_functions(text: &str) -> Vec<TestFn> {
    let code = blank_comments_and_strings(text);
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("#[test]") {
        let attribute_end = from + at + "#[test]".len();
        // The next `fn NAME`, past any other attributes (`#[should_panic]`).
        let Some(fn_at) = find_word(&code[attribute_end..], "fn") else {
            break;
        };
        let name_start = attribute_end + fn_at + 2;
        let name: String = code[name_start..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let Some(open) = code[name_start..].find('{').map(|i| name_start + i) else {
            break;
        };
        let Some(close) = matching_brace(&code, open) else {
            break;
        };
        found.push(TestFn {
            name,
            line: code[..name_start].matches('\n').count() + 1,
            code: code[open + 1..close].to_string(),
        });
        from = close;
    }
    found
}

/// The byte offset of `word` in `text` as a whole word (not inside `often`).
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The offset of the `}` that closes the `{` at `open`.
fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, byte) in code.bytes().enumerate().skip(open) {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `text` with every comment and the inside of every string and character
/// literal replaced by spaces (line breaks kept), so offsets and line
/// numbers stay the same. Lifetimes (`'a`) are code and stay.
pub fn blank_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    // Blanks keep the byte length of what they replace.
    let blank = |c: char, out: &mut String| {
        if c == '\n' {
            out.push('\n');
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(chars[i], &mut out);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    blank('/', &mut out);
                    blank('*', &mut out);
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    blank('*', &mut out);
                    blank('/', &mut out);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(chars[i], &mut out);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&chars, i) {
            // r"..." or r#"..."#: no escapes; ends at `"` and as many `#`.
            let prefix = chars[i..].iter().position(|&c| c == '"').unwrap_or(0) + 1;
            for &c in &chars[i..i + prefix] {
                out.push(c);
            }
            i += prefix;
            while i < chars.len() {
                let closes = chars[i] == '"'
                    && chars[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&c| c == '#')
                        .count()
                        == hashes;
                if closes {
                    for &c in &chars[i..i + 1 + hashes] {
                        out.push(c);
                    }
                    i += 1 + hashes;
                    break;
                }
                blank(chars[i], &mut out);
                i += 1;
            }
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    blank(chars[i], &mut out);
                    i += 1;
                }
                blank(chars[i], &mut out);
                i += 1;
            }
            if i < chars.len() {
                out.push('"');
                i += 1;
            }
        } else if c == '\'' && is_char_literal(&chars, i) {
            out.push('\'');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    blank(chars[i], &mut out);
                    i += 1;
                }
                blank(chars[i], &mut out);
                i += 1;
            }
            if i < chars.len() {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// If a raw string (`r"`, `r#"`, `br"`) starts at `i`, its number of `#`.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    // Not the end of an identifier such as `for` or `bar`.
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    (chars.get(j + hashes) == Some(&'"')).then_some(hashes)
}

/// Whether the `'` at `i` opens a character literal (`'x'`, `'\n'`) rather
/// than a lifetime or label (`'a`, `'outer:`).
fn is_char_literal(chars: &[char], i: usize) -> bool {
    matches!(
        (chars.get(i + 1), chars.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// The "Read first:" paragraph of a file's `//!` doc, and the book sections
/// it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFirst {
    /// The 1-based line where the paragraph starts.
    pub line: usize,
    /// The paragraph, its lines joined by spaces.
    pub text: String,
    /// Each `chapter NN (...)` of the paragraph: the chapter number (`06`)
    /// and the names quoted inside the parentheses.
    pub sections: Vec<(String, Vec<String>)>,
}

/// Finds the paragraph of the leading `//!` doc that starts with
/// `Read first:`, e.g.
/// `Read first: the book's chapter 06 ("The loop" and "Backpressure"), ...`.
pub fn read_first(text: &str) -> Option<ReadFirst> {
    let mut paragraph: Vec<&str> = Vec::new();
    let mut start = 0;
    let doc_lines = text
        .lines()
        .enumerate()
        .map_while(|(i, line)| line.trim_start().strip_prefix("//!").map(|rest| (i, rest)));
    for (index, rest) in doc_lines.chain([(usize::MAX, "")]) {
        let rest = rest.strip_prefix(' ').unwrap_or(rest).trim_end();
        if rest.is_empty() {
            if paragraph
                .first()
                .is_some_and(|l| l.starts_with("Read first:"))
            {
                let text = paragraph.join(" ");
                let sections = chapter_sections(&text);
                return Some(ReadFirst {
                    line: start + 1,
                    text,
                    sections,
                });
            }
            paragraph.clear();
        } else {
            if paragraph.is_empty() {
                start = index;
            }
            paragraph.push(rest);
        }
    }
    None
}

/// Every `chapter NN (...)` in `text`: the number and the quoted names in
/// the parentheses (a `)` inside quotes does not close them).
fn chapter_sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("chapter ") {
        rest = &rest[at + "chapter ".len()..];
        let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = rest[number.len()..].trim_start();
        if number.is_empty() || !after.starts_with('(') {
            continue;
        }
        let mut names = Vec::new();
        let mut quoted: Option<String> = None;
        let mut end = after.len();
        for (i, c) in after.char_indices().skip(1) {
            match (&mut quoted, c) {
                (None, '"') => quoted = Some(String::new()),
                (None, ')') => {
                    end = i;
                    break;
                }
                (None, _) => {}
                (Some(name), '"') => {
                    names.push(std::mem::take(name));
                    quoted = None;
                }
                (Some(name), c) => name.push(c),
            }
        }
        found.push((format!("{number:0>2}"), names));
        rest = &after[end.min(after.len())..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanking_keeps_code_and_positions() {
        let text = "let a = \"{ // not code }\"; // a comment {\nlet c = '{'; let l: &'a str = r#\"x\"y\"#; /* { /* } */ */ x\n";
        let blanked = blank_comments_and_strings(text);
        assert_eq!(blanked.len(), text.len());
        assert_eq!(blanked.lines().count(), 2);
        assert!(
            !blanked.contains('{') && !blanked.contains('}'),
            "{blanked}"
        );
        assert!(blanked.contains("&'a str"), "{blanked}");
        assert!(blanked.ends_with(" x\n"), "{blanked}");
        assert!(!blanked.contains("comment"));
    }

    const FILE: &str = r#"//! # An exercise
//!
//! Read first: the book's chapter 06 ("The loop" and
//! "Backpressure: a client that never reads"), and "RETURN VALUE" in
//! read(2); chapter 5 ("Timeouts").
//!
//! Check it.

pub fn f() {}

// ===== Tests: don't change anything below this line. =====

#[cfg(test)]
mod tests {
    // #[test] in a comment is not a test
    #[test]
    fn zebra_first() {
        let s = "}";
        within(LIMIT, "x", || {});
    }

    #[test]
    #[should_panic]
    fn apple_second() {
        // within( in a comment does not count
        helper();
    }

    fn helper() {}
}
"#;

    #[test]
    fn tests_in_source_order_with_bodies() {
        let tests = test_functions(tests_section(FILE).unwrap());
        let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["zebra_first", "apple_second"]);
        assert!(tests[0].code.contains("within("));
        assert!(!tests[1].code.contains("within("), "{}", tests[1].code);
        assert!(tests[1].code.contains("helper();"));
        assert_eq!(tests[0].line, 7);
    }

    #[test]
    fn no_marker_no_section() {
        assert_eq!(tests_section("fn f() {}\n// ===== Tests\n"), None);
    }

    #[test]
    fn read_first_names_sections_per_chapter() {
        let found = read_first(FILE).unwrap();
        assert_eq!(found.line, 3);
        assert!(found.text.starts_with("Read first: the book's chapter 06"));
        assert_eq!(
            found.sections,
            [
                (
                    "06".to_string(),
                    vec![
                        "The loop".to_string(),
                        "Backpressure: a client that never reads".to_string()
                    ]
                ),
                ("05".to_string(), vec!["Timeouts".to_string()]),
            ]
        );
    }

    #[test]
    fn no_read_first_paragraph() {
        assert_eq!(read_first("//! Just a title.\n//!\n//! Do it.\n"), None);
    }

    #[test]
    fn a_parenthesis_inside_quotes_does_not_close() {
        let found =
            read_first("//! Read first: chapter 07 (\"What (really) counts\", \"B\").\n").unwrap();
        assert_eq!(
            found.sections,
            [(
                "07".to_string(),
                vec!["What (really) counts".to_string(), "B".to_string()]
            )]
        );
    }
}
