//! Introspection, the human monitor, file descriptors, the balloon, vCPUs, screen and
//! keyboard, and yank.

use crate::json::{DecodeError, JsonStr, RawJson};
use crate::message::Version;

use super::de;
use super::macros::{array, command, custom, empty, required_array, value, MISSING_MEMBER};
use super::{Empty, FromRawJson, JsonArray};

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
    /// `query-commands`: the commands this monitor accepts.
    pub struct QueryCommands;
    name: "query-commands",
    response<'r>: JsonArray<'r, CommandInfo<'r>> = array
}

/// One element of [`QueryCommands`]' return (QAPI `CommandInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct CommandInfo<'a> {
    /// The command name.
    #[serde(borrow, deserialize_with = "de::string")]
    pub name: JsonStr<'a>,
}

command! {
    /// `query-name`: the guest name given with `-name`.
    pub struct QueryName;
    name: "query-name",
    response<'r>: NameInfo<'r> = value
}

/// The return of [`QueryName`] (QAPI `NameInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct NameInfo<'a> {
    /// The name, absent when none was given.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub name: Option<JsonStr<'a>>,
}

command! {
    /// `query-kvm`: whether KVM is compiled in and in use.
    pub struct QueryKvm;
    name: "query-kvm",
    response<'r>: KvmInfo = value
}

/// The return of [`QueryKvm`] (QAPI `KvmInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct KvmInfo {
    /// KVM acceleration is active.
    pub enabled: bool,
    /// KVM support is built in.
    pub present: bool,
}

/// `human-monitor-command`: runs one HMP command line and returns its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct HumanMonitorCommand<'a> {
    /// The HMP command line, e.g. `info registers`.
    pub command_line: &'a str,
    /// The vCPU that HMP commands such as `info registers` apply to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_index: Option<i64>,
}

impl<'a> HumanMonitorCommand<'a> {
    /// Runs `command_line` on the default vCPU.
    pub fn new(command_line: &'a str) -> Self {
        HumanMonitorCommand {
            command_line,
            cpu_index: None,
        }
    }
}

command! {
    impl HumanMonitorCommand<'a>;
    name: "human-monitor-command",
    response<'r>: JsonStr<'r> = value
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

/// `add-fd`: adds the file descriptor passed with this command (SCM_RIGHTS) to an fd set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct AddFd<'a> {
    /// The fd set to add to; a new one is created when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdset_id: Option<i64>,
    /// Free-form text stored with the descriptor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque: Option<&'a str>,
}

command! {
    impl AddFd<'a>;
    name: "add-fd",
    response<'r>: AddFdInfo = value
}

/// The return of [`AddFd`] (QAPI `AddfdInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct AddFdInfo {
    /// The fd set the descriptor went into.
    pub fdset_id: i64,
    /// The descriptor's number inside QEMU.
    pub fd: i64,
}

/// `remove-fd`: removes one descriptor, or a whole fd set, added with [`AddFd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct RemoveFd {
    /// The fd set.
    pub fdset_id: i64,
    /// The descriptor to remove; the whole set when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i64>,
}

command! {
    impl RemoveFd;
    name: "remove-fd",
    response<'r>: Empty = empty
}

command! {
    /// `query-fdsets`: the fd sets and their descriptors.
    pub struct QueryFdsets;
    name: "query-fdsets",
    response<'r>: JsonArray<'r, FdsetInfo<'r>> = custom
}

/// One element of [`QueryFdsets`]' return (QAPI `FdsetInfo`).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct FdsetInfo<'a> {
    /// The fd set's id.
    pub fdset_id: i64,
    /// Its descriptors.
    pub fds: JsonArray<'a, FdsetFdInfo<'a>>,
}

/// One descriptor of an fd set (QAPI `FdsetFdInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct FdsetFdInfo<'a> {
    /// The descriptor's number inside QEMU.
    pub fd: i64,
    /// The text given to `add-fd`.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub opaque: Option<JsonStr<'a>>,
}

impl<'a> FromRawJson<'a> for FdsetInfo<'a> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        let fdset_id = raw
            .get("fdset-id")
            .and_then(|value| value.as_i64())
            .ok_or(MISSING_MEMBER)?;
        Ok(FdsetInfo {
            fdset_id,
            fds: required_array(raw, "fds")?,
        })
    }
}

/// `getfd`: names the file descriptor passed with this command (SCM_RIGHTS), for
/// commands that take an fd name (`netdev_add` tap `fd=`, `migrate` `fd:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Getfd<'a> {
    /// The name to give it.
    pub fdname: &'a str,
}

command! {
    impl Getfd<'a>;
    name: "getfd",
    response<'r>: Empty = empty
}

/// `closefd`: closes a descriptor named with [`Getfd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Closefd<'a> {
    /// The descriptor's name.
    pub fdname: &'a str,
}

command! {
    impl Closefd<'a>;
    name: "closefd",
    response<'r>: Empty = empty
}

/// `balloon`: sets the guest's target memory size through the balloon device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Balloon {
    /// Target size in bytes.
    pub value: i64,
}

command! {
    impl Balloon;
    name: "balloon",
    response<'r>: Empty = empty
}

command! {
    /// `query-balloon`: the guest's current memory size as the balloon sees it.
    pub struct QueryBalloon;
    name: "query-balloon",
    response<'r>: BalloonInfo = value
}

/// The return of [`QueryBalloon`] (QAPI `BalloonInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct BalloonInfo {
    /// Memory the guest has, in bytes.
    pub actual: i64,
}

command! {
    /// `query-cpus-fast`: the vCPUs, without interrupting them.
    pub struct QueryCpusFast;
    name: "query-cpus-fast",
    response<'r>: JsonArray<'r, CpuInfoFast<'r>> = array
}

/// One element of [`QueryCpusFast`]' return (QAPI `CpuInfoFast`; the s390x-only members
/// are not decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct CpuInfoFast<'a> {
    /// The vCPU's index.
    pub cpu_index: i64,
    /// Its QOM path.
    #[serde(borrow, deserialize_with = "de::string")]
    pub qom_path: JsonStr<'a>,
    /// The host thread running it.
    pub thread_id: i64,
    /// Its topology properties.
    #[serde(default)]
    pub props: Option<CpuInstanceProperties>,
    /// The target architecture (`x86_64`, `aarch64`, ...).
    #[serde(borrow, deserialize_with = "de::string")]
    pub target: JsonStr<'a>,
}

/// A vCPU's place in the topology (QAPI `CpuInstanceProperties`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct CpuInstanceProperties {
    /// NUMA node.
    #[serde(default)]
    pub node_id: Option<i64>,
    /// Drawer.
    #[serde(default)]
    pub drawer_id: Option<i64>,
    /// Book.
    #[serde(default)]
    pub book_id: Option<i64>,
    /// Socket.
    #[serde(default)]
    pub socket_id: Option<i64>,
    /// Die.
    #[serde(default)]
    pub die_id: Option<i64>,
    /// Cluster.
    #[serde(default)]
    pub cluster_id: Option<i64>,
    /// Module.
    #[serde(default)]
    pub module_id: Option<i64>,
    /// Core.
    #[serde(default)]
    pub core_id: Option<i64>,
    /// Thread.
    #[serde(default)]
    pub thread_id: Option<i64>,
}

/// `screendump`: writes the display's content to a file on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Screendump<'a> {
    /// Destination path on the host.
    pub filename: &'a str,
    /// The display device's id (the primary console when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<&'a str>,
    /// The head on a multi-head device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<i64>,
    /// `ppm` (default) or `png`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'a str>,
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

command! {
    impl Screendump<'a>;
    name: "screendump",
    response<'r>: Empty = empty
}

/// `send-key`: presses the keys together, then releases them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct SendKey<'a> {
    /// The keys, pressed in order.
    pub keys: &'a [KeyValue<'a>],
    /// Milliseconds to hold them (QEMU's default is 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<i64>,
}

/// A key for [`SendKey`] (QAPI `KeyValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum KeyValue<'a> {
    /// A raw key code.
    Number(i64),
    /// A QEMU key name (QAPI `QKeyCode`: `ctrl`, `alt`, `delete`, `a`, `f1`, `ret`, ...).
    Qcode(&'a str),
}

command! {
    impl SendKey<'a>;
    name: "send-key",
    response<'r>: Empty = empty
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

super::from_raw_json_via_serde!(
    CommandInfo<'a>,
    CpuInfoFast<'a>,
    YankInstanceInfo<'a>,
    FdsetFdInfo<'a>
);
