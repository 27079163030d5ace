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

/// How an older release's schema differs from this one, as the generator found it
/// comparing the two (`qapi-gen`'s schema history): every name is this schema's. Owners of
/// members are types, or commands and events for arguments and data given in place.
///
/// The generated Rust types already allow for it (reply and event members the older
/// release may omit are `Option`s); this is the record, for tools and for checking a live
/// older server against the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// The older release (`"7.2"`).
    pub version: &'static str,
    /// Commands and events it lacks.
    pub added: &'static [&'static str],
    /// Commands and events only it has.
    pub removed: &'static [&'static str],
    /// `(owner, member)`: members required or optional here that it lacks.
    pub added_members: &'static [(&'static str, &'static str)],
    /// `(owner, member)`: members required here that are optional there.
    pub optional_members: &'static [(&'static str, &'static str)],
    /// `(owner, member)`: reply and event members required here that it may omit, so
    /// their Rust fields are `Option`s although [`MemberDoc::optional`] is false.
    pub relaxed_members: &'static [(&'static str, &'static str)],
    /// `(owner, member)`: members optional here that it requires.
    pub required_members: &'static [(&'static str, &'static str)],
    /// `(owner, member)`: members only it has.
    pub removed_members: &'static [(&'static str, &'static str)],
    /// `(enum, value)`: enum values it lacks.
    pub added_values: &'static [(&'static str, &'static str)],
    /// `(enum, value)`: enum values only it has.
    pub removed_values: &'static [(&'static str, &'static str)],
    /// Types of another kind there (a struct then, a union now).
    pub reshaped: &'static [&'static str],
    /// `(owner, member)`: members of another built-in type there, or of a built-in type
    /// where a defined one is here or the reverse (`str` then, an enum now), or a list
    /// where none is here or the reverse.
    pub retyped_members: &'static [(&'static str, &'static str)],
}
