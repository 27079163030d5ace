//! File-descriptor passing (`SCM_RIGHTS`) on `qemu-system-x86_64`: a pipe's ends handed
//! over with `add-fd` and `getfd`, seen in `query-fdsets` and in QEMU's own descriptor
//! table, used by QEMU (`dump-guest-memory` into a `getfd` name comes out of our end of
//! the pipe), and closed again with `remove-fd` and `closefd`.

mod conformance_common;

use core::time::Duration;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::thread;

use conformance_common::{connect, error_value, options, qsys, qsys_pc, watchdog, WAIT};
use qmp_std::qmp_core::commands::{AddFd, Closefd, Getfd, QueryFdsets, QueryVersion, RemoveFd};
use qmp_std::{CallOptions, Client, Error, QemuProcess};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(300);

/// `pipe:[INODE]`, what `/proc/PID/fd/N` shows for a descriptor of this pipe.
fn pipe_name(end: &OwnedFd) -> String {
    let stat = rustix::fs::fstat(end).unwrap();
    format!("pipe:[{}]", stat.st_ino)
}

/// QEMU's descriptors that point at `name`, by number.
fn qemu_fds_on(process: &QemuProcess, name: &str) -> Vec<i64> {
    let mut fds: Vec<i64> = std::fs::read_dir(format!("/proc/{}/fd", process.pid()))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_link(entry.path()).is_ok_and(|target| target.as_os_str() == name)
        })
        .map(|entry| entry.file_name().to_str().unwrap().parse().unwrap())
        .collect();
    fds.sort_unstable();
    fds
}

/// One fd set as `(fdset-id, [(fd, opaque)])`.
type Fdset = (i64, Vec<(i64, Option<String>)>);

/// The fd sets, decoded with the typed command.
fn fdsets(client: &Client) -> Vec<Fdset> {
    let reply = client.execute(&QueryFdsets).unwrap();
    let sets = reply.get().unwrap();
    sets.iter()
        .map(|set| {
            let set = set.unwrap();
            let fds = set
                .fds
                .iter()
                .map(|fd| {
                    let fd = fd.unwrap();
                    (fd.fd, fd.opaque.map(|text| text.chars().collect()))
                })
                .collect();
            (set.fdset_id, fds)
        })
        .collect()
}

#[test]
fn add_fd_passes_a_pipe_that_query_fdsets_shows() {
    let _guard = watchdog("add_fd", LIMIT);
    let qsys = qsys();
    let client = connect(&qsys, options());
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    let name = pipe_name(&read_end);
    assert!(qemu_fds_on(&qsys, &name).is_empty());

    // Pipelined between two other commands, the descriptor rides on its own command.
    let before = client.submit(&QueryVersion, CallOptions::new());
    let fds = [write_end.as_fd()];
    let added = client.submit(
        &AddFd {
            fdset_id: None,
            opaque: Some("write end \"quoted\" é"),
        },
        CallOptions::new().fds(&fds),
    );
    let after = client.submit(&QueryVersion, CallOptions::new());
    before.wait().unwrap();
    let added = added.wait().unwrap();
    let info = added.get().unwrap();
    after.wait().unwrap();
    assert_eq!(qemu_fds_on(&qsys, &name), [info.fd]);
    assert_eq!(
        fdsets(&client),
        [(
            info.fdset_id,
            vec![(info.fd, Some("write end \"quoted\" é".to_owned()))]
        )]
    );

    // remove-fd closes it in QEMU (no other user), and the set disappears.
    client
        .execute(&RemoveFd {
            fdset_id: info.fdset_id,
            fd: Some(info.fd),
        })
        .unwrap();
    assert_eq!(fdsets(&client), []);
    assert!(qemu_fds_on(&qsys, &name).is_empty());
    // A second add-fd into the same set, then the whole set removed at once.
    let first = client
        .execute_with_fds(&AddFd::default(), &[read_end.as_fd()])
        .unwrap();
    let set = first.get().unwrap().fdset_id;
    let second = client
        .execute_with_fds(
            &AddFd {
                fdset_id: Some(set),
                opaque: None,
            },
            &[write_end.as_fd()],
        )
        .unwrap();
    assert_eq!(second.get().unwrap().fdset_id, set);
    assert_eq!(qemu_fds_on(&qsys, &name).len(), 2);
    let sets = fdsets(&client);
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].1.len(), 2);
    client
        .execute(&RemoveFd {
            fdset_id: set,
            fd: None,
        })
        .unwrap();
    assert_eq!(fdsets(&client), []);
    assert!(qemu_fds_on(&qsys, &name).is_empty());
    // Without a descriptor, add-fd is QEMU's error.
    let missing = client.execute(&AddFd::default()).unwrap_err();
    assert!(matches!(missing, Error::Qmp { .. }), "{missing}");
}

#[test]
fn a_pipe_passed_with_getfd_receives_a_memory_dump() {
    let _guard = watchdog("getfd_dump", LIMIT);
    let qsys = qsys_pc();
    let client = connect(&qsys, options());
    let completed = client.subscribe_filtered(&["DUMP_COMPLETED"]);
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    client
        .execute_with_fds(&Getfd { fdname: "dump" }, &[write_end.as_fd()])
        .unwrap();
    drop(write_end);
    let reader = thread::spawn(move || {
        let mut bytes = Vec::new();
        std::fs::File::from(read_end)
            .read_to_end(&mut bytes)
            .map(|_| bytes)
    });
    // QEMU takes the named descriptor, writes an ELF dump of 4 KiB of guest memory into
    // it and closes it: our read end sees the dump, then the end of the pipe.
    client
        .execute_value(
            "dump-guest-memory",
            json!({"paging": false, "protocol": "fd:dump", "begin": 0, "length": 4096}),
        )
        .unwrap();
    let event = completed.recv_timeout(WAIT).unwrap();
    assert_eq!(
        event.data_value()["result"],
        json!({"total": 4096, "status": "completed", "completed": 4096})
    );
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(reader.join());
    });
    let bytes = finished
        .recv_timeout(WAIT)
        .expect("QEMU closes the passed descriptor after the dump")
        .unwrap()
        .unwrap();
    assert!(
        bytes.starts_with(b"\x7fELF"),
        "{:?}",
        &bytes[..bytes.len().min(16)]
    );
    assert!(bytes.len() > 4096, "{} bytes", bytes.len());
    // The name was consumed with the descriptor.
    let gone = client.execute(&Closefd { fdname: "dump" }).unwrap_err();
    assert_eq!(
        error_value(&gone)["error"]["desc"],
        "File descriptor named 'dump' not found"
    );
}

#[test]
fn getfd_and_closefd_name_and_close_a_passed_pipe() {
    let _guard = watchdog("getfd", LIMIT);
    let qsys = qsys();
    let client = connect(&qsys, options());
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    let name = pipe_name(&write_end);
    client
        .execute_with_fds(&Getfd { fdname: "pipe-w" }, &[write_end.as_fd()])
        .unwrap();
    assert_eq!(qemu_fds_on(&qsys, &name).len(), 1);
    // A second descriptor under another name (both ends of a pipe show the same
    // inode); then another one under that name: the newer replaces the older, which
    // QEMU closes.
    client
        .execute_with_fds(&Getfd { fdname: "pipe-r" }, &[read_end.as_fd()])
        .unwrap();
    assert_eq!(qemu_fds_on(&qsys, &name).len(), 2);
    client
        .execute_with_fds(&Getfd { fdname: "pipe-r" }, &[write_end.as_fd()])
        .unwrap();
    assert_eq!(qemu_fds_on(&qsys, &name).len(), 2);
    client.execute(&Closefd { fdname: "pipe-w" }).unwrap();
    client.execute(&Closefd { fdname: "pipe-r" }).unwrap();
    assert!(qemu_fds_on(&qsys, &name).is_empty());
    // Closing again: QEMU no longer knows the name.
    let again = client.execute(&Closefd { fdname: "pipe-w" }).unwrap_err();
    assert_eq!(
        error_value(&again)["error"]["desc"],
        "File descriptor named 'pipe-w' not found"
    );
    // getfd without a descriptor is QEMU's error, not the client's.
    let missing = client.execute(&Getfd { fdname: "none" }).unwrap_err();
    assert!(matches!(missing, Error::Qmp { .. }), "{missing}");
    // Descriptors ride only on the command they were given with.
    client.execute(&QueryVersion).unwrap();
    assert_eq!(qemu_fds_on(&qsys, &name), Vec::<i64>::new());
}
