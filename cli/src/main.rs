//! `qmp`: talk to QEMU's monitor (QMP) or guest agent (QGA) from the command line.
//!
//! One-shot commands with qmp-shell's `key=value` syntax, an interactive shell, event
//! streams, progress bars for block jobs and migration, and a schema browser. With no
//! target it starts a private `qemu-storage-daemon`, so `qmp query-version` works on a
//! machine with nothing set up. See `qmp --help` and `cli/README.md`.

mod arguments;
mod exit;
mod interrupt;
mod launch;
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
use crate::options::{Cli, EventsArgs, SchemaArgs, Subcommands};
use crate::output::Style;
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
            eprintln!("qmp: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Seconds from the command line as a duration (negative and NaN count as zero).
pub(crate) fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::MAX)
}

fn run(cli: Cli) -> Result<(), Failure> {
    let style = Style::from_options(cli.output);
    let reply_timeout = seconds(cli.timeout);
    match cli.subcommand {
        Some(Subcommands::Completions(args)) => {
            let mut command = Cli::command();
            clap_complete::generate(args.shell, &mut command, "qmp", &mut std::io::stdout());
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
        None => {
            let Some(command) = cli.command else {
                let mut help = Cli::command();
                let _ = help.print_help();
                return Err(Failure::Usage(String::from(
                    "no command given: try `qmp query-version`, `qmp shell` or `qmp --help`",
                )));
            };
            let arguments = one_shot_arguments(cli.args.as_deref(), &cli.words)?;
            let session = open(&cli.target, reply_timeout)?;
            let value = session.execute(&command, &arguments)?;
            print_value(&value, style);
            Ok(())
        }
    }
}

/// Connects (or launches), then lets Ctrl-C close the session cleanly.
fn open(target: &options::TargetArgs, reply_timeout: Duration) -> Result<Session, Failure> {
    let session = Session::open(target, reply_timeout)?;
    interrupt::close_on_signal(session.client());
    Ok(session)
}

/// The arguments of a one-shot command: null when none are given (QMP accepts a
/// missing `arguments` everywhere), else the object built from `--args` and the words.
fn one_shot_arguments(args: Option<&str>, words: &[String]) -> Result<Value, Failure> {
    if args.is_none() && words.is_empty() {
        return Ok(Value::Null);
    }
    let object = arguments::build_arguments(args, words.iter().map(String::as_str))?;
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
        (Some(name), false) => schema
            .describe(name, args.depth)
            .map_err(|unknown| Failure::UnknownName(unknown.to_string()))?,
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    Ok(())
}

fn events_command(session: &Session, args: &EventsArgs) -> Result<(), Failure> {
    if session.is_guest_agent() {
        return Err(Failure::Usage(String::from(
            "the guest agent sends no events",
        )));
    }
    // Every event, filtered here: SHUTDOWN must be seen even when filtered out.
    let subscription = session.client().subscribe();
    let wanted = |name: &str| args.filter.is_empty() || args.filter.iter().any(|f| f == name);
    let deadline = args
        .timeout
        .map(|timeout| Instant::now() + seconds(timeout));
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
                        "{received} of {count} events arrived within {} s",
                        args.timeout.unwrap_or_default()
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
        assert_eq!(one_shot_arguments(None, &[]).unwrap(), Value::Null);
        assert_eq!(
            one_shot_arguments(Some("{}"), &[]).unwrap(),
            Value::Object(Default::default())
        );
        assert_eq!(
            one_shot_arguments(None, &[String::from("a.b=1")]).unwrap(),
            serde_json::json!({"a": {"b": 1}})
        );
        assert_eq!(
            one_shot_arguments(None, &[String::from("oops")])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn seconds_are_clamped() {
        assert_eq!(seconds(-1.0), Duration::ZERO);
        assert_eq!(seconds(1.5), Duration::from_millis(1500));
        assert_eq!(seconds(f64::INFINITY), Duration::MAX);
    }
}
