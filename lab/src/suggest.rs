//! "Did you mean ...?" for a mistyped exercise or chapter name.

/// The candidate closest to `typed`, if one is close enough to be what the
/// learner meant: `ch2` -> `ch02`, `ch02_set_nonblock` -> `ch02_set_nonblocking`.
pub fn closest<'a>(typed: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let typed = typed.to_lowercase();
    // A unique candidate that starts with what was typed is the best guess.
    let starting: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| c.starts_with(&typed))
        .collect();
    if let [only] = starting[..] {
        return Some(only);
    }
    candidates
        .iter()
        .copied()
        .map(|c| (distance(&typed, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The Levenshtein distance: how many characters to insert, delete or
/// replace to turn `a` into `b`.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let replace = previous[j] + usize::from(ca != *cb);
            current.push(replace.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 4] = ["ch02", "ch03", "ch02_set_nonblocking", "ch03_rebuild_sets"];

    #[test]
    fn suggests_close_names() {
        assert_eq!(closest("ch2", &NAMES), Some("ch02"));
        assert_eq!(
            closest("ch02_set_nonblock", &NAMES),
            Some("ch02_set_nonblocking")
        );
        assert_eq!(
            closest("ch03_rebuild_set", &NAMES),
            Some("ch03_rebuild_sets")
        );
        assert_eq!(closest("CH03", &NAMES), Some("ch03"));
        assert_eq!(
            closest("ch02_set_nonblokcing", &NAMES),
            Some("ch02_set_nonblocking")
        );
    }

    #[test]
    fn suggests_nothing_for_far_names() {
        assert_eq!(closest("epoll", &NAMES), None);
        assert_eq!(closest("", &[]), None);
    }

    #[test]
    fn distances() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("abc", "abc"), 0);
    }
}
