//! The passwords Django's `CommonPasswordValidator` refuses: its list of 19,640 (shipped with
//! Django, BSD-licensed, see `data/common-passwords.LICENSE`), stored here as plain text, one
//! per line, sorted by bytes (`LC_ALL=C sort -u`). The text is searched where it lies in the
//! component's data: a binary search over byte offsets that finds the line around each probe,
//! so a check reads about 15 lines and builds nothing (an instance lives for one request,
//! so anything built would be built per request). 162 KB in the component, no decompressor.

/// The list, sorted by bytes, each line ending in `\n`.
const LIST: &str = include_str!("../data/common-passwords.txt");

/// Whether Django would refuse `password` as common: compared lower-cased and stripped.
pub fn is_common(password: &str) -> bool {
    let candidate = password.trim().to_lowercase();
    contains(LIST, &candidate)
}

/// Whether `sorted` (lines in byte order, each ending in `\n`) has the line `needle`.
fn contains(sorted: &str, needle: &str) -> bool {
    let text = sorted.as_bytes();
    let needle = needle.as_bytes();
    // Invariant: every line that starts before `low` is less than `needle`, every line that
    // starts at or after `high` is greater; lines start at 0 or just after a `\n`.
    let (mut low, mut high) = (0usize, text.len());
    while low < high {
        let middle = low + (high - low) / 2;
        // The line that holds `middle`, found by walking back to its start.
        let start = text[low..middle]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(low, |at| low + at + 1);
        let end = text[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |at| start + at);
        match text[start..end].cmp(needle) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => low = end + 1,
            std::cmp::Ordering::Greater => high = start,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_djangos_sorted_and_lower_case() {
        let lines: Vec<&str> = LIST.lines().collect();
        assert_eq!(lines.len(), 19_640);
        assert!(lines
            .windows(2)
            .all(|pair| pair[0].as_bytes() < pair[1].as_bytes()));
        assert!(lines.iter().all(|line| *line == line.to_lowercase().trim()));
        // Every line is found, and nothing between them.
        for line in &lines {
            assert!(contains(LIST, line), "{line}");
            assert!(!contains(LIST, &format!("{line}\u{1}")), "{line}");
        }
    }

    #[test]
    fn common_passwords_are_found_whatever_their_case_and_spaces() {
        for common in ["password1", "iloveyou1", "PassWord1", " qwerty ", "123456"] {
            assert!(is_common(common), "{common}");
        }
        for rare in [
            "correct horse battery",
            "",
            "zzzzzzzzzzzzzzzzzzzzzz",
            "a new password",
        ] {
            assert!(!is_common(rare), "{rare}");
        }
    }

    #[test]
    fn the_search_handles_the_edges_of_a_list() {
        let list = "b\nd\nf\n";
        for (needle, found) in [
            ("a", false),
            ("b", true),
            ("c", false),
            ("d", true),
            ("e", false),
            ("f", true),
            ("g", false),
            ("", false),
        ] {
            assert_eq!(contains(list, needle), found, "{needle}");
        }
        assert!(!contains("", "a"));
    }
}
