//! The typed vocabulary (commands, events, guest-agent commands) checked against QEMU
//! itself:
//! - every command's arguments are validated against the introspected QAPI schema of
//!   qemu-storage-daemon 10.0.2 (vector 07) and, when `qemu-system-x86_64` is installed,
//!   against its live schema: member names, JSON types, enum values, required members;
//! - the names of response and event fields exist in the schema's return and event types;
//! - encodings equal the bytes of the captured requests, and the crate's encoder,
//!   serde-json-core and serde_json write the same bytes;
//! - captured replies and events decode to the values QEMU sent.

use core::fmt;
use core::time::Duration;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;

use qmp_core::commands::*;
use qmp_core::events::*;
use qmp_core::json::RawJson;
use qmp_core::qga::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Vectors.

fn vectors_dir() -> PathBuf {
    match std::env::var_os("QMP_VECTORS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/protocol/vectors"),
    }
}

fn vector(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The JSON lines of a vector: CR, LF and QGA's 0xFF sentinel stripped.
fn lines(name: &str) -> Vec<Vec<u8>> {
    vector(name)
        .split(|&b| b == b'\n')
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let start = line.iter().position(|&b| b != 0xFF).unwrap_or(line.len());
            line[start..].to_vec()
        })
        .filter(|line| !line.is_empty())
        .collect()
}

/// The first line of vector `name` containing `needle`.
fn line_with(name: &str, needle: &str) -> Vec<u8> {
    lines(name)
        .into_iter()
        .find(|line| contains(line, needle.as_bytes()))
        .unwrap_or_else(|| panic!("no line with {needle:?} in {name}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Member `key` of the message on `line`, as qmp-core's zero-copy view.
fn member<'a>(line: &'a [u8], key: &str) -> RawJson<'a> {
    RawJson::parse(line)
        .expect("valid JSON line")
        .get(key)
        .unwrap_or_else(|| panic!("no {key:?} in {}", String::from_utf8_lossy(line)))
}

/// The same member through serde_json, for the expected values.
fn member_value(line: &[u8], key: &str) -> Value {
    let message: Value = serde_json::from_slice(line).expect("valid JSON line");
    message[key].clone()
}

/// The exact bytes of the `arguments` object of a request line.
fn arguments_bytes(line: &[u8]) -> &[u8] {
    let key = b"\"arguments\":";
    let start = line
        .windows(key.len())
        .position(|w| w == key)
        .expect("request has arguments")
        + key.len();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in line[start..].iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return &line[start..=start + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced arguments")
}

// ---------------------------------------------------------------------------------------
// Encoding.

/// Serializes with the crate's own encoder (`qmp_core::encode`, what the client sends),
/// with serde-json-core and with serde_json, and checks that all three write the same
/// bytes.
fn encode<T: serde::Serialize + ?Sized>(value: &T) -> String {
    let std_text = serde_json::to_string(value).expect("serde_json serializes");
    let mut buffer = vec![0u8; 8192];
    let len = qmp_core::encode::to_slice(value, &mut buffer).expect("qmp-core encodes");
    let crate_text = core::str::from_utf8(&buffer[..len])
        .expect("utf-8")
        .to_owned();
    assert_eq!(
        std_text, crate_text,
        "serde_json and qmp_core::encode disagree"
    );
    let len = serde_json_core::to_slice(value, &mut buffer).expect("serde-json-core serializes");
    let core_text = core::str::from_utf8(&buffer[..len])
        .expect("utf-8")
        .to_owned();
    assert_eq!(
        std_text, core_text,
        "serde_json and serde-json-core disagree"
    );
    std_text
}

/// What the tests need to know of one command instance.
struct Case {
    name: &'static str,
    allow_oob: bool,
    replies_on_success: bool,
    arguments: Option<Value>,
}

fn case<C: qmp_core::commands::Command>(command: &C) -> Case {
    Case {
        name: C::NAME,
        allow_oob: C::ALLOW_OOB,
        replies_on_success: C::REPLIES_ON_SUCCESS,
        arguments: command
            .arguments()
            .map(|arguments| serde_json::from_str(&encode(arguments)).expect("valid JSON")),
    }
}

/// Every QMP command type, each with every optional member set (so that the schema check
/// sees every member name), plus a few variants of the same command.
fn qmp_cases() -> Vec<Case> {
    const CAPS: &[MigrationCapabilityStatus<'static>] = &[
        MigrationCapabilityStatus {
            capability: MigrationCapability::Events,
            state: true,
        },
        MigrationCapabilityStatus {
            capability: MigrationCapability::PostcopyRam,
            state: false,
        },
    ];
    const KEYS: &[KeyValue<'static>] = &[KeyValue::qcode(QKeyCode::Ctrl), KeyValue::number(29)];
    const YANKS: &[YankInstance<'static>] = &[
        YankInstance::BlockNode { node_name: "n0" },
        YankInstance::Chardev { id: "c0" },
        YankInstance::Migration,
    ];
    const DEVICE_PROPERTIES: Properties<'static> = &[
        ("drive", PropertyValue::Str("disk0")),
        ("bootindex", PropertyValue::Int(1)),
        ("share-rw", PropertyValue::Bool(true)),
    ];
    const NETDEV_PROPERTIES: Properties<'static> = &[
        ("ifname", PropertyValue::Str("tap0")),
        ("script", PropertyValue::Str("no")),
        ("vhost", PropertyValue::Bool(true)),
        ("queues", PropertyValue::Uint(2)),
    ];
    const OBJECT_PROPERTIES: Properties<'static> = &[("poll-max-ns", PropertyValue::Uint(0))];
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
    let throttle = serde_json::json!({
        "driver": "throttle", "node-name": "t0", "file": "n0", "throttle-group": "tg0"
    });
    vec![
        case(&QueryStatus),
        case(&Stop),
        case(&Cont),
        case(&SystemReset),
        case(&SystemPowerdown),
        case(&SystemWakeup),
        case(&InjectNmi),
        case(&Quit),
        case(&QueryVersion),
        case(&QueryCommands),
        case(&QueryName),
        case(&QueryKvm),
        case(&HumanMonitorCommand {
            command_line: "info registers",
            cpu_index: Some(0),
        }),
        case(&QueryQmpSchema),
        case(&AddFd {
            fdset_id: Some(1),
            opaque: Some("rw:/dev/null"),
        }),
        case(&RemoveFd {
            fdset_id: 1,
            fd: Some(3),
        }),
        case(&QueryFdsets),
        case(&Getfd { fdname: "tapfd" }),
        case(&Closefd { fdname: "tapfd" }),
        case(&Balloon { value: 1 << 30 }),
        case(&QueryBalloon),
        case(&QueryCpusFast),
        case(&Screendump {
            filename: "/tmp/screen.png",
            device: Some("video0"),
            head: Some(0),
            format: Some(ImageFormat::Png),
        }),
        case(&SendKey {
            keys: KEYS,
            hold_time: Some(50),
        }),
        case(&Yank { instances: YANKS }),
        case(&QueryYank),
        case(&BlockdevAdd::new(file)),
        case(&BlockdevAdd::new(BlockdevOptions::NullCo(
            BlockdevOptionsNull {
                latency_ns: Some(0),
                read_zeroes: Some(true),
                ..BlockdevOptionsNull::new("null0", 1 << 20)
            },
        ))),
        case(&BlockdevAdd::new(BlockdevOptions::NullAio(
            BlockdevOptionsNull::new("null1", 512),
        ))),
        case(&BlockdevAdd::new(BlockdevOptionsRaw {
            offset: Some(512),
            size: Some(1024),
            ..BlockdevOptionsRaw::new("raw0", "file0")
        })),
        case(&BlockdevAdd::new(BlockdevOptionsQcow2 {
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
        })),
        case(&BlockdevAdd::new(BlockdevOptionsQcow2 {
            backing: Some(Some("base0")),
            cache_size: Some(1 << 21),
            ..BlockdevOptionsQcow2::new("qcow1", "file1")
        })),
        case(&BlockdevAdd::with_options(&throttle)),
        case(&BlockdevDel { node_name: "null0" }),
        case(&BlockdevCreate::new(
            "job0",
            BlockdevCreateOptionsFile {
                filename: "/tmp/new.img",
                size: 1 << 20,
                preallocation: Some(PreallocMode::Falloc),
                nocow: Some(false),
                extent_size_hint: Some(1 << 20),
            },
        )),
        case(&BlockdevCreate::new(
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
        )),
        case(&BlockdevMirror {
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
        }),
        case(&BlockdevBackupCommand(BlockdevBackup {
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
        })),
        case(&BlockStream {
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
        }),
        case(&BlockCommit {
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
        }),
        case(&BlockResize {
            device: Some("drive0"),
            node_name: Some("node0"),
            size: 1 << 30,
        }),
        case(&QueryBlock),
        case(&QueryNamedBlockNodes { flat: Some(true) }),
        case(&QueryNamedBlockNodes::default()),
        case(&QueryBlockstats {
            query_nodes: Some(true),
        }),
        case(&JobPause { id: "j" }),
        case(&JobResume { id: "j" }),
        case(&JobCancel { id: "j" }),
        case(&JobComplete { id: "j" }),
        case(&JobFinalize { id: "j" }),
        case(&JobDismiss { id: "j" }),
        case(&QueryJobs),
        case(&QueryBlockJobs),
        case(&BlockJobCancel {
            device: "j",
            force: Some(true),
        }),
        case(&BlockJobComplete { device: "j" }),
        case(&BlockJobPause { device: "j" }),
        case(&BlockJobResume { device: "j" }),
        case(&BlockJobSetSpeed {
            device: "j",
            speed: 0,
        }),
        case(&DeviceAdd {
            driver: "virtio-blk-pci",
            id: Some("disk0"),
            bus: Some("pci.0"),
            properties: DEVICE_PROPERTIES,
        }),
        case(&DeviceDel { id: "disk0" }),
        case(&NetdevAdd {
            properties: NETDEV_PROPERTIES,
            ..NetdevAdd::new("tap", "net0")
        }),
        case(&NetdevAdd::new("user", "net1")),
        case(&NetdevDel { id: "net0" }),
        case(&ObjectAdd {
            properties: OBJECT_PROPERTIES,
            ..ObjectAdd::new("iothread", "io0")
        }),
        case(&ObjectDel { id: "io0" }),
        case(&QomList { path: "/machine" }),
        case(&QomGet {
            path: "/machine",
            property: "type",
        }),
        case(&QomSet {
            path: "/machine/peripheral/net0",
            property: "link_up",
            value: false,
        }),
        case(&QomListTypes {
            implements: Some("device"),
            r#abstract: Some(false),
        }),
        case(&ChardevAdd::new(
            "c0",
            ChardevBackend::Socket(ChardevSocket {
                logfile: Some("/tmp/c0.log"),
                logappend: Some(true),
                tls_creds: Some("tls0"),
                nodelay: Some(true),
                telnet: Some(false),
                websocket: Some(false),
                ..ChardevSocket::server(SocketAddressLegacy::Unix(UnixSocketAddress {
                    path: "/tmp/c0.sock",
                    is_abstract: Some(false),
                    tight: Some(true),
                }))
            }),
        )),
        case(&ChardevAdd::new(
            "c1",
            ChardevBackend::Socket(ChardevSocket {
                reconnect_ms: Some(1000),
                ..ChardevSocket::client(SocketAddressLegacy::Inet(InetSocketAddress {
                    host: "127.0.0.1",
                    port: "4444",
                    ipv4: Some(true),
                    ipv6: Some(false),
                    keep_alive: Some(true),
                }))
            }),
        )),
        case(&ChardevAdd::new(
            "c2",
            ChardevBackend::Socket(ChardevSocket::client(SocketAddressLegacy::Vsock(
                VsockSocketAddress {
                    cid: "3",
                    port: "1234",
                },
            ))),
        )),
        case(&ChardevAdd::new(
            "c3",
            ChardevBackend::File(ChardevFile {
                logfile: None,
                logappend: None,
                input: Some("/tmp/in"),
                out: "/tmp/out",
                append: Some(true),
            }),
        )),
        case(&ChardevAdd::new(
            "c4",
            ChardevBackend::Pty(ChardevCommon::default()),
        )),
        case(&ChardevAdd::new(
            "c5",
            ChardevBackend::Null(ChardevCommon {
                logfile: Some("/tmp/null.log"),
                logappend: Some(false),
            }),
        )),
        case(&ChardevAdd::new(
            "c6",
            ChardevBackend::Ringbuf(ChardevRingbuf {
                size: Some(4096),
                ..ChardevRingbuf::default()
            }),
        )),
        case(&ChardevAdd::with_backend(
            "c7",
            serde_json::json!({"type": "stdio", "data": {"signal": false}}),
        )),
        case(&ChardevRemove { id: "c0" }),
        case(&QueryChardev),
        case(&Migrate {
            resume: Some(false),
            ..Migrate::new("unix:/tmp/migrate.sock")
        }),
        case(&MigrateIncoming {
            exit_on_error: Some(false),
            ..MigrateIncoming::new("tcp:0:4446")
        }),
        case(&MigrateCancel),
        case(&MigratePause),
        case(&MigrateRecover { uri: "tcp:0:4447" }),
        case(&QueryMigrate),
        case(&MigrateSetCapabilities { capabilities: CAPS }),
        case(&QueryMigrateCapabilities),
        case(&MigrateSetParametersCommand(MigrateSetParameters {
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
        })),
        case(&QueryMigrateParameters),
    ]
}

/// Every guest-agent command type, with every optional member set.
fn qga_cases() -> Vec<Case> {
    vec![
        case(&GuestSync { id: 42 }),
        case(&GuestSyncDelimited {
            id: 1_234_567_890_123,
        }),
        case(&GuestPing),
        case(&GuestInfo),
        case(&GuestGetOsinfo),
        case(&GuestGetHostName),
        case(&GuestGetTime),
        case(&GuestSetTime {
            time: Some(1_700_000_000_000_000_000),
        }),
        case(&GuestGetTimezone),
        case(&GuestExecCommand {
            path: "/bin/sh",
            arg: Some(&["-c", "echo hi"]),
            env: Some(&["LANG=C"]),
            input_data: Some("aGVsbG8K"),
            capture_output: Some(GuestExecCaptureOutput::Mode(
                GuestExecCaptureOutputMode::Merged,
            )),
        }),
        case(&GuestExecStatusCommand { pid: 100 }),
        case(&GuestFileOpen {
            path: "/etc/hostname",
            mode: Some("r"),
        }),
        case(&GuestFileClose { handle: 1000 }),
        case(&GuestFileReadCommand {
            handle: 1000,
            count: Some(4096),
        }),
        case(&GuestFileWriteCommand {
            handle: 1000,
            buf_b64: "aGVsbG8K",
            count: Some(6),
        }),
        case(&GuestFileSeekCommand {
            handle: 1000,
            offset: -6,
            whence: GuestFileWhence::Name(QGASeek::End),
        }),
        case(&GuestFileFlush { handle: 1000 }),
        case(&GuestFsfreezeStatusCommand),
        case(&GuestFsfreezeFreeze),
        case(&GuestFsfreezeFreezeList {
            mountpoints: Some(&["/", "/var"]),
        }),
        case(&GuestFsfreezeThaw),
        case(&GuestNetworkGetInterfaces),
        case(&GuestGetUsers),
        case(&GuestShutdown {
            mode: Some(GuestShutdownMode::Reboot),
        }),
        case(&GuestSuspendDisk),
        case(&GuestSuspendRam),
        case(&GuestSuspendHybrid),
    ]
}

// ---------------------------------------------------------------------------------------
// The introspected schema and a validator for values against it.

struct Schema {
    entities: HashMap<String, Value>,
}

fn members_of(entity: &Value) -> Vec<(String, String, bool)> {
    entity["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap().to_owned(),
                        m["type"].as_str().unwrap().to_owned(),
                        m.get("default").is_some(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Schema {
    fn from_return(entities: &Value) -> Schema {
        let entities = entities
            .as_array()
            .expect("schema is an array")
            .iter()
            .map(|entity| (entity["name"].as_str().unwrap().to_owned(), entity.clone()))
            .collect();
        Schema { entities }
    }

    /// The schema on the first line that is a `return` of more than 100 entities.
    fn from_lines(lines: impl IntoIterator<Item = Vec<u8>>) -> Schema {
        for line in lines {
            let Ok(message) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if message["return"]
                .as_array()
                .is_some_and(|entities| entities.len() > 100)
            {
                return Schema::from_return(&message["return"]);
            }
        }
        panic!("no query-qmp-schema return found")
    }

    fn entity(&self, name: &str) -> &Value {
        self.entities
            .get(name)
            .unwrap_or_else(|| panic!("no schema entity {name:?}"))
    }

    fn has(&self, meta_type: &str, name: &str) -> bool {
        self.entities
            .get(name)
            .is_some_and(|entity| entity["meta-type"] == meta_type)
    }

    fn names(&self, meta_type: &str) -> HashSet<String> {
        self.entities
            .values()
            .filter(|entity| entity["meta-type"] == meta_type)
            .map(|entity| entity["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The members of an object type, with those of every variant (name, type,
    /// optional).
    fn members(&self, type_name: &str) -> Vec<(String, String, bool)> {
        let entity = self.entity(type_name);
        let mut members = members_of(entity);
        for variant in entity["variants"].as_array().into_iter().flatten() {
            for (name, ty, _) in self.members(variant["type"].as_str().unwrap()) {
                if !members.iter().any(|(n, _, _)| *n == name) {
                    members.push((name, ty, true));
                }
            }
        }
        members
    }

    fn unwrap_arrays(&self, mut type_name: String) -> String {
        while self.entity(&type_name)["meta-type"] == "array" {
            type_name = self.entity(&type_name)["element-type"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        type_name
    }

    /// Follows `path` (member names; arrays are stepped through) from `type_name`.
    fn resolve(&self, type_name: &str, path: &[&str]) -> String {
        let mut current = self.unwrap_arrays(type_name.to_owned());
        for step in path {
            let found = self
                .members(&current)
                .into_iter()
                .find(|(name, _, _)| name == step)
                .unwrap_or_else(|| panic!("no member {step:?} in {current}"));
            current = self.unwrap_arrays(found.1);
        }
        current
    }

    /// Checks `value` against the type `type_name`.
    fn check(&self, type_name: &str, value: &Value, at: &str) -> Result<(), String> {
        let entity = self.entity(type_name);
        match entity["meta-type"].as_str().unwrap() {
            "builtin" => {
                let ok = match entity["json-type"].as_str().unwrap() {
                    "string" => value.is_string(),
                    "int" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    "value" => true,
                    other => return Err(format!("{at}: unknown json-type {other}")),
                };
                if ok {
                    Ok(())
                } else {
                    Err(format!("{at}: {value} is not a {}", entity["json-type"]))
                }
            }
            "enum" => {
                let values = entity["values"].as_array().unwrap();
                if values.contains(value) {
                    Ok(())
                } else {
                    Err(format!("{at}: {value} is not one of {values:?}"))
                }
            }
            "array" => {
                let element = entity["element-type"].as_str().unwrap();
                let elements = value
                    .as_array()
                    .ok_or_else(|| format!("{at}: {value} is not an array"))?;
                for (i, element_value) in elements.iter().enumerate() {
                    self.check(element, element_value, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            "alternate" => {
                let mut errors = Vec::new();
                for alternative in entity["members"].as_array().unwrap() {
                    match self.check(alternative["type"].as_str().unwrap(), value, at) {
                        Ok(()) => return Ok(()),
                        Err(error) => errors.push(error),
                    }
                }
                Err(format!("{at}: no alternative matches: {errors:?}"))
            }
            "object" => self.check_object(type_name, entity, value, at),
            other => Err(format!("{at}: unexpected meta-type {other}")),
        }
    }

    fn check_object(
        &self,
        type_name: &str,
        entity: &Value,
        value: &Value,
        at: &str,
    ) -> Result<(), String> {
        let object = value
            .as_object()
            .ok_or_else(|| format!("{at}: {value} is not an object"))?;
        let mut members = members_of(entity);
        if let Some(tag) = entity["tag"].as_str() {
            let tag_value = object
                .get(tag)
                .ok_or_else(|| format!("{at}: missing tag {tag}"))?;
            let variant = entity["variants"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["case"] == *tag_value)
                .ok_or_else(|| format!("{at}: no variant {tag_value} in {type_name}"))?;
            let variant_entity = self.entity(variant["type"].as_str().unwrap());
            if variant_entity.get("tag").is_some() {
                return Err(format!("{at}: nested unions are not supported here"));
            }
            members.extend(members_of(variant_entity));
        }
        for (key, member_value) in object {
            let (_, ty, _) = members
                .iter()
                .find(|(name, _, _)| name == key)
                .ok_or_else(|| format!("{at}: unknown member {key:?}"))?;
            self.check(ty, member_value, &format!("{at}.{key}"))?;
        }
        for (name, _, optional) in &members {
            if !optional && !object.contains_key(name) {
                return Err(format!("{at}: required member {name:?} missing"));
            }
        }
        Ok(())
    }

    fn command(&self, name: &str) -> &Value {
        let entity = self.entity(name);
        assert_eq!(entity["meta-type"], "command", "{name} is not a command");
        entity
    }

    fn arg_type(&self, command: &str) -> String {
        self.command(command)["arg-type"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn ret_type(&self, command: &str) -> String {
        self.command(command)["ret-type"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn event_type(&self, event: &str) -> String {
        let entity = self.entity(event);
        assert_eq!(entity["meta-type"], "event", "{event} is not an event");
        entity["arg-type"].as_str().unwrap().to_owned()
    }
}

fn qsd_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::from_lines(lines("07-query-qmp-schema.s2c")))
}

/// The live schema of the installed `qemu-system-x86_64`, if there is one (never under
/// Miri, which cannot start processes: the checks against it are of the schema, not of
/// qmp-core code, and run natively).
fn qsys_schema() -> Option<&'static Schema> {
    static SCHEMA: OnceLock<Option<Schema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let schema = if cfg!(miri) {
                None
            } else {
                fetch_qsys_schema()
            };
            if schema.is_none() {
                eprintln!("qemu-system-x86_64 not available: system-only names not checked");
            }
            schema
        })
        .as_ref()
}

/// Runs `qemu-system-x86_64 -M none` with QMP on stdio and asks for its schema.
fn fetch_qsys_schema() -> Option<Schema> {
    let mut child = Process::new("qemu-system-x86_64")
        .args([
            "-M",
            "none",
            "-nodefaults",
            "-display",
            "none",
            "-qmp",
            "stdio",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let stdout = child.stdout.take()?;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let requests =
        b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-qmp-schema\",\"id\":\"schema\"}\n";
    let mut schema = None;
    if stdin.write_all(requests).is_ok() {
        while let Ok(line) = receiver.recv_timeout(Duration::from_secs(30)) {
            if contains(&line, b"\"id\": \"schema\"") {
                schema = Some(Schema::from_lines([line]));
                break;
            }
        }
    }
    let _ = stdin.write_all(b"{\"execute\":\"quit\"}\n");
    drop(stdin);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    schema
}

/// The commands this crate types that qemu-storage-daemon does not have (system
/// emulator only). Listing them keeps a misspelt qsd command from passing as system-only.
const QSYS_ONLY: &[&str] = &[
    "query-status",
    "stop",
    "cont",
    "system_reset",
    "system_powerdown",
    "system_wakeup",
    "inject-nmi",
    "query-name",
    "query-kvm",
    "human-monitor-command",
    "add-fd",
    "remove-fd",
    "query-fdsets",
    "getfd",
    "closefd",
    "balloon",
    "query-balloon",
    "query-cpus-fast",
    "screendump",
    "send-key",
    "yank",
    "query-yank",
    "device_add",
    "device_del",
    "netdev_add",
    "netdev_del",
    "migrate",
    "migrate-incoming",
    "migrate_cancel",
    "migrate-pause",
    "migrate-recover",
    "query-migrate",
    "migrate-set-capabilities",
    "query-migrate-capabilities",
    "migrate-set-parameters",
    "query-migrate-parameters",
];

/// Validates every case whose command the schema has; returns how many it checked.
fn check_cases_against(schema: &Schema, cases: &[Case], label: &str) -> usize {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in cases {
        if !schema.has("command", case.name) {
            continue;
        }
        checked += 1;
        let schema_oob = schema.command(case.name)["allow-oob"]
            .as_bool()
            .unwrap_or(false);
        if schema_oob != case.allow_oob {
            failures.push(format!(
                "{label} {}: ALLOW_OOB {} but the schema says {schema_oob}",
                case.name, case.allow_oob
            ));
        }
        if !case.replies_on_success {
            failures.push(format!("{label} {}: QMP commands always reply", case.name));
        }
        let mut arguments = case
            .arguments
            .clone()
            .unwrap_or(Value::Object(Default::default()));
        if case.name == "device_add" {
            // `device_add` is `'gen': false`: the schema lists driver, bus and id, and
            // the device's own properties ride along unchecked.
            for property in ["drive", "bootindex", "share-rw"] {
                arguments.as_object_mut().unwrap().remove(property);
            }
        }
        if let Err(error) = schema.check(&schema.arg_type(case.name), &arguments, case.name) {
            failures.push(format!("{label}: {error}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    checked
}

// ---------------------------------------------------------------------------------------
// Command names and arguments against the schemas.

#[test]
#[cfg_attr(
    miri,
    ignore = "checks the 117 KB qsd schema (test code, hours under Miri); the encoding it \
              exercises runs under Miri in every_case_encodes_alike_in_all_three_encoders"
)]
fn every_command_name_exists_in_qsd_unless_system_only() {
    let commands = qsd_schema().names("command");
    assert_eq!(commands.len(), 76, "vector 07 lists qsd's 76 commands");
    let mut seen = HashSet::new();
    for case in qmp_cases() {
        seen.insert(case.name);
        let expected_in_qsd = !QSYS_ONLY.contains(&case.name);
        assert_eq!(
            commands.contains(case.name),
            expected_in_qsd,
            "{}: in qsd's schema = {}, expected {expected_in_qsd}",
            case.name,
            commands.contains(case.name),
        );
    }
    for name in QSYS_ONLY {
        assert!(seen.contains(name), "{name} is listed but has no case");
    }
    assert!(seen.len() >= 70, "only {} QMP commands typed", seen.len());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checks the 117 KB qsd schema (test code, hours under Miri); the encoding it \
              exercises runs under Miri in every_case_encodes_alike_in_all_three_encoders"
)]
fn arguments_match_the_qsd_schema() {
    let checked = check_cases_against(qsd_schema(), &qmp_cases(), "qsd");
    assert!(checked >= 40, "only {checked} cases checked against qsd");
}

#[test]
fn arguments_match_the_live_qemu_system_schema() {
    let Some(schema) = qsys_schema() else { return };
    let cases = qmp_cases();
    for case in &cases {
        assert!(
            schema.has("command", case.name),
            "{} is not a qemu-system-x86_64 command",
            case.name
        );
    }
    assert_eq!(check_cases_against(schema, &cases, "qsys"), cases.len());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checks the 117 KB qsd schema (test code, hours under Miri); the encoding it \
              exercises runs under Miri in every_case_encodes_alike_in_all_three_encoders"
)]
fn argument_enums_serialize_to_schema_values() {
    let schema = qsd_schema();
    argument_enums(&mut |command: &str, path: &[&str], encoded: String| {
        let ty = schema.resolve(&schema.arg_type(command), path);
        let value: Value = serde_json::from_str(&encoded).unwrap();
        schema
            .check(&ty, &value, &format!("{command}.{}", path.join(".")))
            .unwrap();
    });
}

/// Every command and every enum argument value encodes, and qmp-core's encoder,
/// serde-json-core and serde_json write the same bytes (what the schema tests above check
/// against the schema; this part also runs under Miri, where they are ignored).
#[test]
fn every_case_encodes_alike_in_all_three_encoders() {
    let cases: Vec<Case> = qmp_cases().into_iter().chain(qga_cases()).collect();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    for case in &cases {
        if let Some(arguments) = &case.arguments {
            assert!(arguments.is_object(), "{}: {arguments}", case.name);
        }
    }
    let mut count = 0;
    argument_enums(&mut |_: &str, _: &[&str], encoded: String| {
        assert!(encoded.starts_with('"'), "{encoded}");
        count += 1;
    });
    assert_eq!(count, 21);
}

/// Calls `check(command, path, encoded)` for every value of every enum argument type.
fn argument_enums(check: &mut dyn FnMut(&str, &[&str], String)) {
    for sync in [
        MirrorSyncMode::Top,
        MirrorSyncMode::Full,
        MirrorSyncMode::None,
        MirrorSyncMode::Incremental,
        MirrorSyncMode::Bitmap,
    ] {
        check("blockdev-mirror", &["sync"], encode(&sync));
    }
    for on_error in [
        BlockdevOnError::Report,
        BlockdevOnError::Ignore,
        BlockdevOnError::Enospc,
        BlockdevOnError::Stop,
        BlockdevOnError::Auto,
    ] {
        check("block-stream", &["on-error"], encode(&on_error));
    }
    for mode in [MirrorCopyMode::Background, MirrorCopyMode::WriteBlocking] {
        check("blockdev-mirror", &["copy-mode"], encode(&mode));
    }
    for discard in [
        BlockdevDiscardOptions::Ignore,
        BlockdevDiscardOptions::Unmap,
    ] {
        check("blockdev-add", &["discard"], encode(&discard));
    }
    for zeroes in [
        BlockdevDetectZeroesOptions::Off,
        BlockdevDetectZeroesOptions::On,
        BlockdevDetectZeroesOptions::Unmap,
    ] {
        check("blockdev-add", &["detect-zeroes"], encode(&zeroes));
    }
    for prealloc in [
        PreallocMode::Off,
        PreallocMode::Metadata,
        PreallocMode::Falloc,
        PreallocMode::Full,
    ] {
        check(
            "blockdev-create",
            &["options", "preallocation"],
            encode(&prealloc),
        );
    }
}

#[test]
fn guest_agent_names_and_success_responses_match_qemu_ga() {
    // Vector 40's guest-info lists every command qemu-ga 10.0.2 has, with
    // `success-response`.
    let line = line_with("40-qga-session.s2c", "supported_commands");
    let info = member_value(&line, "return");
    let known: HashMap<&str, bool> = info["supported_commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["success-response"].as_bool().unwrap(),
            )
        })
        .collect();
    let cases = qga_cases();
    assert!(cases.len() >= 25);
    for case in &cases {
        let success_response = known
            .get(case.name)
            .unwrap_or_else(|| panic!("{} is not a qemu-ga command", case.name));
        assert_eq!(
            *success_response, case.replies_on_success,
            "{}: REPLIES_ON_SUCCESS",
            case.name
        );
        assert!(!case.allow_oob, "{}: qemu-ga has no out-of-band", case.name);
    }
}

#[test]
fn guest_agent_arguments_are_as_qemu_ga_expects() {
    // qemu-ga has no introspection: these are its QAPI definitions
    // (qga/qapi-schema.json), member by member.
    let expected: &[(&str, &str)] = &[
        ("guest-sync", r#"{"id":42}"#),
        ("guest-sync-delimited", r#"{"id":1234567890123}"#),
        ("guest-set-time", r#"{"time":1700000000000000000}"#),
        (
            "guest-exec",
            r#"{"path":"/bin/sh","arg":["-c","echo hi"],"env":["LANG=C"],"input-data":"aGVsbG8K","capture-output":"merged"}"#,
        ),
        ("guest-exec-status", r#"{"pid":100}"#),
        ("guest-file-open", r#"{"path":"/etc/hostname","mode":"r"}"#),
        ("guest-file-close", r#"{"handle":1000}"#),
        ("guest-file-read", r#"{"handle":1000,"count":4096}"#),
        (
            "guest-file-write",
            r#"{"handle":1000,"buf-b64":"aGVsbG8K","count":6}"#,
        ),
        (
            "guest-file-seek",
            r#"{"handle":1000,"offset":-6,"whence":"end"}"#,
        ),
        ("guest-file-flush", r#"{"handle":1000}"#),
        (
            "guest-fsfreeze-freeze-list",
            r#"{"mountpoints":["/","/var"]}"#,
        ),
        ("guest-shutdown", r#"{"mode":"reboot"}"#),
    ];
    let cases = qga_cases();
    for (name, json) in expected {
        let case = cases.iter().find(|c| c.name == *name).unwrap();
        let expected: Value = serde_json::from_str(json).unwrap();
        assert_eq!(case.arguments.as_ref(), Some(&expected), "{name}");
    }
    for case in &cases {
        if !expected.iter().any(|(name, _)| *name == case.name) {
            assert!(case.arguments.is_none(), "{} takes no arguments", case.name);
        }
    }
    assert_eq!(
        encode(GuestExecCommand::new("/bin/true", &[]).arguments().unwrap()),
        r#"{"path":"/bin/true","arg":[],"capture-output":true}"#
    );
    assert!(GuestShutdown::default().arguments().is_none());
}

// ---------------------------------------------------------------------------------------
// Encodings against the captured requests.

/// Checks that `command`'s arguments encode to the bytes of the request with `id` in
/// vector `name`.
fn assert_encodes_like<C: qmp_core::commands::Command>(name: &str, id: &str, command: &C) {
    let line = line_with(name, &format!("\"id\":\"{id}\""));
    assert!(
        contains(&line, format!("\"execute\":\"{}\"", C::NAME).as_bytes()),
        "{name} {id} is not {}",
        C::NAME
    );
    let expected = core::str::from_utf8(arguments_bytes(&line)).unwrap();
    let arguments = command.arguments().expect("command has arguments");
    assert_eq!(encode(arguments), expected, "{name} {id}");
}

#[test]
fn requests_encode_like_the_captured_ones() {
    let v14 = "14-blockdev-add-null-co.c2s";
    assert_encodes_like(
        v14,
        "add",
        &BlockdevAdd::new(BlockdevOptions::NullCo(BlockdevOptionsNull::new(
            "null0", 1_048_576,
        ))),
    );
    assert_encodes_like(
        v14,
        "add-again",
        &BlockdevAdd::new(BlockdevOptions::NullCo(BlockdevOptionsNull {
            node_name: Some("null0"),
            ..Default::default()
        })),
    );
    assert_encodes_like(v14, "q", &QueryNamedBlockNodes { flat: Some(true) });
    assert_encodes_like(v14, "del", &BlockdevDel { node_name: "null0" });

    let v15 = "15-job-blockdev-create.c2s";
    assert_encodes_like(
        v15,
        "create",
        &BlockdevCreate::new(
            "job0",
            BlockdevCreateOptionsFile {
                filename: "/tmp/qmpvec/create-test.img",
                size: 1_048_576,
                ..Default::default()
            },
        ),
    );
    assert_encodes_like(v15, "dismiss", &JobDismiss { id: "job0" });

    let v16 = "16-job-mirror.c2s";
    assert_encodes_like(
        v16,
        "a1",
        &BlockdevAdd::new(BlockdevOptions::NullCo(BlockdevOptionsNull::new(
            "src", 4_194_304,
        ))),
    );
    assert_encodes_like(
        v16,
        "a2",
        &BlockdevAdd::new(BlockdevOptions::NullCo(BlockdevOptionsNull::new(
            "dst", 4_194_304,
        ))),
    );
    assert_encodes_like(
        v16,
        "mirror",
        &BlockdevMirror::new("m0", "src", "dst", MirrorSyncMode::Full),
    );
    assert_encodes_like(v16, "complete", &BlockJobComplete { device: "m0" });

    let v19 = "19-unicode-escapes.c2s";
    assert_encodes_like(
        v19,
        "create",
        &BlockdevCreate::new(
            "j",
            BlockdevCreateOptionsFile {
                filename: "/tmp/qmpvec/uni/f\u{e9} \u{6f22} \u{1f600} 'sq' \"dq\" back\\slash.img",
                size: 65536,
                ..Default::default()
            },
        ),
    );
    assert_encodes_like(v19, "dismiss", &JobDismiss { id: "j" });
    assert_encodes_like(v19, "del", &BlockdevDel { node_name: "uni0" });

    // Vector 40's first request has no QMP-style id.
    let v40 = lines("40-qga-session.c2s");
    let delimited = v40
        .iter()
        .find(|l| contains(l, b"guest-sync-delimited"))
        .unwrap();
    let sync = GuestSyncDelimited {
        id: 1_234_567_890_123,
    };
    assert_eq!(
        encode(sync.arguments().unwrap()).as_bytes(),
        arguments_bytes(delimited)
    );
    assert_encodes_like("40-qga-session.c2s", "x", &GuestSync { id: 42 });
}

#[test]
fn commands_without_arguments_send_none_like_the_captures() {
    // Vector 30 sends its commands without an `arguments` member.
    for line in lines("30-qsys-stop-cont-reset-quit.c2s") {
        assert!(!contains(&line, b"arguments"));
    }
    assert!(QueryStatus.arguments().is_none());
    assert!(Stop.arguments().is_none());
    assert!(Cont.arguments().is_none());
    assert!(SystemReset.arguments().is_none());
    assert!(Quit.arguments().is_none());
    assert!(QueryYank.arguments().is_none());
    assert!(MigratePause.arguments().is_none());
    assert!(QueryNamedBlockNodes::default().arguments().is_none());
    assert!(QueryBlockstats::default().arguments().is_none());
    // Vector 31 runs query-yank and migrate-pause out of band.
    const {
        assert!(QueryYank::ALLOW_OOB && MigratePause::ALLOW_OOB && MigrateRecover::ALLOW_OOB);
        assert!(Yank::ALLOW_OOB && !QueryStatus::ALLOW_OOB);
    }
}

#[test]
fn free_form_members_are_typed_and_escaped() {
    const PROPERTIES: Properties<'static> = &[
        ("drive", PropertyValue::Str("disk0")),
        ("bootindex", PropertyValue::Int(-1)),
        ("num-queues", PropertyValue::Uint(4)),
        ("share-rw", PropertyValue::Bool(false)),
    ];
    let add = DeviceAdd {
        bus: Some("pcie.1"),
        properties: PROPERTIES,
        ..DeviceAdd::new("virtio-blk-pci", "vd0")
    };
    assert_eq!(
        encode(&add),
        r#"{"driver":"virtio-blk-pci","id":"vd0","bus":"pcie.1","drive":"disk0","bootindex":-1,"num-queues":4,"share-rw":false}"#
    );
    assert_eq!(
        encode(&NetdevAdd::new("user", "n0")),
        r#"{"type":"user","id":"n0"}"#
    );
    // Strings are always escaped: no argument can inject JSON.
    let sneaky = DeviceAdd::new("x\",\"evil\":\"1", "id\\");
    assert_eq!(
        encode(&sneaky),
        r#"{"driver":"x\",\"evil\":\"1","id":"id\\"}"#
    );
    assert_eq!(
        encode(&ChardevAdd::new(
            "p0",
            ChardevBackend::Pty(ChardevCommon::default())
        )),
        r#"{"id":"p0","backend":{"type":"pty","data":{}}}"#
    );
    assert_eq!(
        encode(&SendKey {
            keys: &[KeyValue::qcode(QKeyCode::Ctrl), KeyValue::number(56)],
            hold_time: None
        }),
        r#"{"keys":[{"type":"qcode","data":"ctrl"},{"type":"number","data":56}]}"#
    );
    assert_eq!(
        encode(&Yank {
            instances: &[
                YankInstance::Migration,
                YankInstance::BlockNode { node_name: "n" }
            ]
        }),
        r#"{"instances":[{"type":"migration"},{"type":"block-node","node-name":"n"}]}"#
    );
    assert_eq!(
        encode(&QomSet {
            path: "/machine",
            property: "p",
            value: 5
        }),
        r#"{"path":"/machine","property":"p","value":5}"#
    );
    assert_eq!(
        encode(
            BlockdevAdd::new(BlockdevOptionsQcow2 {
                backing: Some(None),
                ..BlockdevOptionsQcow2::new("q", "f")
            })
            .arguments()
            .unwrap()
        ),
        r#"{"driver":"qcow2","node-name":"q","file":"f","backing":null}"#
    );
}

// ---------------------------------------------------------------------------------------
// Response and event field names against the schemas.

/// Records the field names a derived `Deserialize` asks for, without decoding anything.
struct FieldRecorder<'r>(&'r mut Vec<&'static str>);

#[derive(Debug)]
struct Stopped;

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stopped")
    }
}

impl core::error::Error for Stopped {}

impl serde::de::Error for Stopped {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stopped
    }
}

impl<'de> serde::Deserializer<'de> for FieldRecorder<'_> {
    type Error = Stopped;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stopped> {
        Err(Stopped)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stopped> {
        self.0.extend_from_slice(fields);
        Err(Stopped)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

/// The wire names of `T`'s fields, as its derived `Deserialize` knows them.
fn fields_of<T: serde::Deserialize<'static>>() -> Vec<&'static str> {
    let mut fields = Vec::new();
    let _ = T::deserialize(FieldRecorder(&mut fields));
    assert!(
        !fields.is_empty(),
        "{} has no fields",
        core::any::type_name::<T>()
    );
    fields
}

/// Asserts that every field of `T` is a member of the schema type `type_name`.
fn assert_fields<T: serde::Deserialize<'static>>(schema: &Schema, type_name: &str) {
    let members = schema.members(type_name);
    for field in fields_of::<T>() {
        assert!(
            members.iter().any(|(name, _, _)| name == field),
            "{}: {field:?} is not a member of {type_name} ({:?})",
            core::any::type_name::<T>(),
            members.iter().map(|m| &m.0).collect::<Vec<_>>()
        );
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checks the 117 KB qsd schema (test code, hours under Miri); the encoding it \
              exercises runs under Miri in every_case_encodes_alike_in_all_three_encoders"
)]
fn response_fields_exist_in_the_qsd_schema() {
    let s = qsd_schema();
    let ret = |command: &str, path: &[&str]| s.resolve(&s.ret_type(command), path);
    // CommandInfo is generated (checked member by member by conformance_qapi).
    // BlockInfo, BlockDeviceInfo, ImageInfo, BlockdevCacheInfo, BlockStats and
    // BlockDeviceStats are generated (checked member by member by conformance_qapi).
    // JobInfo and BlockJobInfo are generated (checked member by member by conformance_qapi).
    // ChardevInfo and ChardevReturn are generated (checked by conformance_qapi).
    // ObjectTypeInfo is the generated type (checked member by member by conformance_qapi).
    // The members the hand-decoded types read.
    let version = ret("query-version", &[]);
    assert_eq!(s.resolve(&version, &["qemu", "major"]), "int");
    assert_eq!(s.resolve(&version, &["package"]), "str");
    let property = ret("qom-list", &[]);
    for member in ["name", "type", "description", "default-value"] {
        s.resolve(&property, &[member]);
    }
    assert_eq!(ret("qom-get", &[]), "any");
    let schema_info = ret("query-qmp-schema", &[]);
    for member in ["name", "meta-type"] {
        s.resolve(&schema_info, &[member]);
    }
}

#[test]
fn response_fields_exist_in_the_live_qemu_system_schema() {
    let Some(s) = qsys_schema() else { return };
    let ret = |command: &str, path: &[&str]| s.resolve(&s.ret_type(command), path);
    // StatusInfo is the generated type: conformance_qapi checks every generated type
    // against the live schemas, member by member.
    // NameInfo, KvmInfo, AddfdInfo, FdsetFdInfo, BalloonInfo, CpuInfoFast and
    // CpuInstanceProperties are generated (checked member by member by conformance_qapi).
    assert_fields::<YankInstanceInfo<'static>>(s, &ret("query-yank", &[]));
    // MigrationInfo, MigrationStats, XBZRLECacheStats, MigrationCapabilityStatus and
    // MigrationParameters are generated (checked member by member by conformance_qapi).
    s.resolve(&ret("query-fdsets", &[]), &["fdset-id"]);
    assert_eq!(ret("human-monitor-command", &[]), "str");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checks the 117 KB qsd schema (test code, hours under Miri); the encoding it \
              exercises runs under Miri in every_case_encodes_alike_in_all_three_encoders"
)]
fn event_names_and_fields_exist_in_the_schemas() {
    let qsd = qsd_schema();
    let qsys = qsys_schema();
    let qsd_events = qsd.names("event");
    assert_eq!(qsd_events.len(), 13, "vector 07 has qsd's 13 events");
    for name in &qsd_events {
        assert!(
            DecodedEvent::KNOWN_NAMES.contains(&name.as_str()),
            "qsd event {name} is not typed"
        );
    }
    assert!(DecodedEvent::KNOWN_NAMES.len() >= 40);
    let unique: HashSet<&str> = DecodedEvent::KNOWN_NAMES.iter().copied().collect();
    assert_eq!(
        unique.len(),
        DecodedEvent::KNOWN_NAMES.len(),
        "duplicate names"
    );
    let schema_of = |event: &str| -> Option<&Schema> {
        if qsd_events.contains(event) {
            Some(qsd)
        } else {
            qsys
        }
    };
    for name in DecodedEvent::KNOWN_NAMES {
        if let Some(schema) = schema_of(name) {
            assert!(
                schema.has("event", name) || !qsd_events.contains(*name),
                "{name} is not an event"
            );
        }
    }
    // The generated events (one per schema event) carry exactly the schema's members,
    // with the same optionality; `conformance_qapi` checks their types against live
    // servers.
    for event in qmp_core::qapi::qmp::info::EVENTS {
        assert!(
            DecodedEvent::KNOWN_NAMES.contains(&event.name),
            "{}",
            event.name
        );
        let Some(schema) = schema_of(event.name) else {
            continue;
        };
        if !schema.has("event", event.name) {
            assert!(
                event.cond.is_some(),
                "{} is not live and has no condition",
                event.name
            );
            continue;
        }
        let live = schema.members(&schema.event_type(event.name));
        let ours: Vec<(String, bool)> = event
            .members
            .iter()
            .map(|m| (m.name.to_string(), m.optional))
            .collect();
        let live: Vec<(String, bool)> = live.into_iter().map(|(n, _, o)| (n, o)).collect();
        if event.data_type.is_none() {
            assert_eq!(ours, live, "{}", event.name);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Decoding captured replies and events.

/// Decodes the event on `line` the way a client would: name and `data` borrowed from it.
fn decode_event(line: &[u8]) -> DecodedEvent<'_> {
    let message = RawJson::parse(line).unwrap();
    let name = message.get("event").unwrap().as_json_str().unwrap();
    DecodedEvent::decode(name.raw(), message.get("data"))
}

#[test]
fn query_version_reply_decodes() {
    let replies: Vec<Vec<u8>> = lines("05-query-version.s2c")
        .into_iter()
        .filter(|l| contains(l, b"\"return\": {\"qemu\""))
        .collect();
    assert_eq!(replies.len(), 3);
    for line in replies {
        let info = QueryVersion::decode_response(member(&line, "return")).unwrap();
        let version = (info.qemu.major, info.qemu.minor, info.qemu.micro);
        assert_eq!(version, (10, 0, 2));
        assert_eq!(info.package, "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1");
    }
}

#[test]
fn query_commands_reply_decodes_lazily() {
    let line = line_with("06-query-commands.s2c", "\"id\": \"qc\"");
    let commands = QueryCommands::decode_response(member(&line, "return")).unwrap();
    assert_eq!(commands.len(), 76);
    let names: Vec<String> = commands
        .iter()
        .map(|c| c.unwrap().name.to_string())
        .collect();
    let expected: Vec<String> = member_value(&line, "return")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, expected);
    assert!(names.iter().any(|n| n == "blockdev-add"));
}

#[test]
fn query_qmp_schema_reply_decodes() {
    let mut line = lines("07-query-qmp-schema.s2c")
        .into_iter()
        .find(|l| l.len() > 100_000)
        .unwrap();
    if cfg!(miri) {
        // Miri would take hours over 117 KB: the first entities, about 10 KB, decode, and
        // the comparisons with the whole schema are left to the native run.
        line = schema_prefix(&line, 10_000);
    }
    let entities = QueryQmpSchema::decode_response(member(&line, "return")).unwrap();
    let mut commands = HashSet::new();
    let mut count = 0;
    for entity in entities.iter() {
        let entity = entity.unwrap();
        count += 1;
        if entity.meta_type == "command" {
            commands.insert(entity.name.to_string());
            assert!(entity.arg_type().is_some() && entity.ret_type().is_some());
            assert!(!entity.allow_oob(), "qsd has no OOB command");
        }
        if entity.name == "query-version" && !cfg!(miri) {
            assert_eq!(entity.meta_type, "command");
            assert_eq!(
                entity.ret_type().unwrap(),
                qsd_schema().ret_type("query-version").as_str()
            );
        }
        if entity.meta_type == "array" {
            assert!(entity.element_type().is_some());
        }
        if entity.name == "blockdev-reopen" {
            let features: Vec<String> = entity
                .features()
                .map(|f| f.iter().map(|f| f.unwrap().to_string()).collect())
                .unwrap_or_default();
            assert!(features.is_empty() || features.iter().all(|f| !f.is_empty()));
        }
    }
    if cfg!(miri) {
        assert!(count >= 20, "only {count} entities in the prefix");
        assert!(!commands.is_empty());
    } else {
        assert_eq!(count, qsd_schema().entities.len());
        assert_eq!(commands, qsd_schema().names("command"));
    }
}

/// The schema reply `line` (`{"return": [...], ...}`) with its array cut after the first
/// entity that ends past byte `min_len`.
fn schema_prefix(line: &[u8], min_len: usize) -> Vec<u8> {
    let open = line.iter().position(|&b| b == b'[').expect("an array");
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in line.iter().enumerate().skip(open) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth -= 1,
            b',' if depth == 1 && i > min_len => {
                return [&line[..i], &b"], \"id\": \"schema\"}"[..]].concat();
            }
            _ => {}
        }
    }
    line.to_vec()
}

#[test]
fn query_named_block_nodes_reply_decodes_with_escaped_strings() {
    let line = line_with("14-blockdev-add-null-co.s2c", "\"id\": \"q\"");
    let nodes = QueryNamedBlockNodes::decode_response(member(&line, "return")).unwrap();
    assert_eq!(nodes.len(), 1);
    let node = nodes.iter().next().unwrap().unwrap();
    assert_eq!(node.node_name.unwrap(), "null0");
    assert_eq!(node.drv, "null-co");
    assert!(!node.ro && !node.encrypted);
    assert_eq!(node.active, Some(true));
    assert_eq!(node.detect_zeroes, "off");
    assert_eq!(node.backing_file_depth, 0);
    assert_eq!((node.bps, node.iops, node.write_threshold), (0, 0, 0));
    assert_eq!(node.image.virtual_size, 1_048_576);
    assert_eq!(node.image.actual_size, Some(0));
    assert_eq!(node.image.format, "null-co");
    assert!(node.cache.writeback && !node.cache.direct && !node.cache.no_flush);
    // Strings come back still escaped, and compare unescaped.
    assert_eq!(
        node.file.raw(),
        r#"json:{\"driver\": \"null-co\", \"size\": 1048576}"#
    );
    assert_eq!(node.file, r#"json:{"driver": "null-co", "size": 1048576}"#);

    let line = line_with("19-unicode-escapes.s2c", "\"id\": \"q\"");
    let nodes = QueryNamedBlockNodes::decode_response(member(&line, "return")).unwrap();
    let node = nodes.iter().next().unwrap().unwrap();
    assert_eq!(node.node_name.unwrap(), "uni0");
    let expected = "/tmp/qmpvec/uni/f\u{e9} \u{6f22} \u{1f600} 'sq' \"dq\" back\\slash.img";
    assert_eq!(node.file, expected);
    assert!(node.file.raw().contains(r"\u00E9"));
    let mut buffer = [0u8; 128];
    assert_eq!(
        node.image.filename.unescape_into(&mut buffer).unwrap(),
        expected
    );
}

#[test]
fn job_replies_and_events_decode() {
    let v15 = "15-job-blockdev-create.s2c";
    let line = line_with(v15, "\"id\": \"jobs\"");
    let jobs = QueryJobs::decode_response(member(&line, "return")).unwrap();
    let job = jobs.iter().next().unwrap().unwrap();
    assert_eq!(job.id, "job0");
    assert_eq!(job.r#type, "create");
    assert_eq!(job.status, "concluded");
    assert_eq!((job.current_progress, job.total_progress), (1, 1));
    assert_eq!(job.error, None);
    let dismissed = line_with(v15, "\"id\": \"dismiss\"");
    assert_eq!(
        JobDismiss::decode_response(member(&dismissed, "return")),
        Ok(Empty)
    );
    let created = line_with(v15, "\"id\": \"create\"");
    assert_eq!(
        BlockdevCreate::<BlockdevCreateOptions<'_>>::decode_response(member(&created, "return")),
        Ok(Empty)
    );

    let statuses: Vec<String> = lines(v15)
        .iter()
        .filter(|l| contains(l, b"\"event\""))
        .map(|l| match decode_event(l) {
            DecodedEvent::JobStatusChange(change) => {
                assert_eq!(change.id, "job0");
                change.status.to_string()
            }
            other => panic!("unexpected {other:?}"),
        })
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
        ]
    );

    let v16 = "16-job-mirror.s2c";
    let line = line_with(v16, "\"id\": \"qbj\"");
    let jobs = QueryBlockJobs::decode_response(member(&line, "return")).unwrap();
    let job = jobs.iter().next().unwrap().unwrap();
    assert_eq!(job.device, "m0");
    assert_eq!(job.r#type.tag(), "mirror");
    assert_eq!(job.status, "ready");
    assert_eq!(job.io_status, "ok");
    assert!(job.ready && !job.busy && !job.paused && job.auto_finalize && job.auto_dismiss);
    assert_eq!((job.len, job.offset, job.speed), (4_194_304, 4_194_304, 0));
    let BlockJobInfoBranch::Mirror(mirror) = job.r#type else {
        panic!("decoded {:?}", job.r#type);
    };
    assert_eq!(mirror.actively_synced, Some(false));

    let ready = line_with(v16, "BLOCK_JOB_READY");
    let DecodedEvent::BlockJobReady(ready) = decode_event(&ready) else {
        panic!("not BLOCK_JOB_READY")
    };
    assert_eq!(
        (ready.device.raw(), ready.r#type.as_str()),
        ("m0", "mirror")
    );
    assert_eq!(
        (ready.len, ready.offset, ready.speed),
        (4_194_304, 4_194_304, 0)
    );

    let line = line_with(v16, "BLOCK_JOB_COMPLETED");
    let data = Some(member(&line, "data"));
    let completed = BlockJobCompletedEvent::from_event("BLOCK_JOB_COMPLETED", data)
        .unwrap()
        .unwrap();
    assert_eq!(completed.device, "m0");
    assert_eq!(completed.error, None);
    // Asking for another type passes.
    assert!(BlockJobReadyEvent::from_event("BLOCK_JOB_COMPLETED", data).is_none());
    assert!(JobStatusChangeEvent::from_event("BLOCK_JOB_COMPLETED", data).is_none());
}

#[test]
fn run_state_replies_and_events_decode() {
    let v30 = "30-qsys-stop-cont-reset-quit.s2c";
    let line = line_with(v30, "\"id\": \"st\"");
    let status = QueryStatus::decode_response(member(&line, "return")).unwrap();
    assert!(status.running);
    assert_eq!(status.status, "running");
    for id in ["stop", "stop2", "cont", "reset", "quit"] {
        let line = line_with(v30, &format!("\"id\": \"{id}\""));
        assert_eq!(Stop::decode_response(member(&line, "return")), Ok(Empty));
    }
    let stop = line_with(v30, "\"event\": \"STOP\"");
    assert_eq!(decode_event(&stop), DecodedEvent::Stop(StopEvent));
    assert_eq!(decode_event(&stop).name(), "STOP");
    let resume = line_with(v30, "\"event\": \"RESUME\"");
    assert_eq!(decode_event(&resume), DecodedEvent::Resume(ResumeEvent));
    let line = line_with(v30, "\"event\": \"RESET\"");
    let reset = ResetEvent::decode(Some(member(&line, "data"))).unwrap();
    assert!(!reset.guest);
    assert_eq!(reset.reason.as_str(), "host-qmp-system-reset");
    let line = line_with(v30, "\"event\": \"SHUTDOWN\"");
    match decode_event(&line) {
        DecodedEvent::Shutdown(shutdown) => {
            assert!(!shutdown.guest);
            assert_eq!(shutdown.reason.as_str(), "host-qmp-quit");
        }
        other => panic!("unexpected {other:?}"),
    }

    let v31 = "31-qsys-oob.s2c";
    let line = line_with(v31, "\"id\": \"y1\"");
    let yank = QueryYank::decode_response(member(&line, "return")).unwrap();
    let instance = yank.iter().next().unwrap().unwrap();
    assert_eq!(instance.instance_type, "chardev");
    assert_eq!(instance.id.unwrap(), "c0");
    assert_eq!(instance.node_name, None);
    let line = line_with(v31, "\"id\": 3}");
    let status = QueryStatus::decode_response(member(&line, "return")).unwrap();
    assert!(!status.running);
    assert_eq!(status.status, "prelaunch");
}

#[test]
fn guest_agent_replies_decode() {
    let v40 = "40-qga-session.s2c";
    let line = line_with(v40, "1234567890123");
    assert_eq!(
        GuestSyncDelimited::decode_response(member(&line, "return")),
        Ok(1_234_567_890_123)
    );
    let line = line_with(v40, "\"id\": \"x\"");
    assert_eq!(GuestSync::decode_response(member(&line, "return")), Ok(42));
    let line = line_with(v40, "{\"return\": {}}");
    assert_eq!(
        GuestPing::decode_response(member(&line, "return")),
        Ok(Empty)
    );

    let line = line_with(v40, "supported_commands");
    let info = GuestInfo::decode_response(member(&line, "return")).unwrap();
    assert_eq!(info.version, "10.0.2");
    let expected = member_value(&line, "return")["supported_commands"].clone();
    let expected = expected.as_array().unwrap();
    assert_eq!(info.supported_commands.len(), expected.len());
    for (decoded, expected) in info.supported_commands.iter().zip(expected) {
        let decoded = decoded.unwrap();
        assert_eq!(decoded.name, expected["name"].as_str().unwrap());
        assert_eq!(decoded.enabled, expected["enabled"].as_bool().unwrap());
        assert_eq!(
            decoded.success_response,
            expected["success-response"].as_bool().unwrap()
        );
    }
}

/// A value written by hand from the QAPI definitions.
fn raw(json: &str) -> RawJson<'_> {
    RawJson::parse(json.as_bytes()).unwrap()
}

#[test]
fn hand_written_replies_decode() {
    // Shapes from the QAPI definitions, for replies the vectors do not hold.
    let status = GuestExecStatusCommand::decode_response(raw(
        r#"{"exited": true, "exitcode": 0, "out-data": "aGkK", "out-truncated": false}"#,
    ))
    .unwrap();
    assert!(status.exited);
    assert_eq!(status.exitcode, Some(0));
    assert_eq!(status.out_data.unwrap(), "aGkK");
    assert_eq!(status.err_data, None);
    assert_eq!(status.out_truncated, Some(false));

    let interfaces = GuestNetworkGetInterfaces::decode_response(raw(r#"[
        {"name": "lo", "hardware-address": "00:00:00:00:00:00",
         "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}],
         "statistics": {"tx-packets": 1, "tx-errs": 0, "rx-bytes": 2, "rx-dropped": 0,
                        "rx-packets": 1, "rx-errs": 0, "tx-bytes": 2, "tx-dropped": 0}},
        {"name": "eth0"}]"#))
    .unwrap();
    let mut interfaces = interfaces.iter();
    let lo = interfaces.next().unwrap().unwrap();
    assert_eq!(lo.name, "lo");
    assert_eq!(lo.hardware_address.unwrap(), "00:00:00:00:00:00");
    let address = lo.ip_addresses.unwrap().iter().next().unwrap().unwrap();
    assert_eq!(
        (
            address.ip_address.raw(),
            address.ip_address_type.as_str(),
            address.prefix
        ),
        ("127.0.0.1", "ipv4", 8)
    );
    assert_eq!(lo.statistics.unwrap().rx_bytes, 2);
    let eth0 = interfaces.next().unwrap().unwrap();
    assert!(eth0.ip_addresses.is_none() && eth0.hardware_address.is_none());
    assert!(interfaces.next().is_none());

    let users =
        GuestGetUsers::decode_response(raw(r#"[{"user": "root", "login-time": 1700000000.25}]"#))
            .unwrap();
    let user = users.iter().next().unwrap().unwrap();
    assert_eq!(
        (user.user.raw(), user.login_time),
        ("root", 1_700_000_000.25)
    );

    let read = GuestFileReadCommand::decode_response(raw(
        r#"{"count": 3, "buf-b64": "aGkK", "eof": true}"#,
    ))
    .unwrap();
    assert_eq!(
        (read.count, read.buf_b64.raw(), read.eof),
        (3, "aGkK", true)
    );
    let seek =
        GuestFileSeekCommand::decode_response(raw(r#"{"position": 10, "eof": false}"#)).unwrap();
    assert_eq!((seek.position, seek.eof), (10, false));
    assert_eq!(
        GuestFsfreezeStatusCommand::decode_response(raw(r#""thawed""#))
            .unwrap()
            .as_str(),
        "thawed"
    );
    let os = GuestGetOsinfo::decode_response(raw(
        r#"{"id": "debian", "kernel-release": "6.1.0", "pretty-name": "Debian GNU/Linux 12 (bookworm)"}"#,
    ))
    .unwrap();
    assert_eq!(os.id.unwrap(), "debian");
    assert_eq!(os.kernel_release.unwrap(), "6.1.0");
    assert_eq!(os.variant, None);

    let properties = QomList::decode_response(raw(r#"[
        {"name": "type", "type": "string"},
        {"name": "x", "type": "bool", "description": "d", "default-value": false},
        {"name": "child0", "type": "child<foo>"}]"#))
    .unwrap();
    let list: Vec<_> = properties.iter().map(Result::unwrap).collect();
    assert_eq!(list[0].name, "type");
    assert_eq!(list[0].r#type, "string");
    assert_eq!(list[0].default_value, None);
    assert_eq!(list[1].default_value.unwrap().as_bool(), Some(false));
    assert_eq!(list[1].description.unwrap(), "d");
    assert!(list[2].is_child() && !list[2].is_link());

    let value = QomGet::decode_response(raw(r#"{"nested": [1, 2]}"#)).unwrap();
    assert!(value.is_object());

    let fdsets = QueryFdsets::decode_response(raw(
        r#"[{"fdset-id": 1, "fds": [{"fd": 21, "opaque": "rdonly:/path"}, {"fd": 22}]}]"#,
    ))
    .unwrap();
    let fdset = fdsets.iter().next().unwrap().unwrap();
    assert_eq!(fdset.fdset_id, 1);
    let fds: Vec<_> = fdset.fds.iter().map(Result::unwrap).collect();
    assert_eq!((fds[0].fd, fds[1].fd), (21, 22));
    assert_eq!(fds[0].opaque.unwrap(), "rdonly:/path");

    let migration = QueryMigrate::decode_response(raw(r#"{
        "status": "completed", "total-time": 1200, "downtime": 30, "setup-time": 2,
        "ram": {"transferred": 10, "remaining": 0, "total": 100, "duplicate": 5, "normal": 2,
                "normal-bytes": 8192, "dirty-pages-rate": 0, "mbps": 812.5,
                "dirty-sync-count": 3, "postcopy-requests": 0, "page-size": 4096,
                "multifd-bytes": 0, "pages-per-second": 100, "precopy-bytes": 10,
                "downtime-bytes": 0, "postcopy-bytes": 0, "dirty-sync-missed-zero-copy": 0},
        "blocked-reasons": ["x"]}"#))
    .unwrap();
    assert_eq!(migration.status.unwrap(), "completed");
    assert_eq!(migration.ram.unwrap().mbps, 812.5);
    assert_eq!(migration.downtime, Some(30));
    assert!(QueryMigrate::decode_response(raw("{}"))
        .unwrap()
        .status
        .is_none());
    assert_eq!(migration.status, Some(MigrationStatus::Completed));
    let ram = migration.ram.unwrap();
    assert_eq!((ram.transferred, ram.total, ram.page_size), (10, 100, 4096));
    assert_eq!(ram.dirty_sync_missed_zero_copy, 0);
    assert_eq!(migration.blocked_reasons.unwrap().len(), 1);

    let capabilities = QueryMigrateCapabilities::decode_response(raw(
        r#"[{"state": true, "capability": "events"}, {"state": false, "capability": "x-new"}]"#,
    ))
    .unwrap();
    let capabilities: Vec<_> = capabilities.iter().map(Result::unwrap).collect();
    assert_eq!(
        capabilities[0],
        MigrationCapabilityStatus {
            capability: MigrationCapability::Events,
            state: true
        }
    );
    assert_eq!(capabilities[1].capability, "x-new");
    assert!(!capabilities[1].state);

    let parameters = QueryMigrateParameters::decode_response(raw(
        r#"{"tls-creds": "", "multifd-compression": "zstd", "mode": "normal",
            "downtime-limit": 300, "max-cpu-throttle": 99, "zero-page-detection": "multifd"}"#,
    ))
    .unwrap();
    assert_eq!(parameters.tls_creds.unwrap(), "");
    assert_eq!(
        parameters.multifd_compression,
        Some(MultiFDCompression::Zstd)
    );
    assert_eq!(parameters.mode, Some(MigMode::Normal));
    assert_eq!(
        parameters.zero_page_detection,
        Some(ZeroPageDetection::Multifd)
    );
    assert_eq!(
        (parameters.downtime_limit, parameters.max_cpu_throttle),
        (Some(300), Some(99))
    );
    assert_eq!(parameters.tls_hostname, None);

    let chardev =
        ChardevAdd::<ChardevBackend<'_>>::decode_response(raw(r#"{"pty": "/dev/pts/4"}"#)).unwrap();
    assert_eq!(chardev.pty.unwrap(), "/dev/pts/4");
    assert_eq!(
        HumanMonitorCommand::decode_response(raw(r#""RAX=0\r\n""#)).unwrap(),
        "RAX=0\r\n"
    );
    let cpus = QueryCpusFast::decode_response(raw(r#"[{"thread-id": 1234, "props":
        {"core-id": 0, "thread-id": 0, "node-id": 0, "socket-id": 0}, "qom-path":
        "/machine/unattached/device[0]", "target": "x86_64", "cpu-index": 0}]"#))
    .unwrap();
    let cpu = cpus.iter().next().unwrap().unwrap();
    assert_eq!((cpu.cpu_index, cpu.thread_id), (0, 1234));
    assert_eq!(cpu.props.unwrap().socket_id, Some(0));
    assert_eq!(cpu.target.tag(), "x86_64");

    let event = DecodedEvent::decode(
        "GUEST_PANICKED",
        Some(raw(
            r#"{"action": "pause", "info": {"type": "hyper-v", "arg1": 1, "arg2": 2, "arg3": 3, "arg4": 4, "arg5": 5}}"#,
        )),
    );
    let DecodedEvent::GuestPanicked(panic) = event else {
        panic!("{event:?}")
    };
    assert_eq!(panic.action.as_str(), "pause");
    let info = panic.info.unwrap();
    assert_eq!(info.r#type.tag().as_str(), "hyper-v");
    let qmp_core::qapi::GuestPanicInformationBranch::HyperV(hyper_v) = info.r#type else {
        panic!("{info:?}")
    };
    assert_eq!((hyper_v.arg1, hyper_v.arg5), (1, 5));
    let event = DecodedEvent::decode(
        "ACPI_DEVICE_OST",
        Some(raw(
            r#"{"info": {"device": "d1", "source": 3, "status": 0, "slot": "1", "slot-type": "DIMM"}}"#,
        )),
    );
    let DecodedEvent::AcpiDeviceOst(ost) = event else {
        panic!("{event:?}")
    };
    assert_eq!((ost.info.slot_type.as_str(), ost.info.source), ("DIMM", 3));
}

#[test]
fn newer_servers_still_decode() {
    // A reply with members this crate does not know, nested values among them.
    let status = QueryStatus::decode_response(raw(
        r#"{"status": "running", "singlestep": false, "future": {"a": [1, {"b": null}], "c": "\"}"}, "running": true}"#,
    ))
    .unwrap();
    assert!(status.running);
    assert_eq!(status.status, "running");
    // A run state and a job status that do not exist yet.
    let status =
        QueryStatus::decode_response(raw(r#"{"status": "hibernating", "running": false}"#))
            .unwrap();
    assert_eq!(status.status, "hibernating");
    match DecodedEvent::decode(
        "JOB_STATUS_CHANGE",
        Some(raw(r#"{"status": "teleporting", "id": "j", "extra": 1}"#)),
    ) {
        DecodedEvent::JobStatusChange(change) => {
            assert_eq!(change.status.as_str(), "teleporting")
        }
        other => panic!("unexpected {other:?}"),
    }
    // Data added to an event that had none.
    assert_eq!(
        DecodedEvent::decode("STOP", Some(raw(r#"{"reason": "new"}"#))),
        DecodedEvent::Stop(StopEvent)
    );
    // An event this crate does not know.
    let data = raw(r#"{"x": 1}"#);
    assert_eq!(
        DecodedEvent::decode("TELEPORTED", Some(data)),
        DecodedEvent::Unknown {
            name: "TELEPORTED",
            data: Some(data)
        }
    );
    // A known event whose data changed shape: reported, neither a panic nor a wrong value.
    let data = raw(r#"{"guest": "maybe", "reason": "host-qmp-quit"}"#);
    let decoded = DecodedEvent::decode("SHUTDOWN", Some(data));
    assert!(
        matches!(
            decoded,
            DecodedEvent::Undecodable {
                name: "SHUTDOWN",
                ..
            }
        ),
        "{decoded:?}"
    );
    assert_eq!(decoded.name(), "SHUTDOWN");
    assert!(matches!(
        DecodedEvent::decode("RESET", None),
        DecodedEvent::Undecodable { .. }
    ));
    // Wrong shapes are errors, never panics.
    assert!(QueryJobs::decode_response(raw("{}")).is_err());
    assert!(Stop::decode_response(raw("[]")).is_err());
    let schema = QueryQmpSchema::decode_response(raw("[1]")).unwrap();
    assert!(schema.iter().next().unwrap().is_err());
    assert!(GuestInfo::decode_response(raw(r#"{"version": "1"}"#)).is_err());
    for name in DecodedEvent::KNOWN_NAMES {
        for data in [None, Some(raw("[]")), Some(raw("{}")), Some(raw("null"))] {
            assert_eq!(DecodedEvent::decode(name, data).name(), *name);
        }
    }
}

/// Encodes a whole request line for `command` with the crate's encoder.
fn request_line<C: qmp_core::commands::Command>(
    command: &C,
    kind: qmp_core::encode::RequestKind,
    id: Option<u64>,
) -> Vec<u8> {
    let mut buffer = vec![0u8; 4096];
    let len = qmp_core::encode::encode_request(&mut buffer, kind, C::NAME, command.arguments(), id)
        .expect("request encodes");
    buffer.truncate(len);
    buffer
}

#[test]
fn whole_request_lines_match_the_captures() {
    use qmp_core::encode::RequestKind::Execute;
    let mut expected = line_with("40-qga-session.c2s", "guest-sync-delimited");
    expected.push(b'\n');
    let sync = GuestSyncDelimited {
        id: 1_234_567_890_123,
    };
    assert_eq!(request_line(&sync, Execute, None), expected);
    let mut expected = line_with("40-qga-session.c2s", "guest-ping");
    expected.push(b'\n');
    assert_eq!(request_line(&GuestPing, Execute, None), expected);
    let mut expected = line_with("31-qsys-oob.c2s", "\"query-status\",\"id\":3}");
    expected.push(b'\n');
    assert_eq!(request_line(&QueryStatus, Execute, Some(3)), expected);
    let mut expected = line_with("05-query-version.c2s", "\"id\":1}");
    expected.push(b'\n');
    assert_eq!(request_line(&QueryVersion, Execute, Some(1)), expected);
}
