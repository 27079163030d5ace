//! Every typed command of qmp-core against the live servers, end to end: the schema is
//! fetched through our client (`query-qmp-schema`, decoded with the typed command), then
//! each `Command::NAME` must be a command of `qemu-system-x86_64` (and of
//! qemu-storage-daemon when qsd has it), its `ALLOW_OOB` must match `allow-oob`, and the
//! arguments the client would send (every optional member set) must fit the command's
//! `arg-type`: member names, JSON types, enum values, required members. Guest-agent
//! commands are checked against what `qemu-ga` lists in `guest-info`. Finally every typed
//! query is executed and its reply decoded with the typed decoder.
//!
//! `core/tests/vocabulary.rs` does the argument check offline against vector 07 and a
//! schema read over stdio; here the same holds through the client and the sockets.

mod conformance_common;

use core::time::Duration;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use conformance_common::{connect, options, qsd, qsys, start, watchdog};
use qmp_std::qmp_core::commands::*;
use qmp_std::qmp_core::qga::*;
use qmp_std::{Client, Error, GuestAgentClient, Launcher, ServerKind};
use qmp_tests::{qemu_version, QemuVersion};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(300);

/// One typed command instance: what the client sends for it.
struct Case {
    name: &'static str,
    allow_oob: bool,
    replies_on_success: bool,
    arguments: Value,
}

fn case<C: Command>(command: &C) -> Case {
    Case {
        name: C::NAME,
        allow_oob: C::ALLOW_OOB,
        replies_on_success: C::REPLIES_ON_SUCCESS,
        // The client serializes typed arguments with serde_json (`typed_body`).
        arguments: command
            .arguments()
            .map(|arguments| serde_json::to_value(arguments).unwrap())
            .unwrap_or_else(|| json!({})),
    }
}

macro_rules! cases {
    ($($command:expr),* $(,)?) => { vec![$(case(&$command)),*] };
}

/// Every QMP command type, with its optional members set so their names are checked.
fn qmp_cases() -> Vec<Case> {
    const KEYS: &[KeyValue<'static>] = &[KeyValue::qcode(QKeyCode::Ctrl), KeyValue::number(29)];
    const YANKS: &[YankInstance<'static>] = &[
        YankInstance::BlockNode { node_name: "n0" },
        YankInstance::Chardev { id: "c0" },
        YankInstance::Migration,
    ];
    const CAPS: &[MigrationCapabilityStatus<'static>] = &[MigrationCapabilityStatus {
        capability: MigrationCapability::Events,
        state: true,
    }];
    const PROPS: Properties<'static> = &[("drive", PropertyValue::Str("disk0"))];
    const NET_PROPS: Properties<'static> = &[
        ("ifname", PropertyValue::Str("tap0")),
        ("vhost", PropertyValue::Bool(true)),
        ("queues", PropertyValue::Uint(2)),
    ];
    const OBJECT_PROPS: Properties<'static> = &[("poll-max-ns", PropertyValue::Uint(0))];
    let socket = ChardevSocket {
        logfile: Some("/tmp/c0.log"),
        logappend: Some(true),
        tls_creds: Some("tls0"),
        nodelay: Some(true),
        telnet: Some(false),
        websocket: Some(false),
        reconnect_ms: Some(1000),
        ..ChardevSocket::client(SocketAddressLegacy::Unix(UnixSocketAddress {
            path: "/tmp/c0.sock",
            is_abstract: Some(false),
            tight: Some(true),
        }))
    };
    let inet = ChardevSocket::server(SocketAddressLegacy::Inet(InetSocketAddress {
        host: "127.0.0.1",
        port: "4444",
        ipv4: Some(true),
        ipv6: Some(false),
        keep_alive: Some(true),
    }));
    let vsock = ChardevSocket::client(SocketAddressLegacy::Vsock(VsockSocketAddress {
        cid: "3",
        port: "1234",
    }));
    let file_backend = ChardevFile {
        logfile: None,
        logappend: None,
        input: Some("/tmp/in"),
        out: "/tmp/out",
        append: Some(true),
    };
    let file = BlockdevOptionsFile {
        node_name: Some("file0"),
        discard: Some(BlockdevDiscardOptions::Unmap),
        cache: Some(BlockdevCacheOptions {
            direct: Some(true),
            no_flush: Some(false),
        }),
        read_only: Some(false),
        auto_read_only: Some(true),
        force_share: Some(false),
        detect_zeroes: Some(BlockdevDetectZeroesOptions::Unmap),
        filename: "/tmp/disk.img",
        aio: Some("threads"),
        locking: Some("off"),
    };
    cases![
        QueryStatus,
        Stop,
        Cont,
        SystemReset,
        SystemPowerdown,
        SystemWakeup,
        InjectNmi,
        Quit,
        QueryVersion,
        QueryCommands,
        QueryName,
        QueryKvm,
        HumanMonitorCommand {
            command_line: "info registers",
            cpu_index: Some(0),
        },
        QueryQmpSchema,
        AddFd {
            fdset_id: Some(1),
            opaque: Some("rw"),
        },
        RemoveFd {
            fdset_id: 1,
            fd: Some(3),
        },
        QueryFdsets,
        Getfd { fdname: "tapfd" },
        Closefd { fdname: "tapfd" },
        Balloon { value: 1 << 30 },
        QueryBalloon,
        QueryCpusFast,
        Screendump {
            filename: "/tmp/screen.png",
            device: Some("video0"),
            head: Some(0),
            format: Some(ImageFormat::Png),
        },
        SendKey {
            keys: KEYS,
            hold_time: Some(50),
        },
        Yank { instances: YANKS },
        QueryYank,
        BlockdevAdd::new(file),
        BlockdevAdd::new(BlockdevOptions::NullCo(BlockdevOptionsNull {
            latency_ns: Some(0),
            read_zeroes: Some(true),
            ..BlockdevOptionsNull::new("null0", 1 << 20)
        })),
        BlockdevAdd::new(BlockdevOptions::NullAio(BlockdevOptionsNull::new(
            "null1", 512
        ))),
        BlockdevAdd::new(BlockdevOptionsRaw {
            offset: Some(512),
            size: Some(1024),
            ..BlockdevOptionsRaw::new("raw0", "file0")
        }),
        BlockdevAdd::new(BlockdevOptionsQcow2 {
            backing: Some(None),
            lazy_refcounts: Some(true),
            pass_discard_request: Some(true),
            pass_discard_snapshot: Some(true),
            pass_discard_other: Some(false),
            discard_no_unref: Some(false),
            l2_cache_size: Some(1 << 20),
            l2_cache_entry_size: Some(65536),
            refcount_cache_size: Some(65536),
            cache_clean_interval: Some(600),
            data_file: Some("data0"),
            ..BlockdevOptionsQcow2::new("qcow0", "file0")
        }),
        BlockdevAdd::new(BlockdevOptionsQcow2 {
            backing: Some(Some("base0")),
            cache_size: Some(1 << 21),
            ..BlockdevOptionsQcow2::new("qcow1", "file1")
        }),
        BlockdevDel { node_name: "null0" },
        BlockdevCreate::new(
            "job0",
            BlockdevCreateOptionsFile {
                filename: "/tmp/new.img",
                size: 1 << 20,
                preallocation: Some(PreallocMode::Falloc),
                nocow: Some(false),
                extent_size_hint: Some(1 << 20),
            },
        ),
        BlockdevCreate::new(
            "job1",
            BlockdevCreateOptionsQcow2 {
                file: "file0",
                data_file: Some("data0"),
                data_file_raw: Some(false),
                extended_l2: Some(true),
                size: 1 << 30,
                version: Some("v3"),
                backing_file: Some("/tmp/base.img"),
                backing_fmt: Some("raw"),
                cluster_size: Some(65536),
                preallocation: Some(PreallocMode::Metadata),
                lazy_refcounts: Some(true),
                refcount_bits: Some(16),
                compression_type: Some("zstd"),
            },
        ),
        BlockdevMirror {
            replaces: Some("old0"),
            speed: Some(1 << 20),
            granularity: Some(65536),
            buf_size: Some(1 << 22),
            on_source_error: Some(BlockdevOnError::Stop),
            on_target_error: Some(BlockdevOnError::Report),
            filter_node_name: Some("mirror-top"),
            copy_mode: Some(MirrorCopyMode::WriteBlocking),
            auto_finalize: Some(true),
            auto_dismiss: Some(false),
            ..BlockdevMirror::new("m0", "src", "dst", MirrorSyncMode::Full)
        },
        BlockdevBackupCommand(BlockdevBackup {
            speed: Some(0),
            bitmap: Some("bitmap0"),
            bitmap_mode: Some(BitmapSyncMode::OnSuccess),
            compress: Some(false),
            on_source_error: Some(BlockdevOnError::Auto),
            on_target_error: Some(BlockdevOnError::Enospc),
            auto_finalize: Some(false),
            auto_dismiss: Some(false),
            filter_node_name: Some("backup-top"),
            discard_source: Some(false),
            ..BlockdevBackup::new("b0", "src", "dst", MirrorSyncMode::Incremental)
        }),
        BlockStream {
            base: Some("/tmp/base.img"),
            base_node: Some("base0"),
            backing_file: Some("base.img"),
            backing_mask_protocol: Some(true),
            bottom: Some("mid0"),
            speed: Some(1),
            on_error: Some(BlockdevOnError::Ignore),
            filter_node_name: Some("stream-top"),
            auto_finalize: Some(true),
            auto_dismiss: Some(true),
            ..BlockStream::new("s0", "top0")
        },
        BlockCommit {
            base_node: Some("base0"),
            base: Some("/tmp/base.img"),
            top_node: Some("mid0"),
            top: Some("/tmp/mid.img"),
            backing_file: Some("base.img"),
            backing_mask_protocol: Some(false),
            speed: Some(1),
            on_error: Some(BlockdevOnError::Report),
            filter_node_name: Some("commit-top"),
            auto_finalize: Some(true),
            auto_dismiss: Some(true),
            ..BlockCommit::new("c0", "top0")
        },
        BlockResize {
            device: Some("drive0"),
            node_name: Some("node0"),
            size: 1 << 30,
        },
        QueryBlock,
        QueryNamedBlockNodes { flat: Some(true) },
        QueryBlockstats {
            query_nodes: Some(true),
        },
        JobPause { id: "j" },
        JobResume { id: "j" },
        JobCancel { id: "j" },
        JobComplete { id: "j" },
        JobFinalize { id: "j" },
        JobDismiss { id: "j" },
        QueryJobs,
        QueryBlockJobs,
        BlockJobCancel {
            device: "j",
            force: Some(true),
        },
        BlockJobComplete { device: "j" },
        BlockJobPause { device: "j" },
        BlockJobResume { device: "j" },
        BlockJobSetSpeed {
            device: "j",
            speed: 0,
        },
        DeviceAdd {
            driver: "virtio-blk-pci",
            id: Some("disk0"),
            bus: Some("pci.0"),
            properties: PROPS,
        },
        DeviceDel { id: "disk0" },
        NetdevAdd {
            properties: NET_PROPS,
            ..NetdevAdd::new("tap", "net0")
        },
        NetdevDel { id: "net0" },
        ObjectAdd {
            properties: OBJECT_PROPS,
            ..ObjectAdd::new("iothread", "io0")
        },
        ObjectDel { id: "io0" },
        QomList { path: "/machine" },
        QomGet {
            path: "/machine",
            property: "type",
        },
        QomSet {
            path: "/machine/peripheral/net0",
            property: "link_up",
            value: false,
        },
        QomListTypes {
            implements: Some("device"),
            r#abstract: Some(false),
        },
        ChardevAdd::new("c0", ChardevBackend::Socket(socket)),
        ChardevAdd::new("c1", ChardevBackend::Socket(inet)),
        ChardevAdd::new("c2", ChardevBackend::Socket(vsock)),
        ChardevAdd::new("c3", ChardevBackend::File(file_backend)),
        ChardevAdd::new("c4", ChardevBackend::Pty(ChardevCommon::default())),
        ChardevAdd::new(
            "c5",
            ChardevBackend::Null(ChardevCommon {
                logfile: Some("/tmp/null.log"),
                logappend: Some(false),
            })
        ),
        ChardevAdd::new(
            "c6",
            ChardevBackend::Ringbuf(ChardevRingbuf {
                size: Some(4096),
                ..ChardevRingbuf::default()
            })
        ),
        ChardevRemove { id: "c0" },
        QueryChardev,
        Migrate {
            resume: Some(false),
            ..Migrate::new("unix:/tmp/migrate.sock")
        },
        MigrateIncoming {
            exit_on_error: Some(false),
            ..MigrateIncoming::new("tcp:0:4446")
        },
        MigrateCancel,
        MigratePause,
        MigrateRecover { uri: "tcp:0:4447" },
        QueryMigrate,
        MigrateSetCapabilities { capabilities: CAPS },
        QueryMigrateCapabilities,
        MigrateSetParametersCommand(MigrateSetParameters {
            announce_initial: Some(50),
            announce_max: Some(550),
            announce_rounds: Some(5),
            announce_step: Some(100),
            throttle_trigger_threshold: Some(50),
            cpu_throttle_initial: Some(20),
            cpu_throttle_increment: Some(10),
            cpu_throttle_tailslow: Some(false),
            tls_creds: Some(StrOrNull::S("")),
            tls_hostname: Some(StrOrNull::S("dst.example")),
            tls_authz: Some(StrOrNull::N(())),
            max_bandwidth: Some(1 << 30),
            avail_switchover_bandwidth: Some(0),
            downtime_limit: Some(300),
            x_checkpoint_delay: Some(200),
            multifd_channels: Some(4),
            xbzrle_cache_size: Some(1 << 26),
            max_postcopy_bandwidth: Some(0),
            max_cpu_throttle: Some(99),
            multifd_compression: Some(MultiFDCompression::None),
            multifd_zlib_level: Some(1),
            multifd_qatzip_level: Some(1),
            multifd_zstd_level: Some(1),
            block_bitmap_mapping: Some(&[]),
            x_vcpu_dirty_limit_period: Some(1000),
            vcpu_dirty_limit: Some(1),
            mode: Some(MigMode::Normal),
            zero_page_detection: Some(ZeroPageDetection::Multifd),
            direct_io: Some(false),
        }),
        QueryMigrateParameters,
    ]
}

/// Every guest-agent command type.
fn qga_cases() -> Vec<Case> {
    cases![
        GuestSync { id: 42 },
        GuestSyncDelimited { id: 42 },
        GuestPing,
        GuestInfo,
        GuestGetOsinfo,
        GuestGetHostName,
        GuestGetTime,
        GuestSetTime { time: Some(1) },
        GuestGetTimezone,
        GuestExecCommand::new("/bin/true", &[]),
        GuestExecStatusCommand { pid: 1 },
        GuestFileOpen {
            path: "/etc/hostname",
            mode: Some("r"),
        },
        GuestFileClose { handle: 1 },
        GuestFileReadCommand {
            handle: 1,
            count: Some(1),
        },
        GuestFileWriteCommand {
            handle: 1,
            buf_b64: "",
            count: Some(0),
        },
        GuestFileSeekCommand {
            handle: 1,
            offset: 0,
            whence: GuestFileWhence::Name(QGASeek::End),
        },
        GuestFileFlush { handle: 1 },
        GuestFsfreezeStatusCommand,
        GuestFsfreezeFreeze,
        GuestFsfreezeFreezeList { mountpoints: None },
        GuestFsfreezeThaw,
        GuestNetworkGetInterfaces,
        GuestGetUsers,
        GuestShutdown { mode: None },
        GuestSuspendDisk,
        GuestSuspendRam,
        GuestSuspendHybrid,
    ]
}

/// The wire names qmp-core's sources declare (`name: "..."` in `command!`,
/// `const NAME: &'static str = "..."`, and the bare names of the job macros), so that a
/// command added to qmp-core without a case here fails the test. `files` are paths under
/// `core/src`; `dir/*` means every file of `dir`.
fn declared_names(files: &[&str]) -> BTreeSet<&'static str> {
    let source = qmp_tests::repo_root().join("core/src");
    let mut paths = Vec::new();
    for file in files {
        match file.strip_suffix("/*") {
            Some(dir) => paths.extend(
                std::fs::read_dir(source.join(dir))
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            ),
            None => paths.push(source.join(file)),
        }
    }
    let mut names = BTreeSet::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        // Generated commands re-exported in place of hand-written ones
        // (`pub use crate::qapi::qmp::{Cont, QueryStatus, ...};`): their wire names.
        let mut rest = text.as_str();
        while let Some((_, after)) = rest.split_once("pub use crate::qapi::qmp::{") {
            let (list, tail) = after.split_once('}').unwrap();
            rest = tail;
            let idents: BTreeSet<&str> = list.split(',').map(str::trim).collect();
            for command in qmp_std::qmp_core::qapi::qmp::info::COMMANDS {
                let camel: String = command
                    .name
                    .split(['-', '_'])
                    .map(|part| {
                        let mut chars = part.chars();
                        chars.next().map_or_else(String::new, |first| {
                            first.to_ascii_uppercase().to_string() + chars.as_str()
                        })
                    })
                    .collect();
                if idents.contains(camel.as_str()) {
                    names.insert(command.name);
                }
            }
        }
        for line in text.lines() {
            let line = line.trim().trim_end_matches(',');
            let quoted = line
                .strip_prefix("name: ")
                .or_else(|| {
                    line.split_once("const NAME: &'static str = ")
                        .map(|(_, n)| n)
                })
                .map(|rest| rest.trim_end_matches(';'))
                .or_else(|| Some(line).filter(|l| l.starts_with('"')));
            let Some(name) = quoted.and_then(|q| q.strip_prefix('"')?.strip_suffix('"')) else {
                continue;
            };
            let wire_name =
                |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
            if !name.is_empty() && name != "wire-name" && name.chars().all(wire_name) {
                names.insert(conformance_common::leak(name));
            }
        }
    }
    names
}

// ---------------------------------------------------------------------------------------
// The schema, fetched through the client.

/// Argument members of typed commands that QEMU 7.2 does not have, with the release that
/// added each (from QEMU 10.0.2's QMP reference): `(command, member, since)`. The typed
/// commands make them optional, so a caller that leaves them unset talks to 7.2 as well.
/// Against a server older than `since` exactly these are accepted as unknown, and the
/// test checks that each of them is met, so the list stays exact.
const MEMBERS_AFTER_7_2: &[(&str, &str, QemuVersion)] = &[
    (
        "blockdev-add",
        "discard-no-unref",
        QemuVersion::new(8, 1, 0),
    ),
    (
        "blockdev-backup",
        "discard-source",
        QemuVersion::new(9, 1, 0),
    ),
    (
        "block-stream",
        "backing-mask-protocol",
        QemuVersion::new(9, 0, 0),
    ),
    (
        "block-commit",
        "backing-mask-protocol",
        QemuVersion::new(9, 0, 0),
    ),
    ("chardev-add", "reconnect-ms", QemuVersion::new(9, 2, 0)),
    (
        "migrate-incoming",
        "exit-on-error",
        QemuVersion::new(9, 1, 0),
    ),
    (
        "migrate-set-parameters",
        "avail-switchover-bandwidth",
        QemuVersion::new(8, 2, 0),
    ),
    ("migrate-set-parameters", "mode", QemuVersion::new(8, 2, 0)),
    (
        "migrate-set-parameters",
        "zero-page-detection",
        QemuVersion::new(9, 0, 0),
    ),
    (
        "migrate-set-parameters",
        "direct-io",
        QemuVersion::new(9, 1, 0),
    ),
    (
        "migrate-set-parameters",
        "multifd-qatzip-level",
        QemuVersion::new(9, 2, 0),
    ),
    (
        "migrate-set-parameters",
        "x-vcpu-dirty-limit-period",
        QemuVersion::new(8, 1, 0),
    ),
    (
        "migrate-set-parameters",
        "vcpu-dirty-limit",
        QemuVersion::new(8, 1, 0),
    ),
];

struct Schema {
    entities: HashMap<String, Value>,
    /// The release of the server the schema came from.
    version: QemuVersion,
    /// `(command, member)` of [`MEMBERS_AFTER_7_2`] met as unknown, as this server is
    /// older than the member.
    newer_members: RefCell<BTreeSet<(String, String)>>,
}

fn members(entity: &Value) -> Vec<(String, String, bool)> {
    entity["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["type"].as_str().unwrap().to_owned(),
                m.get("default").is_some(),
            )
        })
        .collect()
}

impl Schema {
    /// `query-qmp-schema` through `client`, decoded with the typed command; each
    /// entity's raw object is kept for the checks.
    fn fetch(client: &Client, kind: ServerKind) -> Schema {
        let reply = client.execute(&QueryQmpSchema).unwrap();
        let entities = reply
            .get()
            .unwrap()
            .iter()
            .map(|entity| {
                let entity = entity.unwrap();
                let value: Value = serde_json::from_str(entity.raw.as_str()).unwrap();
                assert_eq!(value["meta-type"], entity.meta_type.raw());
                (entity.name.chars().collect(), value)
            })
            .collect();
        let version = qemu_version(kind);
        qmp_tests::assert_known(version);
        Schema {
            entities,
            version,
            newer_members: RefCell::default(),
        }
    }

    /// Whether `member`, unknown to this server, is an argument of the command at the
    /// start of `at` (`"LABEL COMMAND.path"`) that is newer than the server; if so it is
    /// recorded.
    fn newer_than_server(&self, at: &str, member: &str) -> bool {
        let command = at
            .split(' ')
            .nth(1)
            .and_then(|path| path.split('.').next())
            .unwrap_or_default();
        let newer = MEMBERS_AFTER_7_2.iter().any(|(name, newer_member, since)| {
            *name == command && *newer_member == member && self.version < *since
        });
        if newer {
            self.newer_members
                .borrow_mut()
                .insert((command.to_owned(), member.to_owned()));
        }
        newer
    }

    fn entity(&self, name: &str) -> &Value {
        &self.entities[name]
    }

    fn command(&self, name: &str) -> Option<&Value> {
        self.entities
            .get(name)
            .filter(|entity| entity["meta-type"] == "command")
    }

    /// Checks `value` against type `type_name`; the error names the path.
    fn check(&self, type_name: &str, value: &Value, at: &str) -> Result<(), String> {
        let entity = self.entity(type_name);
        let fail = |what: String| Err(format!("{at}: {value} {what}"));
        match entity["meta-type"].as_str().unwrap() {
            "builtin" => {
                let ok = match entity["json-type"].as_str().unwrap() {
                    "string" => value.is_string(),
                    "int" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    _ => true,
                };
                if ok {
                    Ok(())
                } else {
                    fail(format!("is not a {}", entity["json-type"]))
                }
            }
            "enum" if entity["values"].as_array().unwrap().contains(value) => Ok(()),
            "enum" => fail(format!("is not one of {}", entity["values"])),
            "array" => match value.as_array() {
                Some(elements) => elements.iter().enumerate().try_for_each(|(i, element)| {
                    let element_type = entity["element-type"].as_str().unwrap();
                    self.check(element_type, element, &format!("{at}[{i}]"))
                }),
                None => fail("is not an array".into()),
            },
            "alternate" => {
                let fits = entity["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| self.check(m["type"].as_str().unwrap(), value, at).is_ok());
                if fits {
                    Ok(())
                } else {
                    fail("fits no alternative".into())
                }
            }
            "object" => self.check_object(entity, value, at),
            other => fail(format!("has unexpected meta-type {other}")),
        }
    }

    fn check_object(&self, entity: &Value, value: &Value, at: &str) -> Result<(), String> {
        let Some(object) = value.as_object() else {
            return Err(format!("{at}: {value} is not an object"));
        };
        let mut expected = members(entity);
        if let Some(tag) = entity["tag"].as_str() {
            let variant = entity["variants"]
                .as_array()
                .unwrap()
                .iter()
                .find(|variant| Some(&variant["case"]) == object.get(tag))
                .ok_or_else(|| format!("{at}: no variant for {tag} = {:?}", object.get(tag)))?;
            expected.extend(members(self.entity(variant["type"].as_str().unwrap())));
        }
        for (key, member) in object {
            let Some((_, member_type, _)) = expected.iter().find(|(name, _, _)| name == key) else {
                if self.newer_than_server(at, key) {
                    continue;
                }
                return Err(format!("{at}: unknown member {key:?}"));
            };
            self.check(member_type, member, &format!("{at}.{key}"))?;
        }
        match expected
            .iter()
            .find(|(name, _, optional)| !optional && !object.contains_key(name))
        {
            Some((name, _, _)) => Err(format!("{at}: required member {name:?} missing")),
            None => Ok(()),
        }
    }

    /// Checks `case` if this server has its command; whether it had it.
    fn check_case(&self, case: &Case, failures: &mut Vec<String>, label: &str) -> bool {
        let Some(command) = self.command(case.name) else {
            return false;
        };
        let allow_oob = command["allow-oob"].as_bool().unwrap_or(false);
        if allow_oob != case.allow_oob {
            failures.push(format!(
                "{label} {}: ALLOW_OOB is {} but allow-oob is {allow_oob}",
                case.name, case.allow_oob
            ));
        }
        if !case.replies_on_success {
            failures.push(format!("{label} {}: QMP commands always reply", case.name));
        }
        let mut arguments = case.arguments.clone();
        if case.name == "device_add" {
            // `device_add` is `'gen': false`: the device's own properties ride along
            // without a schema.
            arguments.as_object_mut().unwrap().remove("drive");
        }
        let arg_type = command["arg-type"].as_str().unwrap();
        if let Err(error) = self.check(arg_type, &arguments, &format!("{label} {}", case.name)) {
            failures.push(error);
        }
        true
    }
}

#[test]
fn typed_commands_match_the_live_schemas_fetched_through_the_client() {
    let _guard = watchdog("live_schemas", LIMIT);
    let cases = qmp_cases();
    let mut failures = Vec::new();

    let system = qsys();
    let client = connect(&system, options());
    let schema = Schema::fetch(&client, ServerKind::System);
    for case in &cases {
        if !schema.check_case(case, &mut failures, "qemu-system-x86_64") {
            failures.push(format!("{} is not a qemu-system-x86_64 command", case.name));
        }
    }

    let mut newer_members = schema.newer_members.take();

    let storage = qsd();
    let client = connect(&storage, options());
    let schema = Schema::fetch(&client, ServerKind::StorageDaemon);
    let live_commands: BTreeSet<String> = client
        .execute(&QueryCommands)
        .unwrap()
        .get()
        .unwrap()
        .iter()
        .map(|info| info.unwrap().name.chars().collect())
        .collect();
    let mut checked = 0;
    for case in &cases {
        let present = schema.check_case(case, &mut failures, "qemu-storage-daemon");
        // The schema and query-commands agree on which commands qsd has.
        assert_eq!(present, live_commands.contains(case.name), "{}", case.name);
        checked += usize::from(present);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 40, "only {checked} typed commands exist in qsd");
    // Every member newer than the servers was met (all of them on 7.2, none on 10.0.2).
    newer_members.append(&mut schema.newer_members.take());
    let expected_newer: BTreeSet<(String, String)> = MEMBERS_AFTER_7_2
        .iter()
        .filter(|(_, _, since)| qemu_version(ServerKind::System) < *since)
        .map(|(command, member, _)| ((*command).to_owned(), (*member).to_owned()))
        .collect();
    assert_eq!(newer_members, expected_newer);
    if qemu_version(ServerKind::System).is_captured() {
        assert!(newer_members.is_empty());
    } else {
        assert_eq!(newer_members.len(), MEMBERS_AFTER_7_2.len());
    }
    let names: BTreeSet<&str> = cases.iter().map(|case| case.name).collect();
    assert_eq!(names, declared_names(&["commands/*"]), "cases vs. qmp-core");
}

#[test]
fn typed_guest_agent_commands_are_listed_by_qemu_ga() {
    let _guard = watchdog("qga_vocabulary", LIMIT);
    let agent = start(qmp_tests::agent_launcher());
    let client = GuestAgentClient::connect_unix(agent.socket_path(), options()).unwrap();
    let info = client.execute(&GuestInfo).unwrap();
    let listed: HashMap<String, bool> = info
        .get()
        .unwrap()
        .supported_commands
        .iter()
        .map(|command| {
            let command = command.unwrap();
            (command.name.chars().collect(), command.success_response)
        })
        .collect();
    let cases = qga_cases();
    // The guest-agent vocabulary is generated from QEMU's schema: every case is one of
    // its commands, and every generated command the agent lists agrees with it on
    // whether it replies on success (conformance_qapi checks that it lists them all).
    let generated = qmp_std::qmp_core::qapi::qga::info::COMMANDS;
    for case in &cases {
        assert!(
            generated.iter().any(|command| command.name == case.name),
            "{} is not a generated guest-agent command",
            case.name
        );
    }
    for command in generated {
        if let Some(success_response) = listed.get(command.name) {
            assert_eq!(
                *success_response, command.success_response,
                "{}: success-response",
                command.name
            );
        }
    }
    for case in cases {
        let success_response = listed
            .get(case.name)
            .unwrap_or_else(|| panic!("qemu-ga does not know {}", case.name));
        assert_eq!(
            *success_response, case.replies_on_success,
            "{}: REPLIES_ON_SUCCESS",
            case.name
        );
        assert!(!case.allow_oob, "{}: qemu-ga has no OOB", case.name);
    }
}

/// Runs a typed query and decodes its reply with the typed decoder.
fn decodes<C: Command>(client: &Client, command: &C) -> Result<(), String> {
    match client.execute(command) {
        Ok(reply) => reply
            .get()
            .map(drop)
            .map_err(|error| format!("{}: {error} in {}", C::NAME, reply.raw())),
        // An error reply is QEMU's answer (e.g. no balloon device); nothing to decode.
        Err(Error::Qmp { .. }) => Ok(()),
        Err(error) => Err(format!("{}: {error}", C::NAME)),
    }
}

#[test]
fn every_typed_query_decodes_live_replies() {
    let _guard = watchdog("live_replies", LIMIT);
    let system = start(
        Launcher::new(ServerKind::System)
            .machine("pc")
            .args(["-S", "-m", "128"]),
    );
    let client = connect(&system, options());
    client
        .execute(&BlockdevAdd::new(BlockdevOptions::NullCo(
            BlockdevOptionsNull::new("null0", 1 << 20),
        )))
        .unwrap();
    let results = [
        decodes(&client, &QueryStatus),
        decodes(&client, &QueryVersion),
        decodes(&client, &QueryCommands),
        decodes(&client, &QueryName),
        decodes(&client, &QueryKvm),
        decodes(&client, &QueryQmpSchema),
        decodes(&client, &QueryFdsets),
        decodes(&client, &QueryBalloon),
        decodes(&client, &QueryCpusFast),
        decodes(&client, &QueryYank),
        decodes(&client, &QueryBlock),
        decodes(&client, &QueryNamedBlockNodes::default()),
        decodes(
            &client,
            &QueryBlockstats {
                query_nodes: Some(true),
            },
        ),
        decodes(&client, &QueryJobs),
        decodes(&client, &QueryBlockJobs),
        decodes(&client, &QueryChardev),
        decodes(&client, &QueryMigrate),
        decodes(&client, &QueryMigrateCapabilities),
        decodes(&client, &QueryMigrateParameters),
        decodes(&client, &QomList { path: "/machine" }),
        decodes(
            &client,
            &QomGet {
                path: "/machine",
                property: "type",
            },
        ),
        decodes(&client, &QomListTypes::default()),
        decodes(&client, &HumanMonitorCommand::new("info version")),
    ];
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Decoding the lists element by element, not only their outer shape.
    let cpus = client.execute(&QueryCpusFast).unwrap();
    assert_eq!(cpus.get().unwrap().iter().map(Result::unwrap).count(), 1);
    let nodes = client.execute(&QueryNamedBlockNodes::default()).unwrap();
    assert_eq!(nodes.get().unwrap().iter().map(Result::unwrap).count(), 1);
    let blocks = client.execute(&QueryBlock).unwrap();
    assert!(blocks.get().unwrap().iter().all(|b| b.is_ok()));
    // The null node's statistics: nothing read or written yet.
    let stats = client
        .execute(&QueryBlockstats {
            query_nodes: Some(true),
        })
        .unwrap();
    let stats: Vec<_> = stats.get().unwrap().iter().map(Result::unwrap).collect();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].node_name.unwrap(), "null0");
    assert_eq!((stats[0].stats.rd_bytes, stats[0].stats.wr_bytes), (0, 0));
    assert!(stats[0].stats.timed_stats.iter().all(|t| t.is_ok()));
    let chardevs = client.execute(&QueryChardev).unwrap();
    assert!(chardevs.get().unwrap().iter().all(|c| c.is_ok()));
    let types = client.execute(&QomListTypes::default()).unwrap();
    assert!(types.get().unwrap().iter().all(|t| t.is_ok()));
    let capabilities = client.execute(&QueryMigrateCapabilities).unwrap();
    assert!(capabilities.get().unwrap().iter().all(|c| c.is_ok()));
}
