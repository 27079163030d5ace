//! Printing JSON results: indented on a terminal, one line otherwise or with
//! `--compact`.

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

    /// `value` as text in this style (no trailing newline).
    pub(crate) fn format(self, value: &Value) -> String {
        let text = match self {
            Self::Pretty => serde_json::to_string_pretty(value),
            Self::Compact => serde_json::to_string(value),
        };
        // Serializing a `Value` cannot fail (its keys are strings).
        text.unwrap_or_default()
    }
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
    fn formats() {
        let value = json!({"a": [1, 2], "b": {}});
        assert_eq!(Style::Compact.format(&value), r#"{"a":[1,2],"b":{}}"#);
        assert_eq!(
            Style::Pretty.format(&value),
            "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}"
        );
    }
}
