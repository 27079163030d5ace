//! Printing: JSON results indented on a terminal, one line otherwise or with
//! `--compact`; and [`terminal_safe`], the one filter everything that came from the
//! server goes through before it is printed.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::IsTerminal;

use serde_json::Value;

use crate::options::OutputArgs;

/// How JSON is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Indented, several lines.
    Pretty,
    /// One line.
    Compact,
}

impl Style {
    /// `--compact` / `--pretty` if given, else pretty exactly when stdout is a terminal.
    pub(crate) fn from_options(options: OutputArgs) -> Self {
        Self::choose(options, std::io::stdout().is_terminal())
    }

    fn choose(options: OutputArgs, stdout_is_terminal: bool) -> Self {
        if options.compact {
            Self::Compact
        } else if options.pretty || stdout_is_terminal {
            Self::Pretty
        } else {
            Self::Compact
        }
    }

    /// `value` as text in this style (no trailing newline), safe for a terminal: the
    /// control characters JSON allows raw in strings (DEL and U+0080..U+009F) are
    /// written as `\u` escapes, so the text is still the same JSON.
    pub(crate) fn format(self, value: &Value) -> String {
        let text = match self {
            Self::Pretty => serde_json::to_string_pretty(value),
            Self::Compact => serde_json::to_string(value),
        };
        // Serializing a `Value` cannot fail (its keys are strings).
        let text = text.unwrap_or_default();
        match terminal_safe(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(safe) => safe,
        }
    }
}

/// Whether a terminal could act on `c`: the C0 controls but newline and tab (ESC
/// starts escape sequences, CR returns to the start of the line, BS moves back, BEL
/// rings), DEL, and the C1 controls U+0080..U+009F (U+009B is a one-character CSI).
fn is_terminal_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
}

/// `text` made safe to print on a terminal: every control character a terminal could
/// act on is shown as an escape instead (`\r` for CR, `\u001b` for ESC, `\u009b`
/// for the C1 CSI, ...), so server text cannot move the cursor, clear the screen,
/// set the window title or overwrite a line. CR LF (HMP's line end) becomes LF first.
/// The escapes are JSON's, so serialized JSON stays valid JSON with the same meaning.
/// Every piece of text that came from the server goes through this before printing.
pub(crate) fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_terminal_control) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' => safe.push_str("\\r"),
            c if is_terminal_control(c) => {
                let _ = write!(safe, "\\u{:04x}", u32::from(c));
            }
            c => safe.push(c),
        }
    }
    Cow::Owned(safe)
}

/// An event as one line of JSON, as `qmp events` prints it:
/// `{"event": NAME, "data": {...}, "timestamp": {"seconds": S, "microseconds": U}}`
/// (members in QEMU's order; `data` only when the event has some).
pub(crate) fn event_line(event: &qmp_std::Event) -> String {
    let timestamp = event.timestamp();
    let name = Value::String(event.name().to_owned());
    let data = event.data_value();
    let data = if data.is_null() {
        String::new()
    } else {
        format!(",\"data\":{}", Style::Compact.format(&data))
    };
    format!(
        "{{\"event\":{}{data},\"timestamp\":{{\"seconds\":{},\"microseconds\":{}}}}}",
        Style::Compact.format(&name),
        timestamp.seconds,
        timestamp.microseconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(compact: bool, pretty: bool) -> OutputArgs {
        OutputArgs { compact, pretty }
    }

    #[test]
    fn terminal_decides_unless_told() {
        assert_eq!(Style::choose(options(false, false), true), Style::Pretty);
        assert_eq!(Style::choose(options(false, false), false), Style::Compact);
        assert_eq!(Style::choose(options(true, false), true), Style::Compact);
        assert_eq!(Style::choose(options(false, true), false), Style::Pretty);
    }

    #[test]
    fn server_text_is_made_safe_for_a_terminal() {
        assert!(matches!(terminal_safe("plain\ttext\n"), Cow::Borrowed(_)));
        assert_eq!(
            terminal_safe("a\u{1b}[2J\u{1b}]0;title\u{7}b"),
            "a\\u001b[2J\\u001b]0;title\\u0007b"
        );
        assert_eq!(terminal_safe("line\r\nnext\rover"), "line\nnext\\rover");
        assert_eq!(
            terminal_safe("\u{9b}31m\u{7f}\u{8}"),
            "\\u009b31m\\u007f\\u0008"
        );
        // JSON stays JSON with the same meaning.
        let value = json!({"desc": "x\u{9b}2J\u{1b}[0m\u{7f}"});
        let text = Style::Compact.format(&value);
        assert!(!text.chars().any(is_terminal_control), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
        let text = Style::Pretty.format(&value);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }

    #[test]
    fn formats() {
        let value = json!({"a": [1, 2], "b": {}});
        assert_eq!(Style::Compact.format(&value), r#"{"a":[1,2],"b":{}}"#);
        assert_eq!(
            Style::Pretty.format(&value),
            "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}"
        );
    }
}
