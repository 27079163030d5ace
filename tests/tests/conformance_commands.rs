//! Commands through the blocking client: typed commands of `qmp_core::commands`, raw
//! `serde_json` values and hand-built messages, error replies as captured, replies of
//! 117 KB and 236 KB decoded into typed values, and a `pretty=on` monitor giving the same
//! results as a compact one.

mod conformance_common;

use core::time::Duration;
use std::collections::BTreeSet;

use conformance_common::{
    connect, error_value, options, qsd, qsys, start, vector_message, vector_transcript, watchdog,
    Transcript,
};
use qmp_std::qmp_core::commands::{
    BlockdevAdd, BlockdevCreate, BlockdevCreateOptionsFile, BlockdevDel, BlockdevOptions,
    BlockdevOptionsNull, JobDismiss, QueryCommands, QueryJobs, QueryNamedBlockNodes,
    QueryQmpSchema, QueryVersion,
};
use qmp_std::qmp_core::json::RawJson;
use qmp_std::{Client, ConnectOptions, Error, ErrorClass, Launcher, ServerKind};
use qmp_tests::{captured_commands_as_of, qemu_build, qemu_version, read_vector, split_lines};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(300);

/// The command names of a `query-commands` reply, decoded with the typed command.
fn command_names(client: &Client) -> BTreeSet<String> {
    let reply = client.execute(&QueryCommands).unwrap();
    let names = reply.get().unwrap();
    names
        .iter()
        .map(|info| info.unwrap().name.chars().collect())
        .collect()
}

fn null_node(name: &str) -> BlockdevAdd<BlockdevOptions<'_>> {
    BlockdevAdd::new(BlockdevOptions::NullCo(BlockdevOptionsNull::new(
        name,
        4 * 1024 * 1024,
    )))
}

#[test]
fn typed_and_raw_commands_give_the_captured_results() {
    let _guard = watchdog("typed_and_raw", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options());

    // query-version three ways: typed, serde_json, hand-built; all as in vector 05 (with
    // the version and package of the daemon under test).
    let build = qemu_build(ServerKind::StorageDaemon);
    let captured = vector_message("05-query-version", 2)["return"].clone();
    let typed = client.execute(&QueryVersion).unwrap();
    let version = typed.get().unwrap();
    assert_eq!(
        (version.qemu.major, version.qemu.minor, version.qemu.micro),
        (
            build.version.major,
            build.version.minor,
            build.version.micro
        )
    );
    assert_eq!(version.package, captured["package"].as_str().unwrap());
    assert_eq!(version.package, build.package.as_str());
    assert_eq!(typed.raw().to_value(), captured);
    let value = client.execute_value("query-version", Value::Null).unwrap();
    assert_eq!(value, captured);
    let with_empty = client.execute_value("query-version", json!({})).unwrap();
    assert_eq!(with_empty, captured);
    let raw = client
        .execute_message(br#"{"execute": "query-version", "id": "ignored"}"#)
        .unwrap();
    assert_eq!(raw.as_bytes(), typed.raw().as_bytes());

    // query-commands: the 76 commands of vector 06 (74 on 7.2, which lacks the two newer
    // ones of qmp_tests::COMMANDS_AFTER_7_2).
    let captured = vector_message("06-query-commands", 2);
    let captured: Vec<&str> = captured["return"]
        .as_array()
        .unwrap()
        .iter()
        .map(|info| info["name"].as_str().unwrap())
        .collect();
    assert_eq!(captured.len(), 76);
    let expected = captured_commands_as_of(captured, build.version);
    let expected_count = if build.version.is_captured() { 76 } else { 74 };
    assert_eq!(expected.len(), expected_count);
    assert_eq!(command_names(&client), expected);

    // A node added with a typed command, seen by typed and raw queries.
    client.execute(&null_node("null0")).unwrap();
    let nodes = client
        .execute(&QueryNamedBlockNodes { flat: Some(true) })
        .unwrap();
    let typed_nodes: Vec<_> = nodes.get().unwrap().iter().map(Result::unwrap).collect();
    assert_eq!(typed_nodes.len(), 1);
    assert_eq!(typed_nodes[0].node_name.unwrap(), "null0");
    assert_eq!(typed_nodes[0].drv, "null-co");
    assert_eq!(typed_nodes[0].image.virtual_size, 4 * 1024 * 1024);
    // The file name is a json: pseudo-name with escaped quotes inside (vector 14).
    let file: String = typed_nodes[0].file.chars().collect();
    let value_nodes = client
        .execute_value("query-named-block-nodes", json!({"flat": true}))
        .unwrap();
    assert_eq!(value_nodes[0]["file"], file);
    assert!(file.starts_with("json:{\""), "{file}");
    assert_eq!(value_nodes, nodes.raw().to_value());

    // The duplicate is refused as in vector 14, then the node goes away.
    let duplicate = client.execute(&null_node("null0")).unwrap_err();
    assert_eq!(
        error_value(&duplicate)["error"],
        vector_message("14-blockdev-add-null-co", 3)["error"]
    );
    client.execute(&BlockdevDel { node_name: "null0" }).unwrap();
    let nodes = client.execute(&QueryNamedBlockNodes::default()).unwrap();
    assert!(nodes.get().unwrap().is_empty());

    // Unknown command, as in vector 08.
    let unknown = client
        .execute_value("no-such-command", Value::Null)
        .unwrap_err();
    assert_eq!(unknown.qmp_class(), Some(&ErrorClass::CommandNotFound));
    assert_eq!(
        error_value(&unknown)["error"],
        vector_message("08-unknown-command", 2)["error"]
    );
    let stats = client.stats();
    assert_eq!(
        (stats.unmatched_replies, stats.malformed, stats.oversize),
        (0, 0, 0)
    );
}

#[test]
fn argument_errors_are_the_captured_ones() {
    let _guard = watchdog("argument_errors", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options());
    // Vector 12's requests e6..e12 (well-formed commands with bad arguments), sent as
    // written through the hand-built path; the client assigns its own ids.
    let requests = read_vector("12-bad-arguments.c2s");
    let requests = split_lines(&requests);
    for (index, request) in requests.iter().enumerate().take(13).skip(6) {
        let error = client.execute_message(request).unwrap_err();
        let expected = vector_message("12-bad-arguments", index + 1);
        assert_eq!(
            error_value(&error)["error"],
            expected["error"],
            "reply to {}",
            String::from_utf8_lossy(request).trim()
        );
        // The same request through serde_json gets the same answer.
        let message: Value = serde_json::from_slice(request).unwrap();
        let again = client
            .execute_value(
                message["execute"].as_str().unwrap(),
                message["arguments"].clone(),
            )
            .unwrap_err();
        assert_eq!(error_value(&again), error_value(&error));
    }
    // A hand-built message that is not a command never reaches QEMU.
    for bad in [&br#"{"execute": 1}"#[..], br#"{"id": "e4"}"#, b"[1, 2]"] {
        let refused = client.execute_message(bad);
        assert!(
            matches!(refused, Err(Error::InvalidRequest(_))),
            "{}: {refused:?}",
            String::from_utf8_lossy(bad)
        );
    }
    client.execute(&QueryVersion).unwrap();
    assert_eq!(client.stats().unattributed_errors, 0);
}

/// Fetches `query-qmp-schema` with the typed command and checks it decodes completely;
/// returns the reply's size and the decoded entities as `(name, meta-type)`.
fn typed_schema(client: &Client) -> (usize, Vec<(String, String)>) {
    let reply = client.execute(&QueryQmpSchema).unwrap();
    let schema = reply.get().unwrap();
    let entities: Vec<(String, String)> = schema
        .iter()
        .map(|entity| {
            let entity = entity.unwrap();
            (
                entity.name.chars().collect(),
                entity.meta_type.chars().collect(),
            )
        })
        .collect();
    // serde_json finds the same number of entities in the same bytes.
    let value = reply.raw().to_value();
    assert_eq!(value.as_array().unwrap().len(), entities.len());
    (reply.raw().as_bytes().len(), entities)
}

fn commands_of(entities: &[(String, String)]) -> BTreeSet<&str> {
    entities
        .iter()
        .filter(|(_, meta)| meta == "command")
        .map(|(name, _)| name.as_str())
        .collect()
}

#[test]
fn schema_replies_of_117_and_236_kb_decode_into_typed_values() {
    let _guard = watchdog("large_replies", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options());
    let (size, entities) = typed_schema(&client);
    let reply = client.execute(&QueryQmpSchema).unwrap();
    // Byte for byte what the daemon sends to a raw socket...
    let raw_return = conformance_common::raw_schema_return(ServerKind::StorageDaemon);
    assert_eq!(reply.raw().as_bytes(), raw_return);
    assert_eq!(size, raw_return.len());
    // ...which on 10.0.2 is the return value captured in vector 07 (a 116,875-byte
    // line); 7.2's schema is a different one of 110,330 bytes with 74 commands (it lacks
    // the two of qmp_tests::COMMANDS_AFTER_7_2).
    let captured = read_vector("07-query-qmp-schema.s2c");
    let line = split_lines(&captured)[2];
    let line = line.strip_suffix(b"\r\n").unwrap();
    assert_eq!(line.len(), 116_875);
    let captured_return = RawJson::parse(line).unwrap().get("return").unwrap();
    let version = qemu_version(ServerKind::StorageDaemon);
    if version.is_captured() {
        assert_eq!(reply.raw().as_bytes(), captured_return.as_bytes());
        assert_eq!(commands_of(&entities).len(), 76);
    } else {
        qmp_tests::assert_known(version);
        assert_eq!(size, conformance_common::SCHEMA_7_2_QSD_BYTES);
        assert_eq!(commands_of(&entities).len(), 74);
    }
    assert!(commands_of(&entities).contains("blockdev-mirror"));

    let qsys = qsys();
    let client = connect(&qsys, options());
    let (size, entities) = typed_schema(&client);
    assert!(
        (200_000..300_000).contains(&size),
        "qemu-system-x86_64's schema is about 236 KB (207 KB on 7.2), got {size}"
    );
    let commands = commands_of(&entities);
    for name in [
        "query-status",
        "stop",
        "cont",
        "pmemsave",
        "add-fd",
        "getfd",
    ] {
        assert!(commands.contains(name), "{name} missing from the schema");
    }
    let events = entities.iter().filter(|(_, meta)| meta == "event").count();
    assert!(events > 50, "{events} events");
    // The session goes on after large replies, without anything oversize.
    client.execute(&QueryVersion).unwrap();
    assert_eq!(client.stats().oversize, 0);
}

/// Everything one scenario shows of a monitor, for comparing compact with pretty.
#[derive(Debug, PartialEq)]
struct Observed {
    version: String,
    oob_offered: bool,
    package: String,
    version_reply: Value,
    commands: BTreeSet<String>,
    schema: Value,
    unknown_command: Value,
    bad_argument: Value,
    job_transcript: Vec<Value>,
    nodes: Value,
}

fn observe(launcher: Launcher, options: ConnectOptions) -> Observed {
    let server = start(launcher);
    let client = connect(&server, options);
    let transcript = Transcript::record(&client);
    let image = server.dir().join("pretty.img");
    let image = conformance_common::leak(image.to_str().unwrap());
    transcript.execute(&BlockdevCreate::new(
        "job0",
        BlockdevCreateOptionsFile {
            filename: image,
            size: 1 << 20,
            ..Default::default()
        },
    ));
    transcript.wait_for(6);
    transcript.execute(&QueryJobs);
    transcript.execute(&JobDismiss { id: "job0" });
    client.execute(&null_node("n0")).unwrap();
    let observed = Observed {
        version: client.version().unwrap().to_string(),
        oob_offered: client.capabilities().unwrap().oob,
        package: client.info().package.clone(),
        version_reply: client.execute_value("query-version", Value::Null).unwrap(),
        commands: command_names(&client),
        schema: client.execute(&QueryQmpSchema).unwrap().raw().to_value(),
        unknown_command: error_value(
            &client
                .execute_value("no-such-command", Value::Null)
                .unwrap_err(),
        ),
        bad_argument: error_value(
            &client
                .execute_value("blockdev-del", json!({"node-name": "nope"}))
                .unwrap_err(),
        ),
        job_transcript: transcript.entries(),
        nodes: client
            .execute(&QueryNamedBlockNodes { flat: Some(true) })
            .unwrap()
            .raw()
            .to_value(),
    };
    assert_eq!(client.stats().malformed, 0);
    observed
}

#[test]
fn a_pretty_monitor_gives_the_same_results_as_a_compact_one() {
    let _guard = watchdog("pretty", LIMIT);
    // Pretty output is larger: qsd's schema is about 323 KB with indentation, more than
    // the default 256 KiB receive buffer.
    let roomy = options().rx_buffer_size(1024 * 1024);
    let compact = observe(Launcher::new(ServerKind::StorageDaemon), roomy.clone());
    let pretty = observe(Launcher::new(ServerKind::StorageDaemon).pretty(true), roomy);
    assert_eq!(compact, pretty);
    assert_eq!(
        pretty.job_transcript,
        vector_transcript("15-job-blockdev-create")
    );
    assert_eq!(
        pretty.version,
        qemu_version(ServerKind::StorageDaemon).to_string()
    );

    // With the default buffer the pretty schema is too large; only that call fails.
    let server = start(Launcher::new(ServerKind::StorageDaemon).pretty(true));
    let client = connect(&server, options());
    let too_large = client.execute(&QueryQmpSchema);
    assert!(
        matches!(too_large, Err(Error::ReplyTooLarge { len }) if len > 256 * 1024),
        "{too_large:?}"
    );
    let version = client.execute_value("query-version", Value::Null).unwrap();
    assert_eq!(version, compact.version_reply);
}
