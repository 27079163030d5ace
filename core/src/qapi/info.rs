//! The schema itself, as data: every command, event and type with its members and QEMU's
//! own documentation, for offline help (`qmp schema NAME`) and for checking the generated
//! vocabulary against a live server's `query-qmp-schema`.
//!
//! Type references are written as in the QAPI schema: a type name (`str`, `int`,
//! `BlockInfo`) or a list of one in brackets (`[BlockInfo]`). Conditions (`if`) are the
//! build options a server needs for the item, written out (`CONFIG_SPICE`,
//! `(TARGET_S390X or TARGET_I386)`); `None` means always present.
//!
//! Statics of these types are only linked into a program that uses them.

/// A member of a struct, union base, command's arguments or event's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberDoc {
    /// The wire name.
    pub name: &'static str,
    /// Its type (`str`, `[BlockInfo]`, ...).
    pub ty: &'static str,
    /// Whether it may be absent.
    pub optional: bool,
    /// QEMU's description.
    pub doc: &'static str,
    /// The build options it needs.
    pub cond: Option<&'static str>,
    /// Its features (`deprecated`, `unstable`, ...).
    pub features: &'static [&'static str],
}

/// An enumeration value, a union branch or an alternate's alternative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueDoc {
    /// The value, or the branch's discriminator value, or the alternative's name.
    pub name: &'static str,
    /// The branch's type (empty for enumeration values).
    pub ty: &'static str,
    /// QEMU's description.
    pub doc: &'static str,
    /// The build options it needs.
    pub cond: Option<&'static str>,
}

/// One command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandDoc {
    /// The wire name.
    pub name: &'static str,
    /// QEMU's description.
    pub doc: &'static str,
    /// What it returns, in QEMU's words.
    pub returns_doc: &'static str,
    /// The QEMU version that added it.
    pub since: &'static str,
    /// The argument members (those of `args_type` when it is set).
    pub args: &'static [MemberDoc],
    /// The named type the arguments are, if they are not listed in place.
    pub args_type: Option<&'static str>,
    /// The return type, `None` for `{}`.
    pub returns: Option<&'static str>,
    /// `allow-oob`
    pub allow_oob: bool,
    /// `success-response` (false: no reply on success).
    pub success_response: bool,
    /// Its features.
    pub features: &'static [&'static str],
    /// The build options it needs.
    pub cond: Option<&'static str>,
}

/// One event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDoc {
    /// The wire name.
    pub name: &'static str,
    /// QEMU's description.
    pub doc: &'static str,
    /// The QEMU version that added it.
    pub since: &'static str,
    /// The data members (those of `data_type` when it is set).
    pub members: &'static [MemberDoc],
    /// The named type the data is, if it is not listed in place.
    pub data_type: Option<&'static str>,
    /// Its features.
    pub features: &'static [&'static str],
    /// The build options it needs.
    pub cond: Option<&'static str>,
}

/// What a type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeDocKind {
    /// An enumeration and its values.
    Enum(&'static [ValueDoc]),
    /// A struct and its members (its base's first).
    Struct(&'static [MemberDoc]),
    /// A union: base members (discriminator included), the discriminator, the branches
    /// that have members.
    Union {
        /// Base members.
        members: &'static [MemberDoc],
        /// The discriminator member.
        discriminator: &'static str,
        /// Branches: discriminator value and struct type.
        branches: &'static [ValueDoc],
    },
    /// An alternate and its alternatives.
    Alternate(&'static [ValueDoc]),
}

/// One type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeDoc {
    /// The QAPI name.
    pub name: &'static str,
    /// QEMU's description.
    pub doc: &'static str,
    /// What it is.
    pub kind: TypeDocKind,
    /// Its features.
    pub features: &'static [&'static str],
    /// The build options it needs.
    pub cond: Option<&'static str>,
}

/// The command named `name` in `commands`.
pub fn command(commands: &'static [CommandDoc], name: &str) -> Option<&'static CommandDoc> {
    commands.iter().find(|c| c.name == name)
}

/// The type named `name` in `types`.
pub fn type_doc(types: &'static [TypeDoc], name: &str) -> Option<&'static TypeDoc> {
    types.iter().find(|t| t.name == name)
}
