//! The command line: targets, output options, the one-shot form and the subcommands.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::exit::EXIT_CODES_HELP;

const MAIN_AFTER_HELP: &str = "\
Targets (pick one; with none, a private qemu-storage-daemon is started and removed on exit):
  --socket PATH              a QMP (or, with --qga, guest agent) Unix socket
                             (default: $QMP_SOCKET when set)
  --tcp HOST:PORT            a QMP monitor on TCP
  --launch -- QEMU-COMMAND   start QEMU-COMMAND with a private monitor added
                             (-qmp unix:P,server=on,wait=off), stop it on exit
  --qga                      speak the guest agent protocol (alone: a private qemu-ga)

Arguments (qmp-shell syntax):
  key=value      the value is JSON if it parses as JSON (size=1024, ro=true,
                 opts={\"a\":1}, name='\"42\"' for the string 42), else a string
  a.b.c=value    nested objects
  key=@FILE      the JSON in FILE; key=@@text is the string @text
  --args JSON    a whole arguments object (or --args @FILE); key=value words add to it

Examples:
  qmp query-version
  qmp --socket /run/vm.qmp query-status
  qmp --socket /run/vm.qmp blockdev-add driver=null-co node-name=n0 size=1048576
  qmp --socket /run/vm.qmp device_del id=disk1
  qmp --launch query-machines --compact -- qemu-system-x86_64 -M none
  qmp --qga --socket /run/vm-ga.sock guest-info
  qmp --socket /run/vm.qmp shell
  qmp --socket /run/vm.qmp events --filter JOB_STATUS_CHANGE --count 2
  qmp --socket /run/vm.qmp watch
  qmp schema blockdev-add

";

/// Run QEMU Machine Protocol commands: one-shot, in a shell, as event streams, or as
/// progress bars.
#[derive(Debug, Parser)]
#[command(
    name = "qmp",
    version,
    about = "Talk to QEMU's monitor (QMP) or guest agent (QGA) from the command line",
    override_usage = "qmp [OPTIONS] [TARGET] QMP-COMMAND [KEY=VALUE]...\n       \
                      qmp [OPTIONS] [TARGET] <shell|events|watch|hmp|schema> [ARGS]\n       \
                      qmp completions <SHELL>",
    subcommand_value_name = "SUBCOMMAND",
    after_help = main_after_help(),
)]
pub(crate) struct Cli {
    /// Where to connect (see "Targets" below).
    #[command(flatten)]
    pub(crate) target: TargetArgs,

    /// How to print results.
    #[command(flatten)]
    pub(crate) output: OutputArgs,

    /// The QMP command's arguments as one JSON object (or @FILE holding one);
    /// KEY=VALUE words are added to it.
    #[arg(long, value_name = "JSON")]
    pub(crate) args: Option<String>,

    /// How long to wait for the reply, in seconds (`inf` or `none`: no deadline).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = Seconds::parse, allow_hyphen_values = true)]
    pub(crate) timeout: Seconds,

    /// The QMP (or guest agent) command to run once, e.g. query-version.
    #[arg(value_name = "QMP-COMMAND")]
    pub(crate) command: Option<String>,

    /// The command's arguments in qmp-shell syntax: key=value, a.b=value, key=@FILE.
    #[arg(value_name = "KEY=VALUE")]
    pub(crate) words: Vec<String>,

    /// A subcommand instead of a one-shot QMP command.
    #[command(subcommand)]
    pub(crate) subcommand: Option<Subcommands>,
}

/// The main `--help` epilogue: targets, argument syntax, examples and exit codes.
fn main_after_help() -> String {
    format!("{MAIN_AFTER_HELP}{EXIT_CODES_HELP}")
}

/// Where to connect. Global: they may be given before or after a subcommand.
#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    /// Connect to this Unix socket (default: $QMP_SOCKET when set).
    #[arg(long, short = 's', value_name = "PATH", global = true)]
    pub(crate) socket: Option<PathBuf>,

    /// Connect to this TCP address.
    #[arg(long, short = 't', value_name = "HOST:PORT", global = true)]
    pub(crate) tcp: Option<String>,

    /// Start the QEMU command given after `--` with a private monitor, and stop it on exit.
    #[arg(long, global = true)]
    pub(crate) launch: bool,

    /// Speak the guest agent protocol (no greeting, no events); alone, start a private
    /// qemu-ga.
    #[arg(long, global = true)]
    pub(crate) qga: bool,

    /// How long to wait for the connection and the greeting, in seconds (`inf` or
    /// `none`: no deadline).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "10",
        value_parser = Seconds::parse,
        allow_hyphen_values = true,
        global = true
    )]
    pub(crate) connect_timeout: Seconds,

    /// The QEMU command line after `--` (filled in before parsing; see `split_launch`).
    #[arg(skip)]
    pub(crate) launch_command: Vec<OsString>,
}

/// How to print JSON.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct OutputArgs {
    /// One line of JSON per result (the default when stdout is not a terminal).
    #[arg(long, short = 'c', global = true, conflicts_with = "pretty")]
    pub(crate) compact: bool,

    /// Indented JSON (the default on a terminal).
    #[arg(long, short = 'p', global = true)]
    pub(crate) pretty: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Subcommands {
    /// Interactive shell with history, completion, inline help and live events.
    #[command(after_help = SHELL_HELP)]
    Shell(ShellArgs),
    /// Print events as JSON lines as they arrive.
    #[command(after_help = EVENTS_HELP)]
    Events(EventsArgs),
    /// Progress bars for block jobs and migration until they end.
    #[command(after_help = WATCH_HELP)]
    Watch(WatchArgs),
    /// Describe commands, events and types from the live schema (query-qmp-schema).
    #[command(after_help = SCHEMA_HELP)]
    Schema(SchemaArgs),
    /// Run a human monitor (HMP) command and print its text.
    #[command(after_help = HMP_HELP)]
    Hmp(HmpArgs),
    /// Print a completion script for a shell.
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
    /// The target's command names, one per line (for the bash completion script).
    #[command(hide = true)]
    CommandNames,
}

const HMP_HELP: &str = "\
Runs the words as one HMP command line through human-monitor-command and prints
QEMU's text as text. Give qmp's own options before `hmp`.

Examples:
  qmp --socket /run/vm.qmp hmp info status
  qmp --socket /run/vm.qmp hmp info block -v";

/// `qmp hmp`.
#[derive(Debug, Clone, Args)]
pub(crate) struct HmpArgs {
    /// The HMP command line, e.g. `info status`.
    #[arg(
        value_name = "HMP-COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) words: Vec<String>,
}

const SHELL_HELP: &str = "\
In the shell:
  COMMAND key=value ...   run a command (same syntax as one-shot; quotes work as in sh)
  {\"execute\": ...}        send a raw JSON request
  help [COMMAND]          list commands, or describe one from the schema
  hmp info status         human monitor command (human-monitor-command)
  transaction(            start a transaction; each following line is an action,
    ACTION key=value        e.g. block-dirty-bitmap-add node=n0 name=b0
  )                       ...and `)` sends it (also: begin / commit / abort)
  events on|off           show or hide events (shown by default)
  exit, Ctrl-D            leave the shell
  quit                    QEMU's quit command: stops QEMU, which ends the shell
Tab completes command names, argument names (driver=file adds that driver's
members) and enum values. History is kept in --history (default $QMP_HISTORY or
~/.qmp_history).

Examples:
  qmp shell
  qmp --socket /run/vm.qmp shell
  echo 'query-status' | qmp --socket /run/vm.qmp shell
  qmp --socket /run/vm.qmp shell --fail-fast < script.txt | jq .

As a script runner (stdin not a terminal): each line runs in turn; a failed line is
reported on stderr with its number and the next line runs (--fail-fast: stop there).
When stdout is not a terminal each result is one JSON line on stdout (hmp text as a
JSON string) and events go to stderr (--events-json: JSON lines on stdout). The exit
code is that of the first failed line, 0 when every line succeeded.";

const EVENTS_HELP: &str = "\
Each event is printed as one JSON object per line:
  {\"event\":\"JOB_STATUS_CHANGE\",\"data\":{...},\"timestamp\":{\"seconds\":...,\"microseconds\":...}}
Without --count and --timeout it runs until interrupted or the connection ends.
Exit code 11 if --timeout passes before --count events arrived.

Examples:
  qmp --socket /run/vm.qmp events
  qmp --socket /run/vm.qmp events --filter JOB_STATUS_CHANGE --filter BLOCK_JOB_COMPLETED
  qmp --socket /run/vm.qmp events --count 1 --timeout 30";

const WATCH_HELP: &str = "\
Shows a progress bar for every block job (query-jobs) and for migration
(query-migrate) until each ends, then prints the outcome of each. Exit code 0 if all
succeeded, 1 if any failed or was cancelled, 11 on --timeout. Without --wait, it exits
at once when nothing is running. When stderr is not a terminal, progress is printed
as plain lines instead of bars.

Examples:
  qmp --socket /run/vm.qmp watch
  qmp --socket /run/vm.qmp watch --job backup0 --wait
  qmp --socket /run/vm.qmp watch --migration";

const SCHEMA_HELP: &str = "\
QEMU hides type names in its schema (they appear as numbers), so types are shown by
their structure: members (NAME? = optional), union variants by discriminator value,
enum values, arrays as [TYPE], alternates as A | B.

Examples:
  qmp schema                      list commands and events
  qmp schema blockdev-add         a command's arguments and reply
  qmp schema blockdev-mirror.sync one member
  qmp schema JOB_STATUS_CHANGE    an event's data
  qmp schema --json query-jobs    the raw schema entries";

const COMPLETIONS_HELP: &str = "\
The bash script also completes QMP command names: it asks the target named on the
line so far (-s/--socket, -t/--tcp, --qga; else $QMP_SOCKET or a private daemon) with
the hidden `qmp command-names`.

Examples:
  qmp completions bash > ~/.local/share/bash-completion/completions/qmp
  qmp completions zsh > ~/.zfunc/_qmp
  qmp completions fish > ~/.config/fish/completions/qmp.fish";

/// Durations at or beyond this mean "no deadline" (adding them to a clock reading could
/// overflow).
const NO_DEADLINE_BEYOND: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A time limit from the command line: seconds, or no deadline at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Seconds {
    /// `None`: no deadline.
    pub(crate) limit: Option<Duration>,
    /// The text as given, for messages.
    shown: f64,
}

impl Seconds {
    /// Parses `SECONDS`: a non-negative number (fractions allowed), or `inf`/`infinity`/
    /// `none` for no deadline. Values too large for a clock (about a century and more)
    /// also mean no deadline. NaN, negative numbers and anything else are errors.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let word = text.trim().to_ascii_lowercase();
        if matches!(
            word.as_str(),
            "inf" | "+inf" | "infinity" | "none" | "never"
        ) {
            return Ok(Self::none());
        }
        let value: f64 = word.parse().map_err(|_| {
            format!("'{text}' is not a number of seconds (use inf or none for no deadline)")
        })?;
        if value.is_nan() {
            return Err(String::from(
                "nan is not a number of seconds (use inf or none for no deadline)",
            ));
        }
        if value < 0.0 {
            return Err(format!("'{text}': a time limit cannot be negative"));
        }
        let limit = Duration::try_from_secs_f64(value)
            .ok()
            .filter(|duration| *duration < NO_DEADLINE_BEYOND);
        Ok(Self {
            limit,
            shown: value,
        })
    }

    /// No deadline.
    pub(crate) fn none() -> Self {
        Self {
            limit: None,
            shown: f64::INFINITY,
        }
    }
}

impl core::fmt::Display for Seconds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.limit {
            Some(_) => write!(f, "{} s", self.shown),
            None => f.write_str("no deadline"),
        }
    }
}

/// `qmp shell`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ShellArgs {
    /// History file (default: $QMP_HISTORY, else ~/.qmp_history).
    #[arg(long, value_name = "FILE")]
    pub(crate) history: Option<PathBuf>,

    /// Keep no history file.
    #[arg(long, conflicts_with = "history")]
    pub(crate) no_history: bool,

    /// Do not print events as they arrive.
    #[arg(long)]
    pub(crate) quiet_events: bool,

    /// Print events on stdout as JSON lines (as `qmp events` does), among the results.
    #[arg(long, conflicts_with = "quiet_events")]
    pub(crate) events_json: bool,

    /// In a script, stop at the first line that fails.
    #[arg(long)]
    pub(crate) fail_fast: bool,
}

/// `qmp events`.
#[derive(Debug, Clone, Args)]
pub(crate) struct EventsArgs {
    /// Only events with this name (repeat, or separate with commas).
    #[arg(long, short = 'f', value_name = "NAME", value_delimiter = ',')]
    pub(crate) filter: Vec<String>,

    /// Stop after this many events.
    #[arg(long, short = 'n', value_name = "N")]
    pub(crate) count: Option<u64>,

    /// Stop after this many seconds (`inf` or `none`: never).
    #[arg(long, value_name = "SECONDS", value_parser = Seconds::parse, allow_hyphen_values = true)]
    pub(crate) timeout: Option<Seconds>,
}

/// `qmp watch`.
#[derive(Debug, Clone, Args)]
pub(crate) struct WatchArgs {
    /// Watch only the job with this id (repeatable).
    #[arg(long, value_name = "ID")]
    pub(crate) job: Vec<String>,

    /// Watch only the migration.
    #[arg(long, conflicts_with = "job")]
    pub(crate) migration: bool,

    /// Wait for a job or migration to start when none is running.
    #[arg(long)]
    pub(crate) wait: bool,

    /// Give up after this many seconds (exit code 11; `inf` or `none`: never).
    #[arg(long, value_name = "SECONDS", value_parser = Seconds::parse, allow_hyphen_values = true)]
    pub(crate) timeout: Option<Seconds>,

    /// How often to poll query-jobs / query-migrate, in milliseconds (10 to 3600000).
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub(crate) interval: u64,
}

/// `qmp schema`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SchemaArgs {
    /// A command, event or type name, optionally with .member parts; none lists all.
    #[arg(value_name = "NAME")]
    pub(crate) name: Option<String>,

    /// How many levels of nested types to expand.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub(crate) depth: usize,

    /// Print the raw schema entries as JSON instead (the named one and the types it
    /// uses).
    #[arg(long)]
    pub(crate) json: bool,
}

/// `qmp completions`.
#[derive(Debug, Clone, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to generate a completion script for.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// Splits `qmp ... --launch ... -- QEMU-COMMAND...` into qmp's own arguments and the
/// QEMU command line: everything after the first `--` that follows `--launch`.
pub(crate) fn split_launch(args: Vec<OsString>) -> (Vec<OsString>, Vec<OsString>) {
    let launch_at = args.iter().position(|arg| arg == "--launch");
    let Some(launch_at) = launch_at else {
        return (args, Vec::new());
    };
    let separator = args
        .iter()
        .enumerate()
        .skip(launch_at + 1)
        .find(|(_, arg)| *arg == "--")
        .map(|(index, _)| index);
    match separator {
        Some(separator) => {
            let mut own = args;
            let command = own.split_off(separator + 1);
            own.pop();
            (own, command)
        }
        None => (args, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(words: &[&str]) -> Result<Cli, clap::Error> {
        let args: Vec<OsString> = words.iter().map(OsString::from).collect();
        let (own, command) = split_launch(args);
        let mut cli = Cli::try_parse_from(own)?;
        cli.target.launch_command = command;
        Ok(cli)
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn one_shot_commands_take_words_and_options_anywhere() {
        let cli = parse(&[
            "qmp",
            "--socket",
            "/s",
            "blockdev-add",
            "driver=null-co",
            "--compact",
            "node-name=n0",
        ])
        .unwrap();
        assert_eq!(cli.command.as_deref(), Some("blockdev-add"));
        assert_eq!(cli.words, vec!["driver=null-co", "node-name=n0"]);
        assert!(cli.output.compact);
        assert_eq!(cli.target.socket, Some(PathBuf::from("/s")));
        assert!(cli.subcommand.is_none());

        let cli = parse(&["qmp", "query-version", "--args", "{}", "--timeout", "2.5"]).unwrap();
        assert_eq!(cli.args.as_deref(), Some("{}"));
        assert_eq!(cli.timeout.limit, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn subcommands_are_recognised_with_global_targets() {
        let cli = parse(&[
            "qmp", "events", "--socket", "/s", "-f", "A,B", "--filter", "C",
        ])
        .unwrap();
        let Some(Subcommands::Events(events)) = cli.subcommand else {
            panic!("not events");
        };
        assert_eq!(events.filter, vec!["A", "B", "C"]);
        assert_eq!(cli.target.socket, Some(PathBuf::from("/s")));
        assert!(cli.command.is_none());

        let cli = parse(&["qmp", "--tcp", "127.0.0.1:4444", "schema", "blockdev-add"]).unwrap();
        assert!(matches!(cli.subcommand, Some(Subcommands::Schema(_))));
        assert!(matches!(
            parse(&["qmp", "completions", "zsh"]).unwrap().subcommand,
            Some(Subcommands::Completions(_))
        ));
    }

    #[test]
    fn launch_takes_the_command_after_the_separator() {
        let cli = parse(&[
            "qmp",
            "--launch",
            "query-status",
            "--",
            "qemu-system-x86_64",
            "-M",
            "none",
            "--",
            "x",
        ])
        .unwrap();
        assert!(cli.target.launch);
        assert_eq!(cli.command.as_deref(), Some("query-status"));
        assert!(cli.words.is_empty());
        assert_eq!(
            cli.target.launch_command,
            ["qemu-system-x86_64", "-M", "none", "--", "x"]
                .map(OsString::from)
                .to_vec()
        );

        let cli = parse(&["qmp", "shell", "--launch", "--", "qemu-system-x86_64"]).unwrap();
        assert!(matches!(cli.subcommand, Some(Subcommands::Shell(_))));
        assert_eq!(
            cli.target.launch_command,
            vec![OsString::from("qemu-system-x86_64")]
        );

        let (own, command) = split_launch(["qmp", "--", "x"].map(OsString::from).to_vec());
        assert_eq!(own.len(), 3);
        assert!(command.is_empty());
    }

    #[test]
    fn bad_usage_is_rejected() {
        assert!(parse(&["qmp", "--compact", "--pretty", "x"]).is_err());
        assert!(parse(&["qmp", "events", "--count", "many"]).is_err());
        assert!(parse(&["qmp", "completions", "cmd.exe"]).is_err());
        assert!(parse(&["qmp", "watch", "--job", "j", "--migration"]).is_err());
    }

    #[test]
    fn time_limits_take_every_value() {
        let limit = |text: &str| Seconds::parse(text).map(|seconds| seconds.limit);
        assert_eq!(limit("0"), Ok(Some(Duration::ZERO)));
        assert_eq!(limit(" 1.5 "), Ok(Some(Duration::from_millis(1500))));
        for endless in [
            "inf", "INF", "infinity", "none", "never", "1e300", "1e19", "1e400",
        ] {
            assert_eq!(limit(endless), Ok(None), "{endless}");
        }
        for bad in ["nan", "NaN", "-1", "-inf", "ten", "", "1s"] {
            assert!(limit(bad).is_err(), "{bad}");
        }
        assert!(Seconds::parse("-1").unwrap_err().contains("negative"));
        assert!(Seconds::parse("nan").unwrap_err().contains("nan"));
        // Through clap: usage errors, not panics.
        for bad in [
            &["qmp", "--timeout", "nan", "query-version"][..],
            &["qmp", "--connect-timeout", "-3", "query-version"],
            &["qmp", "events", "--timeout", "soon"],
            &["qmp", "watch", "--timeout", "nan"],
        ] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{bad:?}");
        }
        let cli = parse(&["qmp", "--timeout", "inf", "--connect-timeout", "1e19", "x"]).unwrap();
        assert_eq!(
            (cli.timeout.limit, cli.target.connect_timeout.limit),
            (None, None)
        );
    }

    #[test]
    fn help_shows_examples_and_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("10  connection problem"), "{help}");
        assert!(help.contains("qmp query-version"), "{help}");
        for name in ["shell", "events", "watch", "schema", "completions"] {
            let mut command = Cli::command();
            let sub = command.find_subcommand_mut(name).unwrap();
            let help = sub.render_long_help().to_string();
            assert!(help.contains("Examples:"), "{name}: {help}");
        }
        assert!(main_after_help().ends_with(EXIT_CODES_HELP));
    }
}
