//! `qmp`: talk to QEMU's monitor (QMP) or guest agent (QGA) from the command line.
//!
//! One-shot commands with qmp-shell's `key=value` syntax (typed by the live schema), an
//! interactive shell that is also a script runner, one-shot HMP, event streams,
//! progress bars for block jobs and migration with their outcomes taken from the
//! events, and a schema browser. Everything printed that came from the server goes
//! through `output::terminal_safe`. With no
//! target it starts a private `qemu-storage-daemon`, so `qmp query-version` works on a
//! machine with nothing set up. See `qmp --help` and `cli/README.md`.

mod arguments;
mod docs;
mod exit;
mod interrupt;
mod options;
mod output;
mod schema;
mod session;
mod shell;
mod watch;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use serde_json::Value;

use crate::exit::Failure;
use crate::options::{Cli, EventsArgs, HmpArgs, SchemaArgs, Seconds, Subcommands};
use crate::output::{terminal_safe, Style};
use crate::schema::Schema;
use crate::session::Session;

fn main() -> ExitCode {
    let (own, launch_command) = options::split_launch(std::env::args_os().collect());
    let mut cli = match Cli::try_parse_from(own) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // clap: 0 for --help/--version, 2 for usage errors.
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    cli.target.launch_command = launch_command;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if interrupt::interrupted() => {
            eprintln!("qmp: interrupted");
            ExitCode::from(interrupt::INTERRUPTED_EXIT_CODE)
        }
        Err(failure) => {
            eprintln!("qmp: {}", terminal_safe(&failure.to_string()));
            ExitCode::from(failure.exit_code())
        }
    }
}

/// When a time limit from the command line runs out, counted from now (`None`: never).
pub(crate) fn deadline(limit: Option<Seconds>) -> Option<Instant> {
    limit
        .and_then(|limit| limit.limit)
        .and_then(|limit| Instant::now().checked_add(limit))
}

/// Appended to clap's bash script: QMP command names for the first word, asked of the
/// target given on the line so far.
const BASH_COMMAND_NAMES: &str = r#"
# QMP command names for the first word, from the live target (`qmp command-names`).
_qmp_with_command_names() {
    _qmp "$@"
    local cur="${COMP_WORDS[COMP_CWORD]}" word i target=()
    [[ "$cur" == -* ]] && return 0
    for (( i = 1; i < COMP_CWORD; i++ )); do
        word="${COMP_WORDS[i]}"
        case "$word" in
            -s|--socket|-t|--tcp) target+=("$word" "${COMP_WORDS[i+1]}"); (( i++ )) ;;
            --socket=*|--tcp=*|--qga) target+=("$word") ;;
            --timeout|--connect-timeout|--args) (( i++ )) ;;
            -*) ;;
            *) return 0 ;;
        esac
    done
    local names
    names="$(qmp "${target[@]}" --connect-timeout 2 command-names 2>/dev/null)"
    COMPREPLY+=( $(compgen -W "$names" -- "$cur") )
    return 0
}
complete -F _qmp_with_command_names -o bashdefault -o default qmp
"#;

/// What `qmp` with no command prints.
const NO_COMMAND: &str = "\
no command given. Usage:
  qmp [TARGET] QMP-COMMAND [KEY=VALUE]...   e.g. qmp query-version
  qmp [TARGET] shell|events|watch|hmp|schema
(qmp --help for targets, options and exit codes)";

fn run(cli: Cli) -> Result<(), Failure> {
    let style = Style::from_options(cli.output);
    let reply_timeout = cli.timeout.limit;
    match cli.subcommand {
        Some(Subcommands::Completions(args)) => {
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut command, "qmp", &mut script);
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&script);
            if args.shell == clap_complete::Shell::Bash {
                let _ = stdout.write_all(BASH_COMMAND_NAMES.as_bytes());
            }
            let _ = stdout.flush();
            Ok(())
        }
        Some(Subcommands::CommandNames) => {
            let session = open(&cli.target, reply_timeout)?;
            let mut names = shell::command_names(&session)?;
            names.sort_unstable();
            let mut stdout = std::io::stdout().lock();
            for name in names {
                let _ = writeln!(stdout, "{}", terminal_safe(&name));
            }
            let _ = stdout.flush();
            Ok(())
        }
        Some(Subcommands::Schema(args)) => {
            let session = open(&cli.target, reply_timeout)?;
            schema_command(&session, &args, style)
        }
        Some(Subcommands::Events(args)) => {
            let session = open(&cli.target, reply_timeout)?;
            events_command(&session, &args)
        }
        Some(Subcommands::Watch(args)) => {
            let session = open(&cli.target, reply_timeout)?;
            watch::run(&session, &args)
        }
        Some(Subcommands::Shell(args)) => {
            let session = open(&cli.target, reply_timeout)?;
            shell::run(&session, &args, style)
        }
        Some(Subcommands::Hmp(args)) => {
            let session = open(&cli.target, reply_timeout)?;
            hmp_command(&session, &args)
        }
        None => {
            let Some(command) = cli.command else {
                return Err(Failure::Usage(String::from(NO_COMMAND)));
            };
            // Syntax errors are found before connecting.
            one_shot_arguments(cli.args.as_deref(), &cli.words, None)?;
            let session = open(&cli.target, reply_timeout)?;
            let could_matter = arguments::typing_could_matter(cli.words.iter().map(String::as_str));
            let schema = if !could_matter || session.is_guest_agent() {
                None
            } else {
                // Without a schema (a server that hides it) the words stay untyped.
                load_schema(&session).ok()
            };
            let typing = schema
                .as_ref()
                .and_then(|schema| arguments::Typing::for_command(schema, &command));
            let arguments = one_shot_arguments(cli.args.as_deref(), &cli.words, typing)?;
            let value = session
                .execute(&command, &arguments)
                .map_err(|failure| explain_missing_command(failure, &session, &command))?;
            print_value(&value, style);
            Ok(())
        }
    }
}

/// Adds what to do to a `CommandNotFound`: the names meant, and, on the private
/// storage daemon, that the VM's own monitor must be named.
pub(crate) fn explain_missing_command(
    failure: Failure,
    session: &Session,
    command: &str,
) -> Failure {
    let Failure::Qmp { class, desc } = failure else {
        return failure;
    };
    if class != "CommandNotFound" {
        return Failure::Qmp { class, desc };
    }
    let mut hints = Vec::new();
    if let Ok(names) = shell::command_names(session) {
        if !names.iter().any(|name| name == command) {
            let similar = schema::similar_names(command, names.iter().map(String::as_str));
            if !similar.is_empty() {
                hints.push(format!("did you mean {}?", similar.join(", ")));
            }
        }
    }
    if session.is_private() && !session.is_guest_agent() {
        hints.push(String::from(
            "no target was given, so this ran on a private qemu-storage-daemon, which has \
             block-layer commands only: name your QEMU's monitor with -s PATH (or $QMP_SOCKET)",
        ));
    }
    let desc = if hints.is_empty() {
        desc
    } else {
        format!("{desc}\n  {}", hints.join("\n  "))
    };
    Failure::Qmp { class, desc }
}

/// `qmp hmp WORDS...`: runs a human monitor command and prints its text as text.
fn hmp_command(session: &Session, args: &HmpArgs) -> Result<(), Failure> {
    let text = run_hmp(session, &args.words.join(" "))?;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    Ok(())
}

/// Runs an HMP command line through `human-monitor-command` and returns its output
/// made safe for a terminal, with LF line ends and a final newline when not empty.
pub(crate) fn run_hmp(session: &Session, command_line: &str) -> Result<String, Failure> {
    if session.is_guest_agent() {
        return Err(Failure::Usage(String::from(
            "the guest agent has no human monitor",
        )));
    }
    if command_line.trim().is_empty() {
        return Err(Failure::Usage(String::from(
            "hmp needs a command, e.g. hmp info status",
        )));
    }
    let value = session.execute(
        "human-monitor-command",
        &serde_json::json!({"command-line": command_line}),
    )?;
    let Value::String(text) = value else {
        return Ok(format!("{}\n", Style::Compact.format(&value)));
    };
    let mut text = terminal_safe(&text).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Connects (or launches), then lets Ctrl-C close the session cleanly.
fn open(target: &options::TargetArgs, reply_timeout: Option<Duration>) -> Result<Session, Failure> {
    let session = Session::open(target, reply_timeout)?;
    interrupt::close_on_signal(session.client());
    Ok(session)
}

/// The arguments of a one-shot command: null when none are given (QMP accepts a
/// missing `arguments` everywhere), else the object built from `--args` and the words.
fn one_shot_arguments(
    args: Option<&str>,
    words: &[String],
    typing: Option<arguments::Typing<'_>>,
) -> Result<Value, Failure> {
    if args.is_none() && words.is_empty() {
        return Ok(Value::Null);
    }
    let object = arguments::build_arguments(args, words.iter().map(String::as_str), typing)?;
    Ok(Value::Object(object))
}

/// Prints a result on stdout.
pub(crate) fn print_value(value: &Value, style: Style) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", style.format(value));
    let _ = stdout.flush();
}

/// Loads the live schema.
pub(crate) fn load_schema(session: &Session) -> Result<Schema, Failure> {
    if session.is_guest_agent() {
        return Err(Failure::Usage(String::from(
            "the guest agent has no query-qmp-schema: try guest-info for its commands",
        )));
    }
    let value = session.execute("query-qmp-schema", &Value::Null)?;
    Schema::from_value(value).map_err(Failure::Connection)
}

fn schema_command(session: &Session, args: &SchemaArgs, style: Style) -> Result<(), Failure> {
    if session.is_guest_agent() && !args.json {
        // No introspection in the guest agent: QEMU's documentation, offline.
        let vocabulary = docs::Vocabulary::GuestAgent;
        let text = match &args.name {
            Some(name) => docs::describe(vocabulary, name).ok_or_else(|| {
                Failure::UnknownName(format!("{name}: not a guest-agent command"))
            })?,
            None => format!(
                "guest-agent commands (from QEMU's schema; `guest-info` lists this agent's):\n  {}\n",
                vocabulary.command_names().join("\n  ")
            ),
        };
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(terminal_safe(&text).as_bytes());
        let _ = stdout.flush();
        return Ok(());
    }
    let schema = load_schema(session)?;
    let text = match (&args.name, args.json) {
        (None, false) => schema.overview(),
        (None, true) => {
            let mut names: Vec<&str> = schema.commands();
            names.extend(schema.events());
            print_value(
                &Value::Array(
                    names
                        .into_iter()
                        .map(|name| Value::String(name.into()))
                        .collect(),
                ),
                style,
            );
            return Ok(());
        }
        (Some(name), true) => {
            let entries = schema
                .closure(name)
                .map_err(|unknown| Failure::UnknownName(unknown.to_string()))?;
            print_value(&Value::Array(entries), style);
            return Ok(());
        }
        (Some(name), false) => {
            let mut text = schema
                .describe(name, args.depth)
                .map_err(|unknown| Failure::UnknownName(unknown.to_string()))?;
            if let Some(doc) = docs::describe(docs::Vocabulary::Qmp, name) {
                text.push('\n');
                text.push_str(&doc);
            }
            text
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(terminal_safe(&text).as_bytes());
    let _ = stdout.flush();
    Ok(())
}

/// The `--filter` names as QEMU spells events (upper case), each checked against the
/// schema when there is one.
fn event_filter(session: &Session, names: &[String]) -> Result<Vec<String>, Failure> {
    let wanted: Vec<String> = names
        .iter()
        .map(|name| name.trim().to_ascii_uppercase().replace('-', "_"))
        .filter(|name| !name.is_empty())
        .collect();
    let Ok(schema) = load_schema(session) else {
        return Ok(wanted);
    };
    let known = schema.events();
    for name in &wanted {
        if !known.contains(&name.as_str()) {
            let similar = schema::similar_names(name, known.iter().copied());
            let hint = if similar.is_empty() {
                String::from("`qmp schema` lists them")
            } else {
                format!("did you mean {}?", similar.join(", "))
            };
            return Err(Failure::Usage(format!(
                "--filter {name}: this QEMU has no such event ({hint})"
            )));
        }
    }
    Ok(wanted)
}

fn events_command(session: &Session, args: &EventsArgs) -> Result<(), Failure> {
    if session.is_guest_agent() {
        return Err(Failure::Usage(String::from(
            "the guest agent sends no events",
        )));
    }
    let filter = event_filter(session, &args.filter)?;
    // Every event, filtered here: SHUTDOWN must be seen even when filtered out.
    let subscription = session.client().subscribe();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| f == name);
    let deadline = deadline(args.timeout);
    let mut received: u64 = 0;
    // QEMU closes the connection after SHUTDOWN when it exits: a normal end.
    let mut clean_shutdown = false;
    if args.count == Some(0) {
        return Ok(());
    }
    loop {
        let next = match deadline {
            Some(deadline) => subscription.recv_deadline(deadline),
            None => subscription.recv(),
        };
        match next {
            Ok(event) => {
                if event.name() == "SHUTDOWN" {
                    clean_shutdown = true;
                }
                if !wanted(event.name()) {
                    continue;
                }
                let missed = subscription.take_missed();
                if missed > 0 {
                    eprintln!("qmp: {missed} events were dropped (output too slow)");
                }
                let mut stdout = std::io::stdout().lock();
                let line = output::event_line(&event);
                if writeln!(stdout, "{line}")
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    // The reader went away (`| head -1`): stop quietly.
                    return Ok(());
                }
                received += 1;
                if args.count == Some(received) {
                    return Ok(());
                }
            }
            Err(qmp_std::Error::Timeout) => {
                return match args.count {
                    Some(count) => Err(Failure::Timeout(format!(
                        "{received} of {count} events arrived within {}",
                        args.timeout.unwrap_or_else(Seconds::none)
                    ))),
                    None => Ok(()),
                };
            }
            Err(qmp_std::Error::Closed(_)) if clean_shutdown && args.count.is_none() => {
                return Ok(());
            }
            Err(error) => return Err(Failure::from_client(error, session.description())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_arguments_are_null_without_words() {
        assert_eq!(one_shot_arguments(None, &[], None).unwrap(), Value::Null);
        assert_eq!(
            one_shot_arguments(Some("{}"), &[], None).unwrap(),
            Value::Object(Default::default())
        );
        assert_eq!(
            one_shot_arguments(None, &[String::from("a.b=1")], None).unwrap(),
            serde_json::json!({"a": {"b": 1}})
        );
        assert_eq!(
            one_shot_arguments(None, &[String::from("oops")], None)
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn deadlines_from_time_limits() {
        assert_eq!(deadline(None), None);
        assert_eq!(deadline(Some(Seconds::none())), None);
        let soon = deadline(Some(Seconds::parse("1").unwrap())).unwrap();
        assert!(soon > Instant::now());
    }
}
