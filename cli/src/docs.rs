//! QEMU's own documentation of commands, events and their members, offline: the text
//! qmp-core's generated vocabulary carries from the QAPI schema (`qmp_core::qapi`), for
//! `qmp schema NAME` and the shell's `help NAME`. The live schema says what a server
//! accepts; this says what it means, and works for the guest agent, which has no
//! introspection at all.

use std::fmt::Write as _;

use qmp_std::qmp_core::qapi::info::{CommandDoc, EventDoc, MemberDoc, TypeDoc, TypeDocKind};
use qmp_std::qmp_core::qapi::{qga, qmp};

/// Which vocabulary to look names up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vocabulary {
    /// QMP (qemu-system-*, qemu-storage-daemon).
    Qmp,
    /// The guest agent.
    GuestAgent,
}

impl Vocabulary {
    fn commands(self) -> &'static [CommandDoc] {
        match self {
            Vocabulary::Qmp => qmp::info::COMMANDS,
            Vocabulary::GuestAgent => qga::info::COMMANDS,
        }
    }

    fn events(self) -> &'static [EventDoc] {
        match self {
            Vocabulary::Qmp => qmp::info::EVENTS,
            Vocabulary::GuestAgent => &[],
        }
    }

    fn types(self) -> &'static [TypeDoc] {
        match self {
            Vocabulary::Qmp => qmp::info::TYPES,
            Vocabulary::GuestAgent => qga::info::TYPES,
        }
    }

    /// Every command name, sorted.
    pub(crate) fn command_names(self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.commands().iter().map(|c| c.name).collect();
        names.sort_unstable();
        names
    }
}

/// The members a command's arguments or an event's data are, with their docs: listed in
/// place, or those of the named struct or union base.
fn members_of(
    vocabulary: Vocabulary,
    listed: &'static [MemberDoc],
    named: Option<&str>,
) -> &'static [MemberDoc] {
    let Some(named) = named else {
        return listed;
    };
    match vocabulary
        .types()
        .iter()
        .find(|t| t.name == named)
        .map(|t| t.kind)
    {
        Some(TypeDocKind::Struct(members)) => members,
        Some(TypeDocKind::Union { members, .. }) => members,
        _ => listed,
    }
}

/// Writes `text` indented by `pad`, each paragraph line as QEMU wrote it.
fn write_text(out: &mut String, pad: &str, text: &str) {
    for line in text.lines() {
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{pad}{}", line.trim_end());
        }
    }
}

fn write_members(out: &mut String, members: &[MemberDoc], only: Option<&str>) {
    for member in members.iter().filter(|m| only.is_none_or(|o| o == m.name)) {
        let optional = if member.optional { "?" } else { "" };
        let _ = writeln!(out, "  {}{optional}: {}", member.name, member.ty);
        if !member.doc.is_empty() {
            write_text(out, "      ", member.doc);
        }
        if !member.features.is_empty() {
            let _ = writeln!(out, "      features: {}", member.features.join(", "));
        }
        if let Some(cond) = member.cond {
            let _ = writeln!(out, "      only when QEMU is built with {cond}");
        }
    }
}

fn write_common(out: &mut String, features: &[&str], cond: Option<&str>, since: &str) {
    if !features.is_empty() {
        let _ = writeln!(out, "features: {}", features.join(", "));
    }
    if let Some(cond) = cond {
        let _ = writeln!(out, "only when QEMU is built with {cond}");
    }
    if !since.is_empty() {
        let _ = writeln!(out, "since QEMU {since}");
    }
}

/// QEMU's description of command or event `name` (or of one of its top-level members,
/// `name.member`), `None` when the vocabulary does not document it.
pub(crate) fn describe(vocabulary: Vocabulary, name: &str) -> Option<String> {
    let (head, member) = match name.split_once('.') {
        Some((head, member)) => (head, Some(member.split('.').next().unwrap_or(member))),
        None => (name, None),
    };
    let mut out = String::new();
    if let Some(command) = vocabulary.commands().iter().find(|c| c.name == head) {
        let args = members_of(vocabulary, command.args, command.args_type);
        if let Some(member) = member {
            let _ = writeln!(out, "From QEMU's documentation of {head}:");
            let before = out.len();
            write_members(&mut out, args, Some(member));
            return (out.len() > before).then_some(out);
        }
        let _ = writeln!(out, "From QEMU's documentation:");
        write_text(&mut out, "  ", command.doc);
        if !args.is_empty() {
            out.push_str("arguments:\n");
            write_members(&mut out, args, None);
        }
        if !command.returns_doc.is_empty() {
            out.push_str("returns:\n");
            write_text(&mut out, "  ", command.returns_doc);
        }
        write_common(&mut out, command.features, command.cond, command.since);
        return Some(out);
    }
    if let Some(event) = vocabulary.events().iter().find(|e| e.name == head) {
        let members = members_of(vocabulary, event.members, event.data_type);
        let _ = writeln!(out, "From QEMU's documentation:");
        if member.is_none() {
            write_text(&mut out, "  ", event.doc);
        }
        if !members.is_empty() {
            if member.is_none() {
                out.push_str("data:\n");
            }
            write_members(&mut out, members, member);
        }
        if member.is_none() {
            write_common(&mut out, event.features, event.cond, event.since);
        }
        return Some(out);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_show_qemus_text_and_argument_docs() {
        let text = describe(Vocabulary::Qmp, "blockdev-mirror").unwrap();
        assert!(text.starts_with("From QEMU's documentation:\n"), "{text}");
        assert!(
            text.contains("Start mirroring a block device's writes"),
            "{text}"
        );
        assert!(text.contains("  sync: MirrorSyncMode\n"), "{text}");
        assert!(text.contains("  job-id?: str\n"), "{text}");
        assert!(text.contains("since QEMU 2.6"), "{text}");
    }

    #[test]
    fn boxed_arguments_come_from_their_type() {
        let text = describe(Vocabulary::Qmp, "blockdev-add").unwrap();
        assert!(text.contains("  driver: BlockdevDriver\n"), "{text}");
        let text = describe(Vocabulary::Qmp, "blockdev-add.node-name").unwrap();
        assert!(text.contains("node-name?: str"), "{text}");
        assert!(describe(Vocabulary::Qmp, "blockdev-add.nonsense").is_none());
    }

    #[test]
    fn events_and_guest_agent_commands() {
        let text = describe(Vocabulary::Qmp, "JOB_STATUS_CHANGE").unwrap();
        assert!(text.contains("  status: JobStatus\n"), "{text}");
        let text = describe(Vocabulary::GuestAgent, "guest-exec").unwrap();
        assert!(text.contains("  path: str\n"), "{text}");
        assert!(describe(Vocabulary::GuestAgent, "query-version").is_none());
        assert!(Vocabulary::GuestAgent
            .command_names()
            .contains(&"guest-ping"));
    }
}
