//! Devices, network backends and QOM objects created at run time: `device_add`/`_del`,
//! `netdev_add`/`_del`, `object-add`/`-del`, with free-form properties.
//!
//! `device_del`, `netdev_del` and `object-del` are the generated types of
//! [`crate::qapi`], re-exported. [`DeviceAdd`], [`NetdevAdd`] and [`ObjectAdd`] stay
//! hand-written, shadowing the generated ones, because they add something: free-form
//! properties ([`PropertyValue`]) for any device, backend or object type. The schema
//! types `device_add` as `'any'` beyond `driver`/`bus`/`id` (so the generated one cannot
//! carry a device's properties), and `netdev_add`/`object-add` as unions with a branch
//! per backend or class that must be filled in member by member (and cannot name a type
//! QEMU adds later).

use serde::ser::{SerializeMap, Serializer};

use super::macros::{command, empty};
use super::Empty;

pub use crate::qapi::qmp::{DeviceDel, NetdevDel, ObjectDel};

/// A property value for the free-form members of [`DeviceAdd`], [`NetdevAdd`] and
/// [`ObjectAdd`]. QMP is typed: a boolean property needs [`PropertyValue::Bool`], a
/// number [`PropertyValue::Int`] or [`PropertyValue::Uint`] (`device_add` also accepts
/// strings for them, as the command line does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(untagged)]
pub enum PropertyValue<'a> {
    /// A string.
    Str(&'a str),
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
}

impl<'a> From<&'a str> for PropertyValue<'a> {
    fn from(value: &'a str) -> Self {
        PropertyValue::Str(value)
    }
}

impl From<bool> for PropertyValue<'_> {
    fn from(value: bool) -> Self {
        PropertyValue::Bool(value)
    }
}

impl From<i64> for PropertyValue<'_> {
    fn from(value: i64) -> Self {
        PropertyValue::Int(value)
    }
}

impl From<u64> for PropertyValue<'_> {
    fn from(value: u64) -> Self {
        PropertyValue::Uint(value)
    }
}

impl From<i32> for PropertyValue<'_> {
    fn from(value: i32) -> Self {
        PropertyValue::Int(i64::from(value))
    }
}

impl From<u32> for PropertyValue<'_> {
    fn from(value: u32) -> Self {
        PropertyValue::Uint(u64::from(value))
    }
}

/// Extra `name: value` members, written after the typed ones in the order given. A name
/// that repeats a typed member (`driver`, `id`, ...) makes QEMU reject the command.
pub type Properties<'a> = &'a [(&'a str, PropertyValue<'a>)];

/// Writes `fixed` members (skipping `None`) and then `properties` as one JSON object.
fn serialize_object<S: Serializer>(
    serializer: S,
    fixed: &[(&str, Option<&str>)],
    properties: Properties<'_>,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(None)?;
    for (name, value) in fixed {
        if let Some(value) = value {
            map.serialize_entry(name, value)?;
        }
    }
    for (name, value) in properties {
        map.serialize_entry(name, value)?;
    }
    map.end()
}

/// `device_add`: hot-plugs a device. `DEVICE_DELETED` reports the matching unplug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeviceAdd<'a> {
    /// The device type (`virtio-blk-pci`, `virtio-net-pci`, `usb-tablet`, ...).
    pub driver: &'a str,
    /// The device's id, needed to unplug it.
    pub id: Option<&'a str>,
    /// The bus to plug into (`pcie.1`, `usb.0`, ...).
    pub bus: Option<&'a str>,
    /// Device properties (`drive`, `netdev`, `mac`, `addr`, ...).
    pub properties: Properties<'a>,
}

impl<'a> DeviceAdd<'a> {
    /// A device of type `driver` with id `id`, on a bus QEMU chooses, without properties.
    pub fn new(driver: &'a str, id: &'a str) -> Self {
        DeviceAdd {
            driver,
            id: Some(id),
            bus: None,
            properties: &[],
        }
    }
}

impl serde::Serialize for DeviceAdd<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_object(
            serializer,
            &[
                ("driver", Some(self.driver)),
                ("id", self.id),
                ("bus", self.bus),
            ],
            self.properties,
        )
    }
}

command! {
    impl DeviceAdd<'a>;
    name: "device_add",
    response<'r>: Empty = empty
}

/// `netdev_add`: adds a network backend (QAPI `Netdev`: `type`, `id` and the type's
/// members as properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NetdevAdd<'a> {
    /// `type`: `user`, `tap`, `stream`, `dgram`, `vhost-user`, `bridge`, ...
    pub netdev_type: &'a str,
    /// The backend's id.
    pub id: &'a str,
    /// The type's members (`ifname`, `fd`, `script`, `hostfwd`, `vhost`, ...).
    pub properties: Properties<'a>,
}

impl<'a> NetdevAdd<'a> {
    /// A backend of type `netdev_type` with id `id` and no other members.
    pub fn new(netdev_type: &'a str, id: &'a str) -> Self {
        NetdevAdd {
            netdev_type,
            id,
            properties: &[],
        }
    }
}

impl serde::Serialize for NetdevAdd<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_object(
            serializer,
            &[("type", Some(self.netdev_type)), ("id", Some(self.id))],
            self.properties,
        )
    }
}

command! {
    impl NetdevAdd<'a>;
    name: "netdev_add",
    response<'r>: Empty = empty
}

/// `object-add`: creates a user-creatable QOM object (`iothread`, `memory-backend-*`,
/// `secret`, `throttle-group`, `rng-random`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ObjectAdd<'a> {
    /// `qom-type`: the object's class.
    pub qom_type: &'a str,
    /// The object's id.
    pub id: &'a str,
    /// The class's properties.
    pub properties: Properties<'a>,
}

impl<'a> ObjectAdd<'a> {
    /// An object of class `qom_type` with id `id` and no properties.
    pub fn new(qom_type: &'a str, id: &'a str) -> Self {
        ObjectAdd {
            qom_type,
            id,
            properties: &[],
        }
    }
}

impl serde::Serialize for ObjectAdd<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_object(
            serializer,
            &[("qom-type", Some(self.qom_type)), ("id", Some(self.id))],
            self.properties,
        )
    }
}

command! {
    impl ObjectAdd<'a>;
    name: "object-add",
    response<'r>: Empty = empty
}
