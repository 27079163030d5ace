//! Introspection, the human monitor, file descriptors, the balloon, vCPUs, screen and
//! keyboard, and yank.
//!
//! `query-commands`, `query-name`, `query-kvm`, `human-monitor-command`, `add-fd`,
//! `remove-fd`, `query-fdsets`, `getfd`, `closefd`, `balloon`, `query-balloon`,
//! `query-cpus-fast`, `screendump` and `send-key` are the generated types of
//! [`crate::qapi`], re-exported here ([`HumanMonitorCommand::new`], [`Screendump::new`],
//! [`KeyValue::qcode`] and [`KeyValue::number`] kept on them). Hand-written because they
//! add something:
//! - [`QueryVersion`]: its [`VersionInfo::qemu`] is the greeting's [`Version`] (ordered,
//!   printable, equal to `client.version()`), where the schema's `VersionTriple` has three
//!   `i64`s;
//! - [`QueryQmpSchema`]: [`SchemaInfo`] decodes only `name` and `meta-type` of each entry
//!   and keeps the rest raw ([`SchemaInfo::get`]), which is what walking a 240 KB schema
//!   wants (the generated `SchemaInfo` decodes each entry's whole meta-type branch);
//! - [`Yank`], [`YankInstance`] and [`QueryYank`]: a yank target is named with a plain
//!   `&str` (`YankInstance::BlockNode { node_name: "n0" }`), where the generated
//!   `YankInstance` holds a received, still-escaped `JsonStr` (so naming one would need
//!   `JsonStr::from_escaped`), and [`QueryYank`]'s elements would clash by name with it.

use crate::json::{DecodeError, JsonStr, RawJson};
use crate::message::Version;

use super::de;
use super::macros::{array, command, custom, empty, MISSING_MEMBER};
use super::{Empty, FromRawJson, JsonArray};

pub use crate::qapi::qmp::{
    AddFd, AddfdInfo, Balloon, BalloonInfo, Closefd, CommandInfo, CpuInfoFast, CpuInfoFastBranch,
    CpuInstanceProperties, FdsetFdInfo, FdsetInfo, Getfd, HumanMonitorCommand, ImageFormat,
    IntWrapper, KeyValue, KeyValueBranch, KvmInfo, NameInfo, QKeyCode, QKeyCodeWrapper,
    QueryBalloon, QueryCommands, QueryCpusFast, QueryFdsets, QueryKvm, QueryName, RemoveFd,
    Screendump, SendKey,
};

command! {
    /// `query-version`: the server's QEMU version and package string.
    pub struct QueryVersion;
    name: "query-version",
    response<'r>: VersionInfo<'r> = custom
}

/// The return of [`QueryVersion`] (QAPI `VersionInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct VersionInfo<'a> {
    /// `qemu`: major, minor and micro version.
    pub qemu: Version,
    /// `package`: the distribution's package version, free-form, often empty.
    pub package: JsonStr<'a>,
}

#[derive(serde::Deserialize)]
struct VersionTriple {
    major: u32,
    minor: u32,
    micro: u32,
}

#[derive(serde::Deserialize)]
struct VersionInfoWire<'a> {
    qemu: VersionTriple,
    #[serde(borrow, deserialize_with = "de::string")]
    package: JsonStr<'a>,
}

impl<'a> FromRawJson<'a> for VersionInfo<'a> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        let wire: VersionInfoWire<'a> = raw.deserialize()?;
        Ok(VersionInfo {
            qemu: Version {
                major: wire.qemu.major,
                minor: wire.qemu.minor,
                micro: wire.qemu.micro,
            },
            package: wire.package,
        })
    }
}

command! {
    /// `query-qmp-schema`: the server's whole QAPI schema (QEMU 10 system emulators send
    /// about 240 KB). Type names in it are mangled to numbers; follow `arg-type`,
    /// `ret-type`, `element-type` and member `type` to find them.
    pub struct QueryQmpSchema;
    name: "query-qmp-schema",
    response<'r>: JsonArray<'r, SchemaInfo<'r>> = custom
}

/// One entity of the introspected schema (QAPI `SchemaInfo`): its name, its meta-type and
/// the raw object for the members that depend on the meta-type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct SchemaInfo<'a> {
    /// The entity's name: a command or event name, a builtin type name, or a mangled
    /// number for other types.
    pub name: JsonStr<'a>,
    /// `meta-type`: `builtin`, `enum`, `array`, `object`, `alternate`, `command` or
    /// `event`.
    pub meta_type: JsonStr<'a>,
    /// The whole entry.
    pub raw: RawJson<'a>,
}

impl<'a> SchemaInfo<'a> {
    /// Any member of the entry (`members`, `values`, `variants`, `tag`, ...).
    pub fn get(&self, key: &str) -> Option<RawJson<'a>> {
        self.raw.get(key)
    }

    fn string(&self, key: &str) -> Option<JsonStr<'a>> {
        self.raw.get(key).and_then(|value| value.as_json_str())
    }

    /// `arg-type` of a command or event.
    pub fn arg_type(&self) -> Option<JsonStr<'a>> {
        self.string("arg-type")
    }

    /// `ret-type` of a command.
    pub fn ret_type(&self) -> Option<JsonStr<'a>> {
        self.string("ret-type")
    }

    /// `element-type` of an array type.
    pub fn element_type(&self) -> Option<JsonStr<'a>> {
        self.string("element-type")
    }

    /// `allow-oob` of a command (`false` when absent).
    pub fn allow_oob(&self) -> bool {
        self.raw
            .get("allow-oob")
            .and_then(|value| value.as_bool())
            .unwrap_or(false)
    }

    /// `features`, such as `deprecated` or `unstable`.
    pub fn features(&self) -> Option<JsonArray<'a, JsonStr<'a>>> {
        self.raw
            .get("features")
            .and_then(|value| JsonArray::new(value).ok())
    }
}

impl<'a> FromRawJson<'a> for SchemaInfo<'a> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        if !raw.is_object() {
            return Err(DecodeError::NotAnObject);
        }
        let string = |key| {
            raw.get(key)
                .and_then(|value| value.as_json_str())
                .ok_or(MISSING_MEMBER)
        };
        Ok(SchemaInfo {
            name: string("name")?,
            meta_type: string("meta-type")?,
            raw,
        })
    }
}

/// `yank`: cuts the network connections of the given instances at once (to recover from
/// a hung NBD server or migration peer). Allowed out of band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Yank<'a> {
    /// The instances to yank (see [`QueryYank`]).
    pub instances: &'a [YankInstance<'a>],
}

/// An instance that can be yanked (QAPI `YankInstance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum YankInstance<'a> {
    /// A block node's network connections.
    BlockNode {
        /// The node's name.
        #[serde(rename = "node-name")]
        node_name: &'a str,
    },
    /// A character device's socket.
    Chardev {
        /// The chardev's id.
        id: &'a str,
    },
    /// The migration connections.
    Migration,
}

command! {
    impl Yank<'a>;
    name: "yank",
    response<'r>: Empty = empty,
    allow_oob: true
}

command! {
    /// `query-yank`: the instances that can be yanked. Allowed out of band.
    pub struct QueryYank;
    name: "query-yank",
    response<'r>: JsonArray<'r, YankInstanceInfo<'r>> = array,
    allow_oob: true
}

/// One element of [`QueryYank`]'s return: a `YankInstance` as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct YankInstanceInfo<'a> {
    /// `block-node`, `chardev` or `migration`.
    #[serde(borrow, rename = "type", deserialize_with = "de::string")]
    pub instance_type: JsonStr<'a>,
    /// The node name, for `block-node`.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub node_name: Option<JsonStr<'a>>,
    /// The chardev id, for `chardev`.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub id: Option<JsonStr<'a>>,
}

super::from_raw_json_via_serde!(YankInstanceInfo<'a>);

impl<'a> HumanMonitorCommand<'a> {
    /// Runs `command_line` on the default vCPU.
    pub fn new(command_line: &'a str) -> Self {
        HumanMonitorCommand {
            command_line,
            cpu_index: None,
        }
    }
}

impl<'a> Screendump<'a> {
    /// Dumps the primary console to `filename` as PPM.
    pub fn new(filename: &'a str) -> Self {
        Screendump {
            filename,
            device: None,
            head: None,
            format: None,
        }
    }
}

impl<'a> KeyValue<'a> {
    /// A key by its QEMU name (`KeyValue::qcode(QKeyCode::Ctrl)`).
    pub const fn qcode(key: QKeyCode<'a>) -> Self {
        KeyValue {
            r#type: KeyValueBranch::Qcode(QKeyCodeWrapper { data: key }),
        }
    }

    /// A raw key code.
    pub const fn number(code: i64) -> Self {
        KeyValue {
            r#type: KeyValueBranch::Number(IntWrapper { data: code }),
        }
    }
}
