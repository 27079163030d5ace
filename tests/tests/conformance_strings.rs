//! Argument strings full of quotes, backslashes, control characters and non-ASCII text
//! that QEMU echoes back unchanged: a QOM string property (`qom-set`/`qom-get`), a ring
//! buffer character device, the file name of a block node, and error messages that
//! quote the input. QEMU writes everything back as 7-bit ASCII with `\u` escapes
//! (vector 19); the client must turn it back into the very same strings.

mod conformance_common;

use core::time::Duration;

use conformance_common::{connect, error_value, options, qsd, qsys, wait_until, watchdog};
use qmp_std::qmp_core::client::ExecuteError;
use qmp_std::qmp_core::commands::{
    BlockdevAdd, BlockdevCreate, BlockdevCreateOptionsFile, BlockdevOptionsFile, JobDismiss,
    ObjectAdd, PropertyValue, QomGet, QomSet, QueryJobs, QueryNamedBlockNodes, QueryVersion,
};
use qmp_std::qmp_core::encode::EncodeError;
use qmp_std::{Client, Error, ErrorClass};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(300);

/// Strings QEMU must echo unchanged. NUL is included: QEMU keeps it (as modified UTF-8)
/// and sends it back as `\u0000`.
fn nasty_strings() -> Vec<String> {
    let mut strings: Vec<String> = [
        "plain",
        "",
        "q\"uote \"\" \"",
        "back\\slash \\\\ \\\" \\u0041 \\n",
        "'single' quotes",
        "tab\tnewline\ncr\rbell\u{7}backspace\u{8}formfeed\u{c}esc\u{1b}del\u{7f}",
        "\u{1}\u{2}\u{1f} a\u{0}b",
        "C1 controls \u{80}\u{9f}",
        "é ñ ß Ω ж 漢字 かな 한글",
        "astral 😀🎉𝄞 \u{10FFFD}",
        "separators \u{2028} \u{2029} bom \u{feff}",
        "{\"json\": [1, 2, {\"x\": null}]}",
        "</script> & <b> %s %n ${x} $(x)",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // A long one mixing all of the above (QEMU escapes it to many times its length).
    strings.push(strings.concat().repeat(20));
    strings
}

/// The string a `qom-get` returned, decoded with the typed command.
fn qom_get(client: &Client, path: &str) -> String {
    let reply = client
        .execute(&QomGet {
            path,
            property: "identity",
        })
        .unwrap();
    let value = reply.get().unwrap();
    value
        .as_json_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
        .chars()
        .collect()
}

#[test]
fn strings_survive_qom_set_and_qom_get() {
    let _guard = watchdog("qom_strings", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options());
    client
        .execute(&ObjectAdd {
            properties: &[("identity", PropertyValue::Str("x"))],
            ..ObjectAdd::new("authz-simple", "a0")
        })
        .unwrap();
    for text in nasty_strings() {
        // Typed in, typed out.
        client
            .execute(&QomSet {
                path: "/objects/a0",
                property: "identity",
                value: text.as_str(),
            })
            .unwrap();
        assert_eq!(qom_get(&client, "/objects/a0"), text);
        // serde_json in, serde_json out.
        client
            .execute_value(
                "qom-set",
                json!({"path": "/objects/a0", "property": "identity", "value": text}),
            )
            .unwrap();
        let value = client
            .execute_value(
                "qom-get",
                json!({"path": "/objects/a0", "property": "identity"}),
            )
            .unwrap();
        assert_eq!(value, Value::String(text.clone()));
        // An error message quoting the input (a path naming no object: not empty,
        // which is `/objects` itself).
        let path = format!("/objects/missing {text}");
        let error = client
            .execute(&QomGet {
                path: &path,
                property: "identity",
            })
            .unwrap_err();
        match error {
            Error::Qmp { class, desc } => {
                assert_eq!(desc, format!("Device '{path}' not found"));
                assert_eq!(class, ErrorClass::DeviceNotFound);
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(client.stats().malformed, 0);
}

#[test]
fn strings_survive_a_ring_buffer_chardev() {
    let _guard = watchdog("ringbuf_strings", LIMIT);
    let qsys = qsys();
    let client = connect(&qsys, options());
    client
        .execute_value(
            "chardev-add",
            json!({"id": "ring", "backend": {"type": "ringbuf", "data": {"size": 1 << 20}}}),
        )
        .unwrap();
    for text in nasty_strings() {
        // ringbuf-read returns bytes as a C string: NUL cannot come back.
        if text.contains('\0') {
            continue;
        }
        client
            .execute_value("ringbuf-write", json!({"device": "ring", "data": text}))
            .unwrap();
        let read = client
            .execute_value(
                "ringbuf-read",
                json!({"device": "ring", "size": text.len() + 1, "format": "utf8"}),
            )
            .unwrap();
        assert_eq!(read, Value::String(text.clone()));
    }
}

#[test]
fn file_names_survive_blockdev_create_and_query_named_block_nodes() {
    let _guard = watchdog("file_name_strings", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options());
    // Everything a Linux file name may hold (no NUL, no '/'); vector 19 did the same
    // with fewer characters.
    let names = [
        "f\u{e9} \u{6f22} \u{1f600} 'sq' \"dq\" back\\slash.img",
        "ctl\t\u{1}\u{1f}\u{7f}\nline\r.img",
        "json {\"driver\": \"null-co\"} [x].img",
    ];
    for (index, name) in names.iter().enumerate() {
        let path = qsd.dir().join(name);
        let path = path.to_str().unwrap();
        let job = format!("j{index}");
        client
            .execute(&BlockdevCreate::new(
                &job,
                BlockdevCreateOptionsFile {
                    filename: path,
                    size: 65536,
                    ..Default::default()
                },
            ))
            .unwrap();
        wait_until("the create job to conclude", || {
            let jobs = client.execute(&QueryJobs).unwrap();
            let jobs = jobs.get().unwrap();
            jobs.iter().any(|job| job.unwrap().status == "concluded")
        });
        client.execute(&JobDismiss { id: &job }).unwrap();
        assert!(std::path::Path::new(path).exists(), "{path:?} not created");
        let node = format!("file{index}");
        client
            .execute(&BlockdevAdd::new(BlockdevOptionsFile {
                node_name: Some(&node),
                filename: path,
                ..Default::default()
            }))
            .unwrap();
        let nodes = client
            .execute(&QueryNamedBlockNodes { flat: Some(true) })
            .unwrap();
        let found = nodes
            .get()
            .unwrap()
            .iter()
            .map(Result::unwrap)
            .find(|info| info.node_name.is_some_and(|n| n == node.as_str()))
            .expect("the node is listed");
        assert_eq!(found.file.chars().collect::<String>(), path);
        assert_eq!(found.image.filename.chars().collect::<String>(), path);
        // A missing file: the error message quotes the path.
        let missing = format!("/nonexistent/{name}");
        let error = client
            .execute(&BlockdevAdd::new(BlockdevOptionsFile {
                node_name: Some("missing"),
                filename: &missing,
                ..Default::default()
            }))
            .unwrap_err();
        assert_eq!(
            error_value(&error)["error"]["desc"],
            format!("Could not open '{missing}': No such file or directory")
        );
    }
    // Vector 19's own error: a node-name with é and a quote, quoted back.
    let error = client
        .execute_value(
            "blockdev-add",
            json!({"driver": "null-co", "node-name": "n\u{e9}\"x"}),
        )
        .unwrap_err();
    assert_eq!(
        error_value(&error)["error"]["desc"],
        "Invalid node-name: 'n\u{e9}\"x'"
    );
}

/// Whether the client refused the arguments itself. (Both the typed and the serde_json
/// path report `InvalidArguments`, without the character; the encoder's own error
/// would name it.)
fn refused_before_sending<T>(result: &Result<T, Error>) -> bool {
    matches!(
        result,
        Err(Error::Execute(
            ExecuteError::InvalidArguments | ExecuteError::Encode(EncodeError::NonCharacter { .. })
        ))
    )
}

#[test]
fn characters_qemu_cannot_parse_are_refused_without_harm() {
    let _guard = watchdog("noncharacters", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options());
    client
        .execute(&ObjectAdd {
            properties: &[("identity", PropertyValue::Str("x"))],
            ..ObjectAdd::new("authz-simple", "a0")
        })
        .unwrap();
    // QEMU answers a noncharacter with an id-less parse error that no call could be
    // matched with: the client refuses to send it, and the session goes on.
    for text in ["a\u{fffe}b", "a\u{ffff}b", "\u{fdd0}", "\u{10ffff}"] {
        let typed = client.execute_timeout(
            &QomSet {
                path: "/objects/a0",
                property: "identity",
                value: text,
            },
            Duration::from_secs(60),
        );
        assert!(refused_before_sending(&typed), "{text:?}: {typed:?}");
        let value = client.execute_value(
            "qom-set",
            json!({"path": "/objects/a0", "property": "identity", "value": text}),
        );
        assert!(refused_before_sending(&value), "{text:?}: {value:?}");
        client.execute(&QueryVersion).unwrap();
    }
    // Nothing reached QEMU's parser.
    assert_eq!(client.stats().unattributed_errors, 0);
    assert_eq!(qom_get(&client, "/objects/a0"), "x");
}
