//! Session start through the blocking client against qemu-storage-daemon and
//! `qemu-system-x86_64 -M none`: the greeting, negotiation with and without
//! out-of-band execution, and the one-client-per-monitor rule.

mod conformance_common;

use core::time::Duration;

use conformance_common::{connect, options, qsd, qsys, watchdog, WAIT};
use qmp_std::qmp_core::client::ExecuteError;
use qmp_std::qmp_core::commands::{QueryStatus, QueryVersion, QueryYank};
use qmp_std::{Client, Error, ErrorClass, QemuProcess, ServerKind};
use qmp_tests::qemu_build;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(300);

/// The package string of the greeting and of `query-version` (the distribution build).
fn package_of(client: &Client) -> String {
    client
        .call(&QueryVersion, |v| v.package.chars().collect::<String>())
        .unwrap()
}

/// What every monitor says about itself, OOB or not: the version and package its
/// program's `--version` reports (10.0.2, or 7.2 in the second run of
/// `scripts/test.sh`), and the `oob` capability (offered on socket monitors by both).
fn assert_greeting(client: &Client, kind: ServerKind) {
    let version = client.version().expect("the greeting has a version");
    let build = qemu_build(kind);
    assert_eq!(
        (version.major, version.minor, version.micro),
        (
            build.version.major,
            build.version.minor,
            build.version.micro
        ),
        "the greeting's version is {}'s",
        build.program.display()
    );
    qmp_tests::assert_known(build.version);
    assert_eq!(client.info().package, build.package);
    let capabilities = client
        .capabilities()
        .expect("the greeting has capabilities");
    assert!(
        capabilities.oob,
        "{} offers oob on socket monitors",
        build.version
    );
    assert_eq!(capabilities.unknown, 0);
    assert_eq!(client.info().package, package_of(client));
    let reply = client.execute(&QueryVersion).unwrap();
    assert_eq!(reply.get().unwrap().qemu, version);
}

fn both_servers() -> [QemuProcess; 2] {
    [qsd(), qsys()]
}

#[test]
fn negotiation_without_oob() {
    let _guard = watchdog("negotiation_without_oob", LIMIT);
    for server in both_servers() {
        let client = connect(&server, options());
        assert_greeting(&client, server.kind());
        assert!(!client.oob_enabled());
        // Out-of-band calls are refused before anything is sent, the session goes on.
        assert!(
            matches!(
                client.execute_oob(&QueryYank),
                Err(Error::Execute(ExecuteError::OobNotEnabled))
            ),
            "{}",
            server.kind()
        );
        client.execute(&QueryVersion).unwrap();
        assert_eq!(client.stats().malformed, 0);
    }
}

#[test]
fn negotiation_with_oob() {
    let _guard = watchdog("negotiation_with_oob", LIMIT);
    let [storage, system] = both_servers();

    let client = connect(&storage, options().enable_oob(true));
    assert_greeting(&client, ServerKind::StorageDaemon);
    assert!(client.oob_enabled());
    // qemu-storage-daemon offers the capability but allows no command out of band
    // (vector 17): QEMU itself refuses.
    match client.execute_message(br#"{"exec-oob": "query-version"}"#) {
        Err(Error::Qmp { class, desc }) => {
            assert_eq!(class, ErrorClass::GenericError);
            assert_eq!(desc, "The command query-version does not support OOB");
        }
        other => panic!("unexpected {other:?}"),
    }
    // A typed command that is not `allow-oob` is refused by the client.
    assert!(matches!(
        client.execute_oob(&QueryVersion),
        Err(Error::Execute(ExecuteError::OobNotAllowed))
    ));
    client.execute(&QueryVersion).unwrap();

    let client = connect(&system, options().enable_oob(true));
    assert_greeting(&client, ServerKind::System);
    assert!(client.oob_enabled());
    let yank = client.execute_oob(&QueryYank).unwrap();
    let instances: Vec<_> = yank.get().unwrap().iter().map(Result::unwrap).collect();
    assert_eq!(instances.len(), 1, "{yank:?}");
    assert_eq!(
        yank.raw().to_value(),
        json!([{"type": "chardev", "id": "m0"}])
    );
    let status = client.execute(&QueryStatus).unwrap();
    assert!(status.get().unwrap().running);
    // The same without OOB on a fresh connection of the same monitor.
    drop(client);
    let client = connect(&system, options());
    assert!(!client.oob_enabled());
    let yank_in_band = client.execute(&QueryYank).unwrap();
    assert_eq!(yank_in_band.raw(), yank.raw());
}

#[test]
fn a_second_client_is_refused_until_the_first_leaves() {
    let _guard = watchdog("second_client", LIMIT);
    for server in both_servers() {
        let first = connect(&server, options());
        // QEMU accepts the connection and sends nothing while the first client is there.
        let second = Client::connect_unix(
            server.socket_path(),
            options().greeting_timeout(Some(Duration::from_secs(2))),
        );
        assert!(
            matches!(second, Err(Error::AlreadyConnected)),
            "{}: {second:?}",
            server.kind()
        );
        let error = second.unwrap_err();
        assert!(error.is_closed());
        assert_eq!(
            std::io::Error::from(error).kind(),
            std::io::ErrorKind::ResourceBusy
        );
        // The first client did not notice.
        first.execute(&QueryVersion).unwrap();
        assert!(!first.is_closed());
        first.close();
        // Once it has left, the monitor serves a new client.
        let third = Client::connect_unix(server.socket_path(), options()).unwrap();
        assert_greeting(&third, server.kind());
        third
            .execute_timeout(&QueryVersion, WAIT)
            .expect("the third client is served");
    }
}
