//! Making text from files and commands safe to show in a terminal.
//!
//! Owns: stripping terminal control sequences (CSI, OSC, DCS, ...) and
//! control characters from anything that came from outside: log lines,
//! commands, node names. Pure.

/// One line of display text: escape sequences removed, every other control
/// character (newlines and tabs included) shown as a space or `�`.
pub fn clean_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    strip_into(text, &mut out, |c, out| match c {
        '\t' | '\n' | '\r' => out.push(' '),
        _ => out.push('\u{FFFD}'),
    });
    out
}

/// Log text: escape sequences removed, tabs expanded to one space, `\r`
/// dropped, other control characters as `�`; newlines are kept.
pub fn clean_log(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    strip_into(text, &mut out, |c, out| match c {
        '\n' => out.push('\n'),
        '\t' => out.push_str("    "),
        '\r' => {}
        _ => out.push('\u{FFFD}'),
    });
    out
}

/// True for characters that must never reach the terminal as they are.
fn is_control(c: char) -> bool {
    c.is_control() || c == '\u{7f}'
}

fn strip_into(text: &str, out: &mut String, on_control: impl Fn(char, &mut String)) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1 introducers used as single characters: CSI, OSC, DCS, ...
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if is_control(c) => on_control(c, out),
            c => out.push(c),
        }
    }
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_escape(chars: &mut Chars) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']') | Some('P') | Some('X') | Some('^') | Some('_') => skip_string(chars),
        // Two-character sequences with intermediates (ESC ( B, ESC # 8...).
        Some(c) if ('\u{20}'..='\u{2f}').contains(&c) => {
            chars.next();
        }
        _ => {}
    }
}

/// CSI: parameters and intermediates up to a final byte in @..~.
fn skip_csi(chars: &mut Chars) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            return;
        }
    }
}

/// OSC/DCS/SOS/PM/APC: up to BEL or ST (ESC \ or U+9C).
fn skip_string(chars: &mut Chars) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_csi_osc_and_controls() {
        assert_eq!(clean_line("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(clean_line("a\u{1b}]0;title\u{7}b"), "ab");
        assert_eq!(clean_line("a\u{1b}]52;c;ZXZpbA==\u{1b}\\b"), "ab", "no clipboard writes");
        assert_eq!(clean_line("x\ty\nz"), "x y z");
        assert_eq!(clean_line("bell\u{7}"), "bell\u{FFFD}");
        assert_eq!(clean_line("\u{9b}2Jcleared"), "cleared");
        assert_eq!(clean_line("résumé ✓"), "résumé ✓");
    }

    #[test]
    fn logs_keep_newlines() {
        assert_eq!(clean_log("50%\r100%\n\u{1b}[2Kdone\n"), "50%100%\ndone\n");
    }

    #[test]
    fn unterminated_sequences_do_not_swallow_forever_or_panic() {
        assert_eq!(clean_line("\u{1b}["), "");
        assert_eq!(clean_line("\u{1b}"), "");
        assert_eq!(clean_line("ok\u{1b}]no end"), "ok");
    }
}
