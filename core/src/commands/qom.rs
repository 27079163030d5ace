//! The QEMU Object Model: listing, reading and writing object properties.
//!
//! `qom-list`, `qom-get` and `qom-list-types` are the generated types of [`crate::qapi`]
//! (QAPI module `qom`), re-exported here; [`ObjectPropertyInfo`] gains
//! [`is_child`](ObjectPropertyInfo::is_child) and [`is_link`](ObjectPropertyInfo::is_link).
//! [`QomSet`] stays hand-written: it takes any serializable value (the schema's `any`),
//! shadowing the generated one.

use crate::json::{DecodeError, RawJson};

use super::macros::empty;
use super::{Command, Empty};

pub use crate::qapi::qmp::{ObjectPropertyInfo, ObjectTypeInfo, QomGet, QomList, QomListTypes};

/// `qom-set`: writes one property; `value` is any serializable value of the property's
/// type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QomSet<'a, V> {
    /// The object's QOM path.
    pub path: &'a str,
    /// The property's name.
    pub property: &'a str,
    /// The new value.
    pub value: V,
}

impl<V: serde::Serialize> Command for QomSet<'_, V> {
    const NAME: &'static str = "qom-set";
    type Arguments = Self;
    type Response<'r> = Empty;

    fn arguments(&self) -> Option<&Self> {
        Some(self)
    }

    fn decode_response(raw: RawJson<'_>) -> Result<Empty, DecodeError> {
        empty(raw)
    }
}

impl ObjectPropertyInfo<'_> {
    /// Whether the property is a child (`child<TYPE>`).
    pub fn is_child(&self) -> bool {
        self.r#type.raw().starts_with("child<")
    }

    /// Whether the property is a link (`link<TYPE>`).
    pub fn is_link(&self) -> bool {
        self.r#type.raw().starts_with("link<")
    }
}
