//! `qmp shell`: an interactive QMP shell.
//!
//! Lines are `COMMAND key=value ...` (qmp-shell's syntax, split like a POSIX shell so
//! quotes work), raw JSON requests, or one of the built-ins: `help [NAME]`,
//! `hmp HMP-COMMAND`, `transaction(` ... `)` (also `begin` / `commit` / `abort`),
//! `events on|off`, `exit`. Arguments are typed by the schema (see `arguments`). Tab
//! completes command names (`query-commands`), argument names and enum values
//! (`query-qmp-schema`, following union discriminators such as `driver=file`), and
//! values that name live things (node names, job ids, device ids, asked of the server).
//! Events are printed as they arrive, above the prompt, through rustyline's external
//! printer, so the line being typed is redrawn intact below them. A failed line is only
//! that line's failure: the shell ends on `exit`, Ctrl-D, or a lost connection, which
//! wakes an idle prompt at once.
//!
//! When stdin is not a terminal the shell is a script runner (`qmp shell < script`):
//! plain lines, no prompt; a failed line is reported with its number and the next one
//! runs (`--fail-fast` stops); with stdout not a terminal every result is one JSON line
//! and events go to stderr (`--events-json`: JSON lines on stdout); the exit code is
//! that of the first failed line.

use std::io::{BufRead, IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::history::{DefaultHistory, History as _};
use rustyline::{
    CompletionType, Config, Context, Editor, ExternalPrinter as _, Helper, Highlighter, Hinter,
    Validator,
};
use serde_json::{Map, Value};

use crate::arguments::{self, split_line};
use crate::exit::Failure;
use crate::options::ShellArgs;
use crate::output::{terminal_safe, Style};
use crate::schema::Schema;
use crate::session::Session;

/// How long the shell waits for QEMU to close the connection after `quit`.
const QUIT_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The shell's own words, completed beside the command names.
const BUILTINS: &[&str] = &["help", "hmp", "transaction(", "begin", "events", "exit"];

/// Built-ins valid inside a transaction.
const TRANSACTION_BUILTINS: &[&str] = &[")", "commit", "abort"];

const HELP_TEXT: &str = "\
  COMMAND key=value ...   run a QMP command (a.b=1 nests; values are JSON when they parse)
  {\"execute\": ...}        send a raw JSON request
  help [NAME]             this text, or a command's or event's arguments from the schema,
                          with QEMU's documentation of it
  hmp HMP-COMMAND         run a human monitor command (e.g. hmp info block)
  transaction(            start a transaction: each next line is ACTION key=value ...
  )                       send the transaction (begin/commit/abort also work)
  events on|off           show or hide events as they arrive
  exit                    leave the shell (so does Ctrl-D)
  quit                    QEMU's quit command: stops QEMU (and so ends the shell)
Tab completes commands, argument names (driver=... first for blockdev-add) and values.";

/// State shared between the shell loop and the completer.
#[derive(Debug, Default)]
struct Shared {
    /// Inside `transaction(` ... `)`.
    in_transaction: AtomicBool,
    /// The line editor waits for a line (a lost connection then wakes it).
    reading_line: AtomicBool,
}

/// Tab completion from the command list, the schema and the server's live state.
#[derive(Helper, Hinter, Highlighter, Validator)]
struct ShellHelper {
    commands: Vec<String>,
    schema: Schema,
    shared: Arc<Shared>,
    /// For live values (node names, job ids, device ids); `None` in unit tests.
    session: Option<qmp_std::Client>,
}

/// Values of the server's current state that an argument names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LiveValues {
    /// Block node names (`query-named-block-nodes`).
    NodeNames,
    /// Job ids (`query-jobs`).
    JobIds,
    /// Device ids (`qom-list /machine/peripheral`).
    DeviceIds,
}

/// Members that name an existing block node (outside `blockdev-add`'s own
/// `node-name`, which names a new one).
const NODE_REFERENCES: &[&str] = &[
    "node-name",
    "node",
    "device",
    "target",
    "base-node",
    "top-node",
    "overlay",
    "file",
    "backing",
    "image",
    "bitmap-node",
];

/// How long completion waits for the server's live values.
const LIVE_VALUES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Which live values complete `member` of `command` (of a type accepting `accepts`).
fn live_values_for(
    command: &str,
    member: &str,
    accepts: crate::schema::Accepts,
) -> Option<LiveValues> {
    if (command.starts_with("job-") && member == "id")
        || (command.starts_with("block-job-") && member == "device")
    {
        return Some(LiveValues::JobIds);
    }
    if command == "device_del" && member == "id" {
        return Some(LiveValues::DeviceIds);
    }
    if !accepts.string || member == "job-id" {
        return None;
    }
    let new_name = member == "node-name" && matches!(command, "blockdev-add" | "blockdev-create");
    let reference = NODE_REFERENCES.contains(&member) || (accepts.object && !accepts.anything);
    (reference && !new_name).then_some(LiveValues::NodeNames)
}

/// Fetches live values from the server (nothing when it does not answer in time).
fn fetch_live_values(client: &qmp_std::Client, what: LiveValues) -> Vec<String> {
    let (command, arguments, path, key) = match what {
        LiveValues::NodeNames => (
            "query-named-block-nodes",
            serde_json::json!({"flat": true}),
            None,
            "node-name",
        ),
        LiveValues::JobIds => ("query-jobs", Value::Null, None, "id"),
        LiveValues::DeviceIds => (
            "qom-list",
            serde_json::json!({"path": "/machine/peripheral"}),
            Some("child<"),
            "name",
        ),
    };
    let reply = client
        .submit_value(
            command,
            &arguments,
            qmp_std::CallOptions::new().timeout(LIVE_VALUES_TIMEOUT),
        )
        .wait();
    let Ok(Value::Array(items)) = reply else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|item| {
            path.is_none_or(|prefix| {
                item.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|kind| kind.starts_with(prefix))
            })
        })
        .filter_map(|item| item.get(key).and_then(Value::as_str))
        // A name a terminal would act on is not offered.
        .filter(|name| !name.is_empty() && terminal_safe(name) == *name)
        .map(str::to_owned)
        .collect()
}

impl ShellHelper {
    /// The completions for the text before the cursor: where the replaced part starts,
    /// and the candidates.
    fn candidates(&self, before: &str) -> (usize, Vec<Pair>) {
        let word_start = before
            .rfind(char::is_whitespace)
            .map_or(0, |index| index + 1);
        let word = &before[word_start..];
        let previous: Vec<&str> = before[..word_start].split_whitespace().collect();
        let in_transaction = self.shared.in_transaction.load(Ordering::Relaxed);
        let words_given = previous.len();

        // The first word: a command, an action type in a transaction, or a built-in.
        let first_is_command = previous
            .first()
            .is_some_and(|first| *first == "transaction(" || *first == "begin");
        if words_given == 0 || (first_is_command && words_given == 1) {
            let names: Vec<String> = if in_transaction || first_is_command {
                self.action_types()
                    .into_iter()
                    .chain(TRANSACTION_BUILTINS.iter().map(|word| (*word).to_owned()))
                    .collect()
            } else {
                self.commands
                    .iter()
                    .cloned()
                    .chain(BUILTINS.iter().map(|word| (*word).to_owned()))
                    .collect()
            };
            return (word_start, word_candidates(word, names));
        }
        let command = if first_is_command {
            previous.get(1).copied().unwrap_or_default()
        } else {
            previous.first().copied().unwrap_or_default()
        };
        match command {
            "help" if words_given == 1 => {
                let names = self
                    .schema
                    .commands()
                    .into_iter()
                    .chain(self.schema.events())
                    .map(str::to_owned)
                    .collect();
                return (word_start, word_candidates(word, names));
            }
            "events" if words_given == 1 => {
                let names = vec![String::from("on"), String::from("off")];
                return (word_start, word_candidates(word, names));
            }
            "help" | "hmp" | "events" | "exit" => return (word_start, Vec::new()),
            _ => {}
        }
        let argument_words = previous
            .iter()
            .skip(if first_is_command { 2 } else { 1 })
            .copied();
        let chosen = lenient_arguments(argument_words);
        let arguments_type = if in_transaction || first_is_command {
            self.action_data_type(command)
        } else {
            self.schema.member_type(command, &[], &Map::new())
        };
        let Some(arguments_type) = arguments_type else {
            return (word_start, Vec::new());
        };
        if let Some((key, value_prefix)) = word.split_once('=') {
            let path: Vec<&str> = key.split('.').collect();
            let Some(type_name) = self.type_at(&arguments_type, &path, &chosen) else {
                return (word_start, Vec::new());
            };
            let start = word_start + key.len() + 1;
            let mut choices = self.schema.value_choices(&type_name);
            if choices.is_empty() {
                let member = path.last().copied().unwrap_or_default();
                let accepts = self.schema.accepts(&type_name);
                if let (Some(what), Some(client)) =
                    (live_values_for(command, member, accepts), &self.session)
                {
                    choices = fetch_live_values(client, what);
                }
            }
            return (start, word_candidates(value_prefix, choices));
        }
        // An argument name, possibly below dotted parents.
        let (parents, name_prefix) = match word.rsplit_once('.') {
            Some((parents, prefix)) => (parents.split('.').collect::<Vec<_>>(), prefix),
            None => (Vec::new(), word),
        };
        let Some(parent_type) = self.type_at(&arguments_type, &parents, &chosen) else {
            return (word_start, Vec::new());
        };
        let chosen_here = nested(&chosen, &parents);
        let dotted = if parents.is_empty() {
            String::new()
        } else {
            format!("{}.", parents.join("."))
        };
        let pairs = self
            .schema
            .members(&parent_type, &chosen_here)
            .into_iter()
            .filter(|member| member.name.starts_with(name_prefix))
            .filter(|member| !chosen_here.contains_key(&member.name))
            .flat_map(|member| {
                let accepts = self.schema.accepts(&member.type_name);
                let has_members = !self
                    .schema
                    .members(&member.type_name, &Map::new())
                    .is_empty();
                // An object completes with `.`; a value with `=`; an alternate such
                // as `file` (a node name, or a node defined inline) with both.
                let mut suffixes = Vec::new();
                if accepts.object && has_members {
                    suffixes.push(".");
                }
                let scalar = accepts.string
                    || accepts.boolean
                    || accepts.integer
                    || accepts.number
                    || accepts.null
                    || accepts.array
                    || accepts.anything;
                if scalar || suffixes.is_empty() {
                    suffixes.push("=");
                }
                let optional = if member.optional { "?" } else { "" };
                let dotted = dotted.clone();
                suffixes.into_iter().map(move |suffix| Pair {
                    display: format!("{}{optional}{suffix}", member.name),
                    replacement: format!("{dotted}{}{suffix}", member.name),
                })
            })
            .collect();
        (word_start, pairs)
    }

    /// The type at `path` below `type_name`, with `chosen` as the values typed so far.
    fn type_at(
        &self,
        type_name: &str,
        path: &[&str],
        chosen: &Map<String, Value>,
    ) -> Option<String> {
        let mut current = type_name.to_owned();
        let mut chosen_here = chosen.clone();
        for part in path {
            let member = self
                .schema
                .members(&current, &chosen_here)
                .into_iter()
                .find(|member| member.name == *part)?;
            chosen_here = match chosen_here.get(*part) {
                Some(Value::Object(inner)) => inner.clone(),
                _ => Map::new(),
            };
            current = member.type_name;
        }
        Some(current)
    }

    /// The element type of `transaction`'s `actions` (a union on `type`).
    fn action_union(&self) -> Option<String> {
        let actions = self
            .schema
            .member_type("transaction", &["actions"], &Map::new())?;
        self.schema
            .entry(&actions)?
            .get("element-type")?
            .as_str()
            .map(str::to_owned)
    }

    /// The transaction action types (`block-dirty-bitmap-add`, ...).
    fn action_types(&self) -> Vec<String> {
        self.action_union()
            .and_then(|union| {
                let tag = self
                    .schema
                    .members(&union, &Map::new())
                    .into_iter()
                    .find(|member| member.name == "type")?;
                Some(self.schema.value_choices(&tag.type_name))
            })
            .unwrap_or_default()
    }

    /// The type of an action's `data`.
    fn action_data_type(&self, action: &str) -> Option<String> {
        action_data_type(&self.schema, action)
    }
}

/// Candidates among `names` that start with `prefix`, each followed by a space (names
/// a terminal would act on are left out).
fn word_candidates(prefix: &str, names: Vec<String>) -> Vec<Pair> {
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with(prefix) && terminal_safe(name) == name.as_str())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| Pair {
            replacement: format!("{name} "),
            display: name,
        })
        .collect()
}

/// The `key=value` words typed so far as an object, skipping words that do not parse.
fn lenient_arguments<'a>(words: impl Iterator<Item = &'a str>) -> Map<String, Value> {
    let mut chosen = Map::new();
    for word in words {
        let mut attempt = chosen.clone();
        if arguments::add_key_values(&mut attempt, [word], None).is_ok() {
            chosen = attempt;
        }
    }
    chosen
}

fn nested(chosen: &Map<String, Value>, path: &[&str]) -> Map<String, Value> {
    let mut current = chosen.clone();
    for part in path {
        current = match current.get(*part) {
            Some(Value::Object(inner)) => inner.clone(),
            _ => return Map::new(),
        };
    }
    current
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = line.get(..pos).unwrap_or(line);
        Ok(self.candidates(before))
    }
}

/// What the loop does after a line.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Exit,
}

/// The shell's state apart from line editing.
struct Shell<'a> {
    session: &'a Session,
    style: Style,
    schema: Schema,
    commands: Vec<String>,
    shared: Arc<Shared>,
    show_events: Arc<AtomicBool>,
    actions: Vec<Value>,
    /// stdout is not a terminal: results are JSON lines, text goes to stderr.
    json_lines: bool,
}

impl Shell<'_> {
    fn prompt(&self) -> &'static str {
        match (
            self.shared.in_transaction.load(Ordering::Relaxed),
            self.session.is_guest_agent(),
        ) {
            (true, _) => "(qmp transaction) ",
            (false, true) => "(qga) ",
            (false, false) => "(qmp) ",
        }
    }

    /// Runs one line. An error is this line's failure only; whether the session is
    /// still usable is for the caller to ask ([`Shell::connection_lost`]).
    fn handle_line(&mut self, line: &str) -> Result<Next, Failure> {
        let line = line.trim();
        let quit = line.split_whitespace().next() == Some("quit")
            && !self.shared.in_transaction.load(Ordering::Relaxed);
        let result = self.dispatch(line);
        if quit && result.is_ok() {
            // QEMU answers `quit` and then closes the connection.
            let deadline = std::time::Instant::now() + QUIT_GRACE;
            while !self.session.client().is_closed() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if self.session.client().is_closed() {
                eprintln!("QEMU quit; leaving the shell");
                return Ok(Next::Exit);
            }
        }
        result
    }

    /// The failure that ends the shell, once the connection is gone.
    fn connection_lost(&self) -> Option<Failure> {
        self.session.client().is_closed().then(|| {
            Failure::Connection(format!(
                "the connection to {} ended: did QEMU exit or crash?",
                self.session.description()
            ))
        })
    }

    /// Leaves a transaction being typed, saying what was dropped.
    fn abort_transaction(&mut self, why: &str) -> usize {
        self.shared.in_transaction.store(false, Ordering::Relaxed);
        let dropped = self.actions.len();
        self.actions.clear();
        eprintln!("transaction aborted ({why}): {dropped} actions not sent");
        dropped
    }

    fn dispatch(&mut self, line: &str) -> Result<Next, Failure> {
        if line.is_empty() || line.starts_with('#') {
            return Ok(Next::Continue);
        }
        if line.starts_with('{') {
            let value = self.session.execute_message(line)?;
            self.print(&value);
            return Ok(Next::Continue);
        }
        if let Some(rest) = line.strip_prefix("hmp") {
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                return self.hmp(rest.trim());
            }
        }
        let words =
            split_line(line).ok_or_else(|| Failure::Usage(String::from("unbalanced quotes")))?;
        let Some((first, rest)) = words.split_first() else {
            return Ok(Next::Continue);
        };
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        if self.shared.in_transaction.load(Ordering::Relaxed) {
            return self.transaction_line(first, &rest);
        }
        match (first.as_str(), rest.as_slice()) {
            ("exit", []) => Ok(Next::Exit),
            ("help", []) => {
                self.print_text(&self.help_text());
                Ok(Next::Continue)
            }
            ("help", [name]) => {
                if self.schema.is_empty() {
                    // The guest agent has no schema to ask: QEMU's documentation, offline.
                    let text = crate::docs::describe(crate::docs::Vocabulary::GuestAgent, name)
                        .ok_or_else(|| {
                            Failure::Usage(format!("{name}: not a guest-agent command"))
                        })?;
                    self.print_text(&text);
                    return Ok(Next::Continue);
                }
                let mut text = self
                    .schema
                    .describe(name, 2)
                    .map_err(|unknown| Failure::Usage(unknown.to_string()))?;
                if let Some(doc) = crate::docs::describe(crate::docs::Vocabulary::Qmp, name) {
                    text.push('\n');
                    text.push_str(&doc);
                }
                self.print_text(&text);
                Ok(Next::Continue)
            }
            ("events", [switch @ ("on" | "off")]) => {
                self.show_events.store(*switch == "on", Ordering::Relaxed);
                Ok(Next::Continue)
            }
            ("transaction(" | "begin", action) => {
                self.shared.in_transaction.store(true, Ordering::Relaxed);
                self.actions.clear();
                match action.split_first() {
                    Some((first, rest)) => self.transaction_line(first, rest),
                    None => Ok(Next::Continue),
                }
            }
            (")" | "commit" | "abort", _) => Err(Failure::Usage(format!(
                "'{first}' outside a transaction (start one with `transaction(`)"
            ))),
            (command, words) => {
                let arguments = if words.is_empty() {
                    Value::Null
                } else {
                    let typing = arguments::Typing::for_command(&self.schema, command);
                    Value::Object(arguments::build_arguments(
                        None,
                        words.iter().copied(),
                        typing,
                    )?)
                };
                let value = self
                    .session
                    .execute(command, &arguments)
                    .map_err(|failure| {
                        crate::explain_missing_command(failure, self.session, command)
                    })?;
                self.print(&value);
                Ok(Next::Continue)
            }
        }
    }

    /// `help`: the built-ins, then every command of this server.
    fn help_text(&self) -> String {
        let mut text = format!("{HELP_TEXT}\n");
        let mut names: Vec<&str> = self.commands.iter().map(String::as_str).collect();
        names.sort_unstable();
        text.push_str(&format!("Commands ({}):\n", names.len()));
        let mut line = String::from(" ");
        for name in names {
            if line.len() + name.len() + 1 > HELP_WIDTH {
                text.push_str(&line);
                text.push('\n');
                line = String::from(" ");
            }
            line.push(' ');
            line.push_str(name);
        }
        text.push_str(&line);
        text.push('\n');
        text
    }

    /// A line inside `transaction(` ... `)`: an action, possibly ending with `)`.
    fn transaction_line(&mut self, first: &str, rest: &[&str]) -> Result<Next, Failure> {
        match first {
            "abort" => {
                self.abort_transaction("abort");
                return Ok(Next::Continue);
            }
            ")" | "commit" => return self.commit(),
            _ => {}
        }
        let (words, finish) = match rest.split_last() {
            Some((&")", words)) => (words, true),
            _ => (rest, false),
        };
        let data_type = action_data_type(&self.schema, first);
        let typing = data_type
            .as_deref()
            .map(|type_name| arguments::Typing::for_type(&self.schema, type_name));
        let data = arguments::build_arguments(None, words.iter().copied(), typing)?;
        self.actions
            .push(serde_json::json!({"type": first, "data": data}));
        if finish {
            self.commit()
        } else {
            Ok(Next::Continue)
        }
    }

    fn commit(&mut self) -> Result<Next, Failure> {
        self.shared.in_transaction.store(false, Ordering::Relaxed);
        let actions = core::mem::take(&mut self.actions);
        let value = self
            .session
            .execute("transaction", &serde_json::json!({"actions": actions}))?;
        self.print(&value);
        Ok(Next::Continue)
    }

    fn hmp(&mut self, command_line: &str) -> Result<Next, Failure> {
        let text = crate::run_hmp(self.session, command_line)?;
        if self.json_lines {
            // One JSON value per result on a pipe: the text as a string.
            self.print(&Value::String(text));
        } else {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        }
        Ok(Next::Continue)
    }

    fn print(&self, value: &Value) {
        crate::print_value(value, self.style);
    }

    /// Text that is not a result (help): stdout on a terminal, stderr when stdout is
    /// JSON lines.
    fn print_text(&self, text: &str) {
        let safe = terminal_safe(text);
        if self.json_lines {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(safe.as_bytes());
        } else {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(safe.as_bytes());
            let _ = stdout.flush();
        }
    }
}

/// Width `help` wraps the command list to.
const HELP_WIDTH: usize = 88;

/// The type of a transaction action's `data` (`None` without a schema).
fn action_data_type(schema: &Schema, action: &str) -> Option<String> {
    let actions = schema.member_type("transaction", &["actions"], &Map::new())?;
    let union = schema.array_element(&actions)?;
    let mut chosen = Map::new();
    chosen.insert(String::from("type"), Value::String(action.to_owned()));
    schema
        .members(&union, &chosen)
        .into_iter()
        .find(|member| member.name == "data")
        .map(|member| member.type_name)
}

/// One event as the shell shows it on a terminal.
fn event_line(event: &qmp_std::Event) -> String {
    let data = event.data_value();
    let name = terminal_safe(event.name());
    if data.is_null() {
        format!("event {name}")
    } else {
        format!("event {name} {}", Style::Compact.format(&data))
    }
}

/// The history file: `--history`, `$QMP_HISTORY`, or `~/.qmp_history`.
fn history_path(args: &ShellArgs) -> Option<PathBuf> {
    if args.no_history {
        return None;
    }
    if let Some(path) = &args.history {
        return Some(path.clone());
    }
    if let Some(path) = std::env::var_os("QMP_HISTORY").filter(|path| !path.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".qmp_history"))
}

/// Runs the shell until `exit`, end of input, or a lost connection.
///
/// # Errors
/// [`Failure::Connection`] when the connection is lost; for a script (stdin not a
/// terminal), [`Failure::Script`] when lines failed.
pub(crate) fn run(session: &Session, args: &ShellArgs, style: Style) -> Result<(), Failure> {
    let guest_agent = session.is_guest_agent();
    let commands = command_names(session)?;
    let schema = if guest_agent {
        Schema::default()
    } else {
        crate::load_schema(session)?
    };
    let shared = Arc::new(Shared::default());
    let show_events = Arc::new(AtomicBool::new(!args.quiet_events));
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let mut shell = Shell {
        session,
        style,
        schema: schema.clone(),
        commands: commands.clone(),
        shared: Arc::clone(&shared),
        show_events: Arc::clone(&show_events),
        actions: Vec::new(),
        json_lines: !stdout_is_terminal,
    };
    let interactive = std::io::stdin().is_terminal() && stdout_is_terminal;
    if interactive {
        let helper = ShellHelper {
            commands,
            schema,
            shared,
            session: Some(session.client().clone()),
        };
        return interactive_loop(&mut shell, helper, args);
    }
    let sink: EventSink = if args.events_json {
        Arc::new(Mutex::new(Box::new(|printed: PrintedEvent| {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", printed.json);
            let _ = stdout.flush();
        })))
    } else if stdout_is_terminal {
        Arc::new(Mutex::new(Box::new(|printed: PrintedEvent| {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", printed.text);
            let _ = stdout.flush();
        })))
    } else {
        // stdout carries the results as JSON lines: events go beside them.
        Arc::new(Mutex::new(Box::new(|printed: PrintedEvent| {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{}", printed.text);
        })))
    };
    let events = start_event_printer(session, sink, show_events, Arc::clone(&shell.shared));
    let result = script_loop(&mut shell, std::io::stdin().lock(), args.fail_fast);
    session.close();
    if let Some(events) = events {
        events.finish();
    }
    result
}

/// Runs the lines of a script: a failed line is reported with its number and the
/// script goes on (or stops, with `fail_fast`); only a lost connection ends it early.
/// The result says whether every line succeeded.
fn script_loop(shell: &mut Shell<'_>, input: impl BufRead, fail_fast: bool) -> Result<(), Failure> {
    let mut failed: Vec<(usize, u8)> = Vec::new();
    let mut line_number = 0;
    for line in input.lines() {
        line_number += 1;
        let line = line.map_err(|error| Failure::Usage(format!("cannot read stdin: {error}")))?;
        let result = shell.handle_line(&line);
        if let Some(lost) = shell.connection_lost() {
            if matches!(result, Ok(Next::Exit)) {
                break;
            }
            if let Err(failure) = &result {
                report_line_failure(Some(line_number), failure);
            }
            return Err(lost);
        }
        match result {
            Ok(Next::Continue) => {}
            Ok(Next::Exit) => break,
            Err(failure) => {
                report_line_failure(Some(line_number), &failure);
                failed.push((line_number, failure.exit_code()));
                if fail_fast {
                    break;
                }
            }
        }
    }
    if shell.shared.in_transaction.load(Ordering::Relaxed) {
        let dropped = shell.abort_transaction("end of input inside transaction(");
        let failure = Failure::Usage(format!(
            "the input ended inside transaction( ... ): {dropped} actions were not sent"
        ));
        report_line_failure(Some(line_number), &failure);
        failed.push((line_number, failure.exit_code()));
    }
    match failed.first() {
        None => Ok(()),
        Some(&(first_line, code)) => Err(Failure::Script {
            code,
            message: format!(
                "{} of {line_number} lines failed (the first: line {first_line})",
                failed.len()
            ),
        }),
    }
}

/// Prints a failed line's error on stderr (with its line number in a script).
fn report_line_failure(line_number: Option<usize>, failure: &Failure) {
    let label = match failure {
        Failure::Qmp { .. } => "error",
        Failure::Timeout(_) => "timeout",
        Failure::Connection(_) => "connection",
        _ => "usage",
    };
    let message = failure.to_string();
    let message = terminal_safe(&message);
    match line_number {
        Some(number) => eprintln!("line {number}: {label}: {message}"),
        None => eprintln!("{label}: {message}"),
    }
}

/// The server's command names: `query-commands`, or the guest agent's `guest-info`.
pub(crate) fn command_names(session: &Session) -> Result<Vec<String>, Failure> {
    if session.is_guest_agent() {
        let info = session.execute("guest-info", &Value::Null)?;
        return Ok(info
            .get("supported_commands")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter(|command| {
                        command.get("enabled").and_then(Value::as_bool) != Some(false)
                    })
                    .filter_map(|command| command.get("name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default());
    }
    let list = session.execute("query-commands", &Value::Null)?;
    Ok(list
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|command| command.get("name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// An event ready to print: as the shell's text line and as a JSON line.
struct PrintedEvent {
    text: String,
    json: String,
}

type EventSink = Arc<Mutex<Box<dyn FnMut(PrintedEvent) + Send>>>;

/// Stops the event thread when dropped.
struct EventPrinter {
    canceller: qmp_std::SubscriptionCanceller,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EventPrinter {
    /// Waits for the thread to print what is still queued and end; call after the
    /// session is closed (a closed session ends the subscription once it is drained).
    fn finish(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EventPrinter {
    fn drop(&mut self) {
        self.canceller.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How many times (50 ms apart) a lost connection tries to wake the line editor.
const WAKE_ATTEMPTS: usize = 40;

fn start_event_printer(
    session: &Session,
    sink: EventSink,
    show: Arc<AtomicBool>,
    shared: Arc<Shared>,
) -> Option<EventPrinter> {
    if session.is_guest_agent() {
        return None;
    }
    let subscription = session.client().subscribe();
    let canceller = subscription.canceller();
    let thread = std::thread::Builder::new()
        .name(String::from("qmp-shell-events"))
        .spawn(move || {
            loop {
                match subscription.recv() {
                    Ok(event) => {
                        if !show.load(Ordering::Relaxed) {
                            continue;
                        }
                        let missed = subscription.take_missed();
                        let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
                        if missed > 0 {
                            let note = format!("({missed} events dropped)");
                            sink(PrintedEvent {
                                json: format!("{{\"dropped\":{missed}}}"),
                                text: note,
                            });
                        }
                        sink(PrintedEvent {
                            text: event_line(&event),
                            json: crate::output::event_line(&event),
                        });
                    }
                    Err(qmp_std::Error::Closed(reason)) => {
                        // Said at once, above the prompt, not at the next command.
                        let note =
                            terminal_safe(&format!("connection closed ({reason})")).into_owned();
                        eprintln_above_prompt(&sink, note);
                        // A prompt waiting for a line is woken so the shell ends now.
                        for _ in 0..WAKE_ATTEMPTS {
                            if !shared.reading_line.load(Ordering::SeqCst) {
                                break;
                            }
                            crate::interrupt::wake_line_editor();
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                        break;
                    }
                    Err(_) => break,
                }
            }
        })
        .ok()?;
    Some(EventPrinter {
        canceller,
        thread: Some(thread),
    })
}

/// Says `note` where events are shown (above the prompt on a terminal).
fn eprintln_above_prompt(sink: &EventSink, note: String) {
    let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
    sink(PrintedEvent {
        json: format!("{{\"closed\":{}}}", serde_json::Value::String(note.clone())),
        text: note,
    });
}

fn interactive_loop(
    shell: &mut Shell<'_>,
    helper: ShellHelper,
    args: &ShellArgs,
) -> Result<(), Failure> {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .history_ignore_dups(true)
        .map_err(|error| Failure::Usage(error.to_string()))?
        .max_history_size(10_000)
        .map_err(|error| Failure::Usage(error.to_string()))?
        .build();
    let mut editor: Editor<ShellHelper, DefaultHistory> = Editor::with_config(config)
        .map_err(|error| Failure::Usage(format!("terminal: {error}")))?;
    editor.set_helper(Some(helper));
    let history = history_path(args);
    if let Some(path) = &history {
        // A missing file is a first run.
        let _ = editor.load_history(path);
    }
    let shared = Arc::clone(&shell.shared);
    let as_json = args.events_json;
    let shown = move |printed: PrintedEvent| if as_json { printed.json } else { printed.text };
    let events = match editor.create_external_printer() {
        Ok(mut printer) => {
            let sink: EventSink = Arc::new(Mutex::new(Box::new(move |printed: PrintedEvent| {
                let _ = printer.print(format!("{}\n", shown(printed)));
            })));
            start_event_printer(shell.session, sink, Arc::clone(&shell.show_events), shared)
        }
        Err(_) => {
            let sink: EventSink = Arc::new(Mutex::new(Box::new(move |printed: PrintedEvent| {
                println!("{}", shown(printed));
            })));
            start_event_printer(shell.session, sink, Arc::clone(&shell.show_events), shared)
        }
    };
    greet(shell.session);
    let result = loop {
        if let Some(lost) = shell.connection_lost() {
            break Err(lost);
        }
        shell.shared.reading_line.store(true, Ordering::SeqCst);
        let read = editor.readline(shell.prompt());
        shell.shared.reading_line.store(false, Ordering::SeqCst);
        match read {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(path) = &history {
                        let _ = editor.history_mut().save(path);
                    }
                }
                let result = shell.handle_line(&line);
                match result {
                    Ok(Next::Exit) => break Ok(()),
                    Ok(Next::Continue) => {}
                    Err(failure) => report_line_failure(None, &failure),
                }
            }
            Err(ReadlineError::Interrupted) => {
                // Ctrl-C drops the line (and a transaction being typed); a lost
                // connection wakes the editor the same way.
                if shell.shared.in_transaction.load(Ordering::Relaxed) {
                    shell.abort_transaction("Ctrl-C");
                }
            }
            Err(ReadlineError::Eof) => {
                if shell.shared.in_transaction.load(Ordering::Relaxed) {
                    shell.abort_transaction("Ctrl-D; Ctrl-D again leaves the shell");
                    continue;
                }
                break Ok(());
            }
            Err(error) => break Err(Failure::Usage(format!("terminal: {error}"))),
        }
    };
    if let Some(path) = &history {
        let _ = editor.history_mut().save(path);
    }
    shell.session.close();
    if let Some(events) = events {
        events.finish();
    }
    result
}

fn greet(session: &Session) {
    let version = session
        .client()
        .version()
        .map(|version| format!("QEMU {version}"))
        .unwrap_or_else(|| String::from("the guest agent"));
    let started = if session.started_qemu() {
        format!(", {}", session.description())
    } else {
        format!(" on {}", session.description())
    };
    println!(
        "{}",
        terminal_safe(&format!("Connected to {version}{started}."))
    );
    println!(
        "Type `help` for help, Tab to complete, `exit` or Ctrl-D to leave (`quit` stops QEMU)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> ShellHelper {
        let text = include_str!("testdata/qsd-schema.json");
        let schema = Schema::from_value(serde_json::from_str(text).unwrap()).unwrap();
        let commands = schema.commands().into_iter().map(str::to_owned).collect();
        ShellHelper {
            commands,
            schema,
            shared: Arc::new(Shared::default()),
            session: None,
        }
    }

    fn replacements(helper: &ShellHelper, before: &str) -> (usize, Vec<String>) {
        let (start, pairs) = helper.candidates(before);
        (
            start,
            pairs.into_iter().map(|pair| pair.replacement).collect(),
        )
    }

    #[test]
    fn command_names_complete_first() {
        let helper = helper();
        let (start, found) = replacements(&helper, "query-vers");
        assert_eq!(start, 0);
        assert_eq!(found, vec!["query-version "]);
        let (_, found) = replacements(&helper, "he");
        assert_eq!(found, vec!["help "]);
        let (_, found) = replacements(&helper, "blockdev-");
        assert!(found.contains(&String::from("blockdev-add ")));
        assert!(found.contains(&String::from("blockdev-mirror ")));
    }

    #[test]
    fn argument_names_and_values_complete() {
        let helper = helper();
        let (start, found) = replacements(&helper, "blockdev-mirror sy");
        assert_eq!(start, 16);
        assert_eq!(found, vec!["sync="]);
        let (start, found) = replacements(&helper, "blockdev-mirror sync=f");
        assert_eq!(start, 21);
        assert_eq!(found, vec!["full "]);
        let (_, found) = replacements(&helper, "blockdev-mirror device=a auto-finalize=");
        assert_eq!(found, vec!["false ", "true "]);
        // Given arguments are not offered again.
        let (_, found) = replacements(&helper, "blockdev-mirror device=a de");
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn union_members_follow_the_discriminator() {
        let helper = helper();
        let (_, found) = replacements(&helper, "blockdev-add driver=nu");
        assert_eq!(found, vec!["null-aio ", "null-co "]);
        let (_, before) = replacements(&helper, "blockdev-add fil");
        assert!(before.is_empty(), "{before:?}");
        let (_, after) = replacements(&helper, "blockdev-add driver=file fil");
        assert_eq!(after, vec!["filename="]);
        // Nested objects complete with dots.
        let (_, found) = replacements(&helper, "blockdev-create job-id=j opt");
        assert_eq!(found, vec!["options."]);
        let (_, found) = replacements(&helper, "blockdev-create options.driver=file options.fi");
        assert_eq!(found, vec!["options.filename="]);
    }

    #[test]
    fn transactions_complete_action_types_and_data() {
        let helper = helper();
        let (_, found) = replacements(&helper, "transaction( block-dirty-bitmap-a");
        assert_eq!(found, vec!["block-dirty-bitmap-add "]);
        helper.shared.in_transaction.store(true, Ordering::Relaxed);
        let (_, found) = replacements(&helper, "block-dirty-bitmap-add gr");
        assert_eq!(found, vec!["granularity="]);
        let (_, found) = replacements(&helper, "com");
        assert_eq!(found, vec!["commit "]);
    }

    #[test]
    fn help_and_builtins_complete() {
        let helper = helper();
        let (_, found) = replacements(&helper, "help JOB_STATUS");
        assert_eq!(found, vec!["JOB_STATUS_CHANGE "]);
        let (_, found) = replacements(&helper, "events o");
        assert_eq!(found, vec!["off ", "on "]);
        let (_, found) = replacements(&helper, "hmp inf");
        assert!(found.is_empty());
        let (_, found) = replacements(&helper, "no-such-command x");
        assert!(found.is_empty());
    }

    #[test]
    fn live_values_follow_what_an_argument_names() {
        let schema = helper().schema;
        let accepts = |command: &str, member: &str| {
            let type_name = schema.member_type(command, &[member], &Map::new());
            type_name.map_or_else(crate::schema::Accepts::default, |type_name| {
                schema.accepts(&type_name)
            })
        };
        let live = |command: &str, member: &str| {
            live_values_for(command, member, accepts(command, member))
        };
        assert_eq!(live("job-cancel", "id"), Some(LiveValues::JobIds));
        assert_eq!(
            live("block-job-set-speed", "device"),
            Some(LiveValues::JobIds)
        );
        assert_eq!(
            live("blockdev-del", "node-name"),
            Some(LiveValues::NodeNames)
        );
        assert_eq!(
            live("blockdev-backup", "target"),
            Some(LiveValues::NodeNames)
        );
        assert_eq!(live("blockdev-backup", "job-id"), None);
        // blockdev-add's own node-name is a new name; its `file` names a node.
        assert_eq!(live("blockdev-add", "node-name"), None);
        let string = crate::schema::Accepts {
            string: true,
            ..Default::default()
        };
        assert_eq!(
            live_values_for("device_del", "id", string),
            Some(LiveValues::DeviceIds)
        );
        let reference = crate::schema::Accepts {
            string: true,
            object: true,
            ..Default::default()
        };
        assert_eq!(
            live_values_for("blockdev-add", "file", reference),
            Some(LiveValues::NodeNames)
        );
        assert_eq!(
            live_values_for("blockdev-add", "size", Default::default()),
            None
        );
    }

    #[test]
    fn lenient_arguments_skip_bad_words() {
        let chosen = lenient_arguments(["driver=file", "oops", "a.b=1", "a=2"].into_iter());
        assert_eq!(
            Value::Object(chosen),
            serde_json::json!({"driver": "file", "a": {"b": 1}})
        );
    }

    #[test]
    fn history_path_precedence() {
        let args = ShellArgs {
            history: Some(PathBuf::from("/h")),
            no_history: false,
            quiet_events: false,
            events_json: false,
            fail_fast: false,
        };
        assert_eq!(history_path(&args), Some(PathBuf::from("/h")));
        let none = ShellArgs {
            history: None,
            no_history: true,
            quiet_events: false,
            events_json: false,
            fail_fast: false,
        };
        assert_eq!(history_path(&none), None);
    }
}
