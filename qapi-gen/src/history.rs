//! Schema history: what an older QEMU's schema lacks, so the generated types decode its
//! replies too.
//!
//! The vocabulary is generated from one release's schema (the newest we support). An older
//! QEMU omits members that were added later, and may omit members that were optional
//! then and are required now. [`compare`] walks the newer schema beside the older one
//! *as the wire sees it*: from every command both have, its return type, and from every
//! event both have, its data, pairing types by the member, union branch or alternative
//! through which they are reached (type names are not part of the protocol and may
//! change between releases). Each reply or event member that is required in the newer
//! schema and absent or optional in the older one is *relaxed*: the Rust field becomes an
//! `Option` (the schema data in `info` keeps the newer schema's flag), with a doc line
//! saying so. Members, commands, events and enum values the older schema lacks get a doc
//! line too (found through the same pairing, and for arguments by name).

use std::collections::BTreeSet;

use crate::schema::{Data, Def, Kind, Member, Schema, TypeRef, BUILTINS};

/// How a member of the newer schema looked in the older one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Before {
    /// The older release (`"7.2"`).
    pub version: String,
    /// Whether the older schema has the member at all (optional there, required now).
    pub present: bool,
    /// Whether the member is required in the newer schema and reached from a reply or an
    /// event, so its Rust field is an `Option` although the newer schema requires it.
    pub relaxed: bool,
}

/// The differences [`compare`] finds, keyed by names of the newer schema.
#[derive(Debug, Default)]
pub struct History {
    /// The older release.
    pub version: String,
    /// (owner, member) of members of the newer schema the older one lacks or has as
    /// optional, with how; the owner is a type, or a command or event for its in-place
    /// arguments or data.
    pub members: Vec<(String, String, Before)>,
    /// Commands and events the older schema lacks.
    pub defs: BTreeSet<String>,
    /// (enum, value) of enum values the older schema lacks.
    pub values: BTreeSet<(String, String)>,
    /// Commands and events only the older schema has.
    pub removed_defs: BTreeSet<String>,
    /// (owner, member) of members only the older schema has (owner named as in the newer).
    pub removed_members: BTreeSet<(String, String)>,
    /// (owner, member) of members the older schema requires and the newer has optional.
    pub required_before: BTreeSet<(String, String)>,
    /// (enum, value) of enum values only the older schema has.
    pub removed_values: BTreeSet<(String, String)>,
    /// Types of the newer schema that were of another kind (a struct now a union, ...).
    pub reshaped: BTreeSet<String>,
    /// (owner, member) of members whose type was another built-in type, or a built-in
    /// type where it is a defined one now or the reverse (`str` then, an enum now), or a
    /// list where it is none now or the reverse.
    pub retyped: BTreeSet<(String, String)>,
}

impl History {
    /// How member `member` of `owner` looked in the older schema, if it differed.
    pub fn member(&self, owner: &str, member: &str) -> Option<&Before> {
        self.members
            .iter()
            .find(|(o, m, _)| o == owner && m == member)
            .map(|(_, _, b)| b)
    }

    /// Records the history in `schema` (the newer one): members get [`Member::before`],
    /// commands, events and enum values their `absent_in`.
    pub fn apply(&self, schema: &mut Schema) {
        let version = Some(self.version.clone());
        for def in &mut schema.defs {
            let owner = def.name.clone();
            if self.defs.contains(&owner) {
                def.absent_in = version.clone();
            }
            let mark = |members: &mut Vec<Member>| {
                for m in members {
                    m.before = self.member(&owner, &m.name).cloned();
                }
            };
            match &mut def.kind {
                Kind::Struct { members, .. } => mark(members),
                Kind::Union { base, .. } => mark(base),
                Kind::Command {
                    data: Data::Members(members),
                    ..
                }
                | Kind::Event {
                    data: Data::Members(members),
                } => mark(members),
                Kind::Enum { values } => {
                    for v in values {
                        if self.values.contains(&(owner.clone(), v.name.clone())) {
                            v.absent_in = version.clone();
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Relaxed members, as `owner.member` (for the generator's report).
    pub fn relaxed(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, _, b)| b.relaxed)
            .map(|(o, m, _)| format!("{o}.{m}"))
            .collect()
    }
}

fn pairs(items: &BTreeSet<(String, String)>) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|(a, b)| format!("({a:?}, {b:?})"))
        .collect();
    format!("&[{}]", items.join(", "))
}

fn names(items: &BTreeSet<String>) -> String {
    let items: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("&[{}]", items.join(", "))
}

/// The `HISTORY` static of a generated `info` module (`qmp_core::qapi::info::History`),
/// one entry per older release compared.
pub fn info(histories: &[History]) -> String {
    let mut out = String::from(
        "/// How older releases' schemas differ from this one (see [`History`]).\npub static HISTORY: &[History] = &[\n",
    );
    for h in histories {
        let select = |keep: &dyn Fn(&Before) -> bool| -> BTreeSet<(String, String)> {
            h.members
                .iter()
                .filter(|(_, _, b)| keep(b))
                .map(|(o, m, _)| (o.clone(), m.clone()))
                .collect()
        };
        out.push_str(&format!(
            "    History {{\n        version: {:?},\n        added: {},\n        removed: {},\n        added_members: {},\n        optional_members: {},\n        relaxed_members: {},\n        required_members: {},\n        removed_members: {},\n        added_values: {},\n        removed_values: {},\n        reshaped: {},\n        retyped_members: {},\n    }},\n",
            h.version,
            names(&h.defs),
            names(&h.removed_defs),
            pairs(&select(&|b| !b.present)),
            pairs(&select(&|b| b.present)),
            pairs(&select(&|b| b.relaxed)),
            pairs(&h.required_before),
            pairs(&h.removed_members),
            pairs(&h.values),
            pairs(&h.removed_values),
            names(&h.reshaped),
            pairs(&h.retyped),
        ));
    }
    out.push_str("];\n");
    out
}

struct Walk<'s> {
    new: &'s Schema,
    old: &'s Schema,
    history: History,
    /// Type pairs compared already, and whether as reply types.
    seen: BTreeSet<(String, String, bool)>,
}

/// Compares `new` with `old`, the schema of release `version`.
pub fn compare(new: &Schema, old: &Schema, version: &str) -> History {
    let mut walk = Walk {
        new,
        old,
        history: History {
            version: version.to_string(),
            ..History::default()
        },
        seen: BTreeSet::new(),
    };
    // Replies and events first, so a type reached both ways is compared as a reply type.
    for reply in [true, false] {
        for def in &new.defs {
            let old_def = old.get(&def.name);
            match (&def.kind, old_def.map(|d| &d.kind)) {
                (
                    Kind::Command { data, returns, .. },
                    Some(Kind::Command {
                        data: old_data,
                        returns: old_returns,
                        ..
                    }),
                ) => {
                    if reply {
                        if let (Some(r), Some(o)) = (returns, old_returns) {
                            walk.type_ref(r, o, true);
                        }
                    } else {
                        walk.data(&def.name, data, old_data, false);
                    }
                }
                (Kind::Event { data }, Some(Kind::Event { data: old_data })) if reply => {
                    walk.data(&def.name, data, old_data, true);
                }
                (Kind::Command { .. } | Kind::Event { .. }, None) if reply => {
                    walk.history.defs.insert(def.name.clone());
                }
                _ => {}
            }
        }
    }
    for def in &old.defs {
        if matches!(def.kind, Kind::Command { .. } | Kind::Event { .. })
            && new.get(&def.name).is_none()
        {
            walk.history.removed_defs.insert(def.name.clone());
        }
    }
    // Types reached from nothing both schemas share (arguments of new commands, say):
    // compared by name, for the documentation only.
    for def in &new.defs {
        if old.get(&def.name).is_some()
            && !matches!(def.kind, Kind::Command { .. } | Kind::Event { .. })
        {
            walk.types(&def.name, &def.name, false);
        }
    }
    walk.history
}

impl Walk<'_> {
    fn type_ref(&mut self, new: &TypeRef, old: &TypeRef, reply: bool) {
        match (new, old) {
            (TypeRef::Named(n), TypeRef::Named(o)) | (TypeRef::List(n), TypeRef::List(o)) => {
                self.types(n, o, reply)
            }
            // The type changed shape: nothing to pair.
            _ => {}
        }
    }

    /// Command arguments or event data of `owner`.
    fn data(&mut self, owner: &str, new: &Data, old: &Data, reply: bool) {
        if let (Data::Named(n), Data::Named(o)) = (new, old) {
            return self.types(n, o, reply);
        }
        let (Some(new_members), Some(old_members)) =
            (self.new.data_members(new), self.old.data_members(old))
        else {
            return;
        };
        let owner = match new {
            Data::Named(n) => n.as_str(),
            _ => owner,
        };
        self.members(owner, &new_members, &old_members, reply);
    }

    fn types(&mut self, new: &str, old: &str, reply: bool) {
        if BUILTINS.contains(&new) || BUILTINS.contains(&old) {
            return;
        }
        let (Some(n), Some(o)) = (self.new.get(new), self.old.get(old)) else {
            return;
        };
        if !self.seen.insert((new.to_string(), old.to_string(), reply)) {
            return;
        }
        // Compared as a reply type already: that covers the documentation too.
        if !reply
            && self
                .seen
                .contains(&(new.to_string(), old.to_string(), true))
        {
            return;
        }
        let (n, o): (&Def, &Def) = (n, o);
        match (&n.kind, &o.kind) {
            (Kind::Enum { values }, Kind::Enum { values: old_values }) => {
                for v in values {
                    if !old_values.iter().any(|ov| ov.name == v.name) {
                        self.history
                            .values
                            .insert((new.to_string(), v.name.clone()));
                    }
                }
                for ov in old_values {
                    if !values.iter().any(|v| v.name == ov.name) {
                        self.history
                            .removed_values
                            .insert((new.to_string(), ov.name.clone()));
                    }
                }
            }
            (
                Kind::Struct { members, .. },
                Kind::Struct {
                    members: old_members,
                    ..
                },
            ) => self.members(new, members, old_members, reply),
            (
                Kind::Union { base, branches, .. },
                Kind::Union {
                    base: old_base,
                    branches: old_branches,
                    ..
                },
            ) => {
                self.members(new, base, old_base, reply);
                for b in branches {
                    if let Some(ob) = old_branches.iter().find(|ob| ob.name == b.name) {
                        self.type_ref(&b.ty, &ob.ty, reply);
                    }
                }
            }
            // A struct that became a union: the base holds part of what the struct had,
            // the branches the rest (an object without the discriminator decodes whole).
            (
                Kind::Union {
                    base,
                    branches,
                    discriminator,
                    ..
                },
                Kind::Struct {
                    members: old_members,
                    ..
                },
            ) => {
                self.members(new, base, old_members, reply);
                // Without the discriminator (7.2's `SevInfo`), an older object never
                // selects a branch: it decodes whole, so the branches are not compared.
                let selects_branch = old_members.iter().any(|om| om.name == *discriminator);
                let mut moved: BTreeSet<(String, String)> = BTreeSet::new();
                for b in branches {
                    let branch_members = self.new.struct_members(b.ty.name()).unwrap_or_default();
                    if selects_branch {
                        // A branch member is compared with the struct's member of that
                        // name; the struct's other members belong to the base or other
                        // branches.
                        let old_for_branch: Vec<Member> = old_members
                            .iter()
                            .filter(|om| branch_members.iter().any(|m| m.name == om.name))
                            .cloned()
                            .collect();
                        self.members(b.ty.name(), &branch_members, &old_for_branch, reply);
                    }
                    for m in branch_members {
                        moved.insert((new.to_string(), m.name));
                    }
                }
                self.history
                    .removed_members
                    .retain(|key| !moved.contains(key));
            }
            (
                Kind::Alternate { branches },
                Kind::Alternate {
                    branches: old_branches,
                },
            ) => {
                for b in branches {
                    if let Some(ob) = old_branches.iter().find(|ob| ob.name == b.name) {
                        self.type_ref(&b.ty, &ob.ty, reply);
                    }
                }
            }
            _ => {}
        }
        if std::mem::discriminant(&n.kind) != std::mem::discriminant(&o.kind) {
            self.history.reshaped.insert(new.to_string());
        }
    }

    fn members(&mut self, owner: &str, new: &[Member], old: &[Member], reply: bool) {
        for om in old {
            match new.iter().find(|m| m.name == om.name) {
                None => {
                    self.history
                        .removed_members
                        .insert((owner.to_string(), om.name.clone()));
                }
                Some(m) if m.optional && !om.optional => {
                    self.history
                        .required_before
                        .insert((owner.to_string(), om.name.clone()));
                }
                Some(_) => {}
            }
        }
        for m in new {
            let om = old.iter().find(|om| om.name == m.name);
            if let Some(om) = om {
                self.type_ref(&m.ty, &om.ty, reply);
                let builtin = |t: &TypeRef| BUILTINS.contains(&t.name());
                let shape = |t: &TypeRef| matches!(t, TypeRef::List(_));
                if shape(&m.ty) != shape(&om.ty)
                    || ((builtin(&m.ty) || builtin(&om.ty)) && m.ty.name() != om.ty.name())
                {
                    self.history
                        .retyped
                        .insert((owner.to_string(), m.name.clone()));
                }
            }
            let present = om.is_some();
            if present && (m.optional || !om.is_some_and(|om| om.optional)) {
                continue;
            }
            // A discriminator the older release lacks: the union decodes such an object to a
            // variant of its own (see the generator's unions).
            let relaxed = reply && !m.optional;
            if let Some((_, _, before)) = self
                .history
                .members
                .iter_mut()
                .find(|(o, n, _)| o == owner && *n == m.name)
            {
                before.relaxed |= relaxed;
                before.present &= present;
                continue;
            }
            self.history.members.push((
                owner.to_string(),
                m.name.clone(),
                Before {
                    version: self.history.version.clone(),
                    present,
                    relaxed,
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "
{ 'enum': 'Kind', 'data': [ 'a' ] }
{ 'struct': 'Info', 'data': { 'id': 'str', '*n': 'int', 'kind': 'Kind', '*gone': 'bool' } }
{ 'struct': 'Args', 'data': { 'x': 'int' } }
{ 'command': 'query-info', 'returns': ['Info'] }
{ 'command': 'set', 'data': 'Args' }
{ 'event': 'DONE', 'data': { 'id': 'str' } }
";

    const NEW: &str = "
{ 'enum': 'Kind', 'data': [ 'a', 'b' ] }
{ 'struct': 'Detail', 'data': { 'd': 'int' } }
{ 'struct': 'InfoRenamed', 'data': { 'id': 'str', 'n': 'int', 'kind': 'Kind',
  'added': 'Detail', '*opt': 'int' } }
{ 'struct': 'Args', 'data': { 'x': 'int', 'y': 'int' } }
{ 'command': 'query-info', 'returns': ['InfoRenamed'] }
{ 'command': 'set', 'data': 'Args' }
{ 'command': 'query-new', 'returns': 'Detail' }
{ 'event': 'DONE', 'data': { 'id': 'str', 'when': 'int' } }
";

    #[test]
    fn relaxes_reply_members_the_older_schema_lacks() {
        let new = Schema::from_text("t", NEW).unwrap();
        let old = Schema::from_text("t", OLD).unwrap();
        let history = compare(&new, &old, "7.2");
        // Paired through query-info's return type although the type was renamed.
        assert_eq!(
            history.relaxed(),
            ["InfoRenamed.n", "InfoRenamed.added", "DONE.when"]
        );
        let n = history.member("InfoRenamed", "n").unwrap();
        assert!(n.present && n.relaxed);
        let opt = history.member("InfoRenamed", "opt").unwrap();
        assert!(!opt.present && !opt.relaxed);
        // An argument member is noted, never relaxed.
        let y = history.member("Args", "y").unwrap();
        assert!(!y.present && !y.relaxed);
        assert!(history.member("InfoRenamed", "id").is_none());
        assert_eq!(
            history.removed_members,
            BTreeSet::from([("InfoRenamed".to_string(), "gone".to_string())])
        );
        assert_eq!(history.defs, BTreeSet::from(["query-new".to_string()]));
        assert_eq!(
            history.values,
            BTreeSet::from([("Kind".to_string(), "b".to_string())])
        );

        let mut new = new;
        history.apply(&mut new);
        let Kind::Struct { members, .. } = &new.get("InfoRenamed").unwrap().kind else {
            panic!("not a struct")
        };
        assert!(members[1].before.as_ref().is_some_and(|b| b.relaxed));
        assert!(members[0].before.is_none());
        assert_eq!(
            new.get("query-new").unwrap().absent_in.as_deref(),
            Some("7.2")
        );
        assert!(new.get("query-info").unwrap().absent_in.is_none());
    }

    #[test]
    fn relaxes_branch_members_of_a_struct_that_became_a_union() {
        let old = Schema::from_text(
            "t",
            "
{ 'struct': 'Job', 'data': { 'id': 'str', 'type': 'str', 'len': 'int' } }
{ 'command': 'query-jobs', 'returns': ['Job'] }
",
        )
        .unwrap();
        let new = Schema::from_text(
            "t",
            "
{ 'enum': 'JobType', 'data': [ 'mirror', 'stream' ] }
{ 'struct': 'JobMain', 'data': { 'id': 'str', 'type': 'JobType' } }
{ 'struct': 'JobMirror', 'data': { 'synced': 'bool', 'len': 'int' } }
{ 'union': 'Job', 'base': 'JobMain', 'discriminator': 'type',
  'data': { 'mirror': 'JobMirror' } }
{ 'command': 'query-jobs', 'returns': ['Job'] }
",
        )
        .unwrap();
        let history = compare(&new, &old, "7.2");
        // `synced` is new in the branch; `len` moved from the struct into the branch.
        assert_eq!(history.relaxed(), ["JobMirror.synced"]);
        assert!(history.member("JobMirror", "len").is_none());
        assert!(history.removed_members.is_empty());
    }

    #[test]
    fn branches_are_not_compared_when_the_struct_lacks_the_discriminator() {
        let old = Schema::from_text(
            "t",
            "
{ 'struct': 'Sev', 'data': { 'enabled': 'bool' } }
{ 'command': 'query-sev', 'returns': 'Sev' }
",
        )
        .unwrap();
        let new = Schema::from_text(
            "t",
            "
{ 'enum': 'SevType', 'data': [ 'sev', 'snp' ] }
{ 'struct': 'SevBase', 'data': { 'enabled': 'bool', 'type': 'SevType' } }
{ 'struct': 'SevSnp', 'data': { 'policy': 'int' } }
{ 'union': 'Sev', 'base': 'SevBase', 'discriminator': 'type',
  'data': { 'snp': 'SevSnp' } }
{ 'command': 'query-sev', 'returns': 'Sev' }
",
        )
        .unwrap();
        let history = compare(&new, &old, "7.2");
        // An older reply has no `type`: it decodes whole, never to the `snp` branch.
        assert_eq!(history.relaxed(), ["Sev.type"]);
        assert!(history.member("SevSnp", "policy").is_none());
    }
}
