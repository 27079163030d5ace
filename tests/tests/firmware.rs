//! The example firmware (examples/firmware) on an emulated Cortex-M3 against a real
//! qemu-storage-daemon: `scripts/firmware-test.sh` builds it, runs both variants (the
//! blocking and the async driver) under `qemu-system-arm -M mps2-an385` with the UART on
//! the daemon's QMP monitor, checks their semihosting reports and prints their flash and
//! RAM use. This test runs that script and
//! checks the same report itself, so a script that checked too little would not hide a
//! broken firmware. A missing `qemu-system-arm` fails the test (run `scripts/setup.sh`).

use std::process::Command;

use qmp_tests::repo_root;

/// The output of one run of the script: its exit status and every line it printed.
struct Run {
    success: bool,
    status: String,
    lines: Vec<String>,
    transcript: String,
}

fn run_firmware_test() -> Run {
    let script = repo_root().join("scripts/firmware-test.sh");
    let output = Command::new("bash")
        .arg(&script)
        .env("FIRMWARE_TIMEOUT", "120")
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Run {
        success: output.status.success(),
        status: output.status.to_string(),
        lines: stdout.lines().map(str::to_owned).collect(),
        transcript: format!("--- stdout ---\n{stdout}--- stderr ---\n{stderr}"),
    }
}

/// The lines one variant printed, from its `VARIANT` header to the next.
struct Report<'a> {
    lines: &'a [String],
    transcript: &'a str,
}

impl Run {
    /// The report of `variant`.
    fn report(&self, variant: &str) -> Report<'_> {
        let header = format!("VARIANT {variant}");
        let start = self
            .lines
            .iter()
            .position(|l| *l == header)
            .unwrap_or_else(|| panic!("no {header:?} section\n{}", self.transcript));
        let end = self.lines[start + 1..]
            .iter()
            .position(|l| l.starts_with("VARIANT "))
            .map_or(self.lines.len(), |offset| start + 1 + offset);
        Report {
            lines: &self.lines[start + 1..end],
            transcript: &self.transcript,
        }
    }
}

impl Report<'_> {
    fn position(&self, line: &str) -> usize {
        self.lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no line {line:?} in the report\n{}", self.transcript))
    }

    fn line_starting(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?}\n{}", self.transcript))
    }

    /// `KEY=NUMBER` from the `SIZE` line that has it.
    fn size(&self, key: &str) -> u64 {
        let token = format!("{key}=");
        self.lines
            .iter()
            .filter(|l| l.starts_with("SIZE "))
            .flat_map(|l| l.split_whitespace())
            .find_map(|word| word.strip_prefix(token.as_str()))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no SIZE {key}=N\n{}", self.transcript))
    }
}

#[test]
fn firmware_manages_qemu_storage_daemon_over_its_uart() {
    let run = run_firmware_test();
    assert!(
        run.success,
        "firmware-test.sh failed ({})\n{}",
        run.status, run.transcript
    );
    assert_eq!(
        run.lines.last().map(String::as_str),
        Some("firmware-test: PASS")
    );
    check_report(&run.report("blocking"));
    let report = run.report("async");
    assert_eq!(report.lines.get(1).map(String::as_str), Some("MODE async"));
    check_report(&report);
}

/// What every variant must have reported, in order.
fn check_report(run: &Report<'_>) {
    // Negotiation and the version, from the greeting and from query-version.
    let greeting = run.position("GREETING 10.0.2 oob=true");
    let ready = run.position("READY");
    let version = run.line_starting("VERSION ");
    assert!(version.starts_with("VERSION 10.0.2 package="), "{version}");
    assert!(greeting < ready && ready < run.position(version));

    // The node, and the two error replies with their classes.
    let added = run.position("RETURN blockdev-add null0");
    let duplicate = run.line_starting("ERROR blockdev-add ");
    assert_eq!(
        duplicate,
        "ERROR blockdev-add GenericError Duplicate nodes with node-name='null0'"
    );
    assert!(added < run.position(duplicate));
    assert_eq!(
        run.line_starting("ERROR no-such-command "),
        "ERROR no-such-command CommandNotFound The command no-such-command has not been found"
    );

    // The job: every status change in QEMU's order, the reply to blockdev-create among
    // them, then query-jobs, the dismissal and the node's deletion.
    let statuses: Vec<&str> = run
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("EVENT JOB_STATUS_CHANGE job0 "))
        .collect();
    assert_eq!(
        statuses,
        [
            "created",
            "running",
            "waiting",
            "pending",
            "concluded",
            "null"
        ],
        "{}",
        run.transcript
    );
    let created = run.position("EVENT JOB_STATUS_CHANGE job0 created");
    let returned = run.position("RETURN blockdev-create job0");
    let concluded = run.position("EVENT JOB_STATUS_CHANGE job0 concluded");
    let listed = run.position("JOB job0 type=create status=concluded progress=1/1");
    let null = run.position("EVENT JOB_STATUS_CHANGE job0 null");
    let dismissed = run.position("RETURN job-dismiss job0");
    let deleted = run.position("RETURN blockdev-del null0");
    assert!(created < returned && returned < concluded && concluded < listed);
    assert!(listed < null && null < dismissed && dismissed < deleted);

    // Nothing odd on the wire, and a clean exit.
    let stats = run.line_starting("STATS ");
    assert!(
        stats.ends_with("late=0 unmatched=0 unattributed=0 malformed=0 oversize=0"),
        "{stats}"
    );
    assert!(deleted < run.position("PASS"));
    assert!(!run.lines.iter().any(|l| l.starts_with("FAIL")));
    run.position("CHECK ok image created by the daemon (1048576 bytes)");

    // Flash and RAM use are reported; the buffers alone are 2.5 KiB of RAM.
    let flash = run.size("flash");
    let ram = run.size("static-ram");
    assert!((1024..512 * 1024).contains(&flash), "flash {flash}");
    assert!((2048 + 512..64 * 1024).contains(&ram), "static RAM {ram}");
    assert_eq!(
        flash,
        run.size(".vector_table") + run.size(".text") + run.size(".rodata") + run.size(".data")
    );
}
