//! Making text from files and commands safe to show in a terminal.
//!
//! Owns: stripping terminal control sequences (CSI, OSC, DCS, ...) and
//! control characters from anything that came from outside: log lines,
//! commands, node names; showing bidi overrides and invisible characters
//! (which make text read other than it is) as `�`; capping piles of
//! combining marks; and escaping the same in JSON output. Pure.

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

/// Characters that reorder or hide text (bidi embeddings, overrides and
/// isolates, marks, zero-width spaces, the BOM): a command or a task id
/// holding them reads other than it runs.
pub fn is_deceptive(c: char) -> bool {
    matches!(c,
        '\u{061c}' | '\u{180e}' | '\u{200b}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
        | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

/// Combining marks (the common blocks): a pile of thousands on one
/// character draws into one cell and slows every frame.
pub fn is_combining(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036f}' | '\u{0483}'..='\u{0489}' | '\u{0591}'..='\u{05bd}'
        | '\u{0610}'..='\u{061a}' | '\u{064b}'..='\u{065f}' | '\u{1ab0}'..='\u{1aff}'
        | '\u{1dc0}'..='\u{1dff}' | '\u{20d0}'..='\u{20ff}' | '\u{fe20}'..='\u{fe2f}')
}

/// At most this many combining marks on one character are shown.
pub const MAX_COMBINING: usize = 4;

fn strip_into(text: &str, out: &mut String, on_control: impl Fn(char, &mut String)) {
    let mut chars = text.chars().peekable();
    let mut combining = 0;
    while let Some(c) = chars.next() {
        if is_combining(c) {
            combining += 1;
            if combining <= MAX_COMBINING {
                out.push(c);
            }
            continue;
        }
        combining = 0;
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1 introducers used as single characters: CSI, OSC, DCS, ...
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if is_control(c) => on_control(c, out),
            c if is_deceptive(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// JSON text with every C1 control, bidi override and invisible character
/// written as a `\uXXXX` escape (serde_json writes them raw, and a raw
/// U+009B is a CSI to many terminals). These characters occur only inside
/// JSON strings, so escaping them keeps the JSON valid and equal.
pub fn escape_json_text(json: &str) -> std::borrow::Cow<'_, str> {
    let risky = |c: char| ('\u{80}'..='\u{9f}').contains(&c) || is_deceptive(c);
    if !json.chars().any(risky) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if risky(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
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
    fn bidi_invisible_and_combining_piles_are_made_visible_or_capped() {
        assert_eq!(clean_line("evil\u{202e}txt.exe"), "evil\u{FFFD}txt.exe");
        assert_eq!(clean_line("rm\u{200b} -rf"), "rm\u{FFFD} -rf");
        assert_eq!(clean_line("a\u{2066}b\u{2069}"), "a\u{FFFD}b\u{FFFD}");
        let pile: String = std::iter::once('e').chain(std::iter::repeat_n('\u{301}', 5000)).collect();
        assert_eq!(clean_line(&pile).chars().count(), 1 + MAX_COMBINING);
        assert_eq!(clean_line("e\u{301}"), "e\u{301}", "an accent stays");
    }

    #[test]
    fn json_escapes_c1_and_bidi_and_stays_equal() {
        let value = serde_json::json!({"command": "a\u{9b}2J\u{202e}b"});
        let text = value.to_string();
        let escaped = escape_json_text(&text);
        assert!(!escaped.contains('\u{9b}') && escaped.contains("\\u009b") && escaped.contains("\\u202e"));
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
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
