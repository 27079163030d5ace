//! The live QAPI schema (`query-qmp-schema`) as readable text, and as the source of
//! argument names and enum values for the shell's tab completion.
//!
//! QEMU hides the names of its types: apart from the builtins (`str`, `int`, ...),
//! every type in `query-qmp-schema` is called by a number (`"38"`), and arrays by
//! `"[38]"`. Only commands and events have real names. So a type is always shown by its
//! structure, expanded inline: object members, union variants grouped by their
//! discriminator value, enum values, array elements and alternate branches. Recursive
//! types (a block node's options contain block node references) are cut where they
//! come back, and expansion stops at a depth limit.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Width the enum value lists are wrapped to.
const LINE_WIDTH: usize = 88;

/// The schema, indexed by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schema {
    entries: HashMap<String, Value>,
}

/// One member of an object type, as completion needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// The member's name.
    pub(crate) name: String,
    /// Its (possibly mangled) type name.
    pub(crate) type_name: String,
    /// Whether it may be left out.
    pub(crate) optional: bool,
}

/// The kinds of JSON value a schema type accepts, for typing `key=value` text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Accepts {
    /// `str` and enums.
    pub(crate) string: bool,
    /// `bool`.
    pub(crate) boolean: bool,
    /// `int` (and QEMU's sized integers, which the schema shows as `int`).
    pub(crate) integer: bool,
    /// `number`.
    pub(crate) number: bool,
    /// `null`.
    pub(crate) null: bool,
    /// Objects.
    pub(crate) object: bool,
    /// Arrays.
    pub(crate) array: bool,
    /// `any`, or a type this schema does not describe: every value.
    pub(crate) anything: bool,
}

impl Accepts {
    /// Whether `value` is of a kind accepted here.
    pub(crate) fn value(&self, value: &Value) -> bool {
        self.anything
            || match value {
                Value::Null => self.null,
                Value::Bool(_) => self.boolean,
                Value::Number(number) => {
                    self.number || (self.integer && (number.is_i64() || number.is_u64()))
                }
                Value::String(_) => self.string,
                Value::Array(_) => self.array,
                Value::Object(_) => self.object,
            }
    }

    /// Whether only strings are accepted (`str`, enums).
    pub(crate) fn only_strings(&self) -> bool {
        *self
            == Self {
                string: true,
                ..Self::default()
            }
    }
}

/// A name the schema does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownName {
    /// What was asked for.
    pub(crate) name: String,
    /// Commands and events whose names contain it (or share its first word).
    pub(crate) suggestions: Vec<String>,
}

impl core::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "'{}' is not a command, event or type of this QEMU",
            self.name
        )?;
        if !self.suggestions.is_empty() {
            write!(f, " (did you mean: {}?)", self.suggestions.join(", "))?;
        }
        Ok(())
    }
}

impl core::error::Error for UnknownName {}

impl Schema {
    /// Indexes the `return` value of `query-qmp-schema`.
    ///
    /// # Errors
    /// If it is not an array of objects with names.
    pub(crate) fn from_value(value: Value) -> Result<Self, String> {
        let Value::Array(items) = value else {
            return Err(String::from("query-qmp-schema did not return an array"));
        };
        let mut entries = HashMap::with_capacity(items.len());
        for item in items {
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                return Err(String::from("a query-qmp-schema entry has no name"));
            };
            entries.insert(name.to_owned(), item);
        }
        Ok(Self { entries })
    }

    /// Whether the schema is empty (not loaded).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The raw entry called `name`.
    pub(crate) fn entry(&self, name: &str) -> Option<&Value> {
        self.entries.get(name)
    }

    fn meta_type(&self, name: &str) -> Option<&str> {
        self.entry(name)?.get("meta-type")?.as_str()
    }

    fn names_of(&self, meta_type: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.get("meta-type").and_then(Value::as_str) == Some(meta_type))
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Every command name, sorted.
    pub(crate) fn commands(&self) -> Vec<&str> {
        self.names_of("command")
    }

    /// Every event name, sorted.
    pub(crate) fn events(&self) -> Vec<&str> {
        self.names_of("event")
    }

    /// The argument type of a command or the data type of an event.
    fn arg_type(&self, name: &str) -> Option<&str> {
        self.entry(name)?.get("arg-type")?.as_str()
    }

    /// The members an object of `type_name` can have given the `chosen` values so far:
    /// the base members, plus the members of the variant the discriminator in `chosen`
    /// selects. For an alternate, the members of its object branch.
    pub(crate) fn members(&self, type_name: &str, chosen: &Map<String, Value>) -> Vec<Member> {
        let Some(entry) = self.entry(type_name) else {
            return Vec::new();
        };
        match entry.get("meta-type").and_then(Value::as_str) {
            Some("object") => {
                let mut members = members_of(entry);
                let tag_value = entry
                    .get("tag")
                    .and_then(Value::as_str)
                    .and_then(|tag| chosen.get(tag))
                    .and_then(Value::as_str);
                if let Some(case) = tag_value {
                    if let Some(variant_type) = variants_of(entry)
                        .into_iter()
                        .find(|(variant_case, _)| *variant_case == case)
                        .map(|(_, variant_type)| variant_type)
                    {
                        for member in self.members(variant_type, chosen) {
                            if !members.iter().any(|known| known.name == member.name) {
                                members.push(member);
                            }
                        }
                    }
                }
                members
            }
            Some("alternate") => self
                .alternatives(entry)
                .into_iter()
                .find(|branch| self.meta_type(branch) == Some("object"))
                .map(|branch| self.members(branch, chosen))
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The type of the member at `path` (`["options", "driver"]`) of a command's
    /// arguments, following nested objects; `chosen` is the arguments typed so far.
    pub(crate) fn member_type(
        &self,
        command: &str,
        path: &[&str],
        chosen: &Map<String, Value>,
    ) -> Option<String> {
        let mut type_name = self.arg_type(command)?.to_owned();
        let mut chosen_here = chosen.clone();
        for part in path {
            let member = self
                .members(&type_name, &chosen_here)
                .into_iter()
                .find(|member| member.name == *part)?;
            chosen_here = match chosen_here.get(*part) {
                Some(Value::Object(nested)) => nested.clone(),
                _ => Map::new(),
            };
            type_name = member.type_name;
        }
        Some(type_name)
    }

    /// The values a member of `type_name` can take when they can be listed: enum
    /// values, `true`/`false`, and those of an alternate's branches.
    pub(crate) fn value_choices(&self, type_name: &str) -> Vec<String> {
        if type_name == "bool" {
            return vec![String::from("true"), String::from("false")];
        }
        let Some(entry) = self.entry(type_name) else {
            return Vec::new();
        };
        match entry.get("meta-type").and_then(Value::as_str) {
            Some("enum") => enum_values(entry),
            Some("alternate") => {
                let mut choices = Vec::new();
                for branch in self.alternatives(entry) {
                    for choice in self.value_choices(branch) {
                        if !choices.contains(&choice) {
                            choices.push(choice);
                        }
                    }
                }
                choices
            }
            _ => Vec::new(),
        }
    }

    fn alternatives<'a>(&self, entry: &'a Value) -> Vec<&'a str> {
        entry
            .get("members")
            .and_then(Value::as_array)
            .map(|members| {
                members
                    .iter()
                    .filter_map(|member| member.get("type").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Commands and events whose names resemble `name`.
    fn suggestions(&self, name: &str) -> Vec<String> {
        similar_names(name, self.commands().into_iter().chain(self.events()))
    }

    /// The argument type of a command (`None` for a name that is no command).
    pub(crate) fn command_arguments(&self, command: &str) -> Option<&str> {
        if self.meta_type(command) != Some("command") {
            return None;
        }
        self.arg_type(command)
    }

    /// The type at `path` below `type_name`, where `chosen` is the value being built
    /// (for union discriminators): object members by name, array elements by index.
    pub(crate) fn type_at_path(
        &self,
        type_name: &str,
        path: &[&str],
        chosen: &Value,
    ) -> Option<String> {
        let mut current = type_name.to_owned();
        let mut chosen_here = chosen.clone();
        for part in path {
            if let Some(element) = self.array_element(&current) {
                part.parse::<usize>().ok()?;
                chosen_here = chosen_here
                    .get(part.parse::<usize>().ok()?)
                    .cloned()
                    .unwrap_or(Value::Null);
                current = element;
                continue;
            }
            let empty = Map::new();
            let object = chosen_here.as_object().unwrap_or(&empty);
            let member = self
                .members(&current, object)
                .into_iter()
                .find(|member| member.name == *part)?;
            chosen_here = object.get(*part).cloned().unwrap_or(Value::Null);
            current = member.type_name;
        }
        Some(current)
    }

    /// The kinds of value `type_name` accepts (an alternate: those of its branches).
    pub(crate) fn accepts(&self, type_name: &str) -> Accepts {
        let Some(entry) = self.entry(type_name) else {
            return Accepts {
                anything: true,
                ..Accepts::default()
            };
        };
        let mut accepts = Accepts::default();
        match entry.get("meta-type").and_then(Value::as_str) {
            Some("builtin") => {
                let json_type = entry
                    .get("json-type")
                    .and_then(Value::as_str)
                    .unwrap_or(type_name);
                match json_type {
                    "string" | "str" => accepts.string = true,
                    "boolean" | "bool" => accepts.boolean = true,
                    "int" => accepts.integer = true,
                    "number" => accepts.number = true,
                    "null" => accepts.null = true,
                    _ => accepts.anything = true,
                }
            }
            Some("enum") => accepts.string = true,
            Some("object") => accepts.object = true,
            Some("array") => accepts.array = true,
            Some("alternate") => {
                for branch in self.alternatives(entry) {
                    let more = self.accepts(branch);
                    accepts = Accepts {
                        string: accepts.string || more.string,
                        boolean: accepts.boolean || more.boolean,
                        integer: accepts.integer || more.integer,
                        number: accepts.number || more.number,
                        null: accepts.null || more.null,
                        object: accepts.object || more.object,
                        array: accepts.array || more.array,
                        anything: accepts.anything || more.anything,
                    };
                }
            }
            _ => accepts.anything = true,
        }
        accepts
    }

    /// The readable description of a command, event or type, with nested types
    /// expanded to `depth` levels. `name` may continue with `.member` parts to show one
    /// member's type (`blockdev-mirror.sync`).
    ///
    /// # Errors
    /// [`UnknownName`] when the schema has no such entry or member.
    pub(crate) fn describe(&self, name: &str, depth: usize) -> Result<String, UnknownName> {
        let unknown = || UnknownName {
            name: name.to_owned(),
            suggestions: self.suggestions(name.split('.').next().unwrap_or(name)),
        };
        let (head, path) = match name.split_once('.') {
            Some((head, rest)) if self.entry(name).is_none() => (head, Some(rest)),
            _ => (name, None),
        };
        let entry = self.entry(head).ok_or_else(unknown)?;
        let mut out = String::new();
        if let Some(path) = path {
            let parts: Vec<&str> = path.split('.').collect();
            let type_name = self.path_type(head, &parts).ok_or_else(unknown)?;
            let _ = writeln!(out, "{name}: {}", self.label(&type_name));
            self.write_type_body(&mut out, &type_name, 1, depth, &mut Vec::new());
            return Ok(out);
        }
        match entry.get("meta-type").and_then(Value::as_str) {
            Some("command") => {
                let _ = writeln!(out, "{name} (command){}", features_suffix(entry));
                match entry.get("arg-type").and_then(Value::as_str) {
                    Some(arg_type) if !self.is_empty_object(arg_type) => {
                        let _ = writeln!(out, "  arguments: {}", self.label(arg_type));
                        self.write_type_body(&mut out, arg_type, 2, depth, &mut Vec::new());
                    }
                    _ => out.push_str("  arguments: none\n"),
                }
                if let Some(ret_type) = entry.get("ret-type").and_then(Value::as_str) {
                    if self.is_empty_object(ret_type) {
                        out.push_str("  returns: {}\n");
                    } else {
                        let _ = writeln!(out, "  returns: {}", self.label(ret_type));
                        self.write_type_body(&mut out, ret_type, 2, depth, &mut Vec::new());
                    }
                }
                if entry.get("allow-oob").and_then(Value::as_bool) == Some(true) {
                    out.push_str("  may run out-of-band (exec-oob)\n");
                }
            }
            Some("event") => {
                let _ = writeln!(out, "{name} (event){}", features_suffix(entry));
                match entry.get("arg-type").and_then(Value::as_str) {
                    Some(arg_type) if !self.is_empty_object(arg_type) => {
                        let _ = writeln!(out, "  data: {}", self.label(arg_type));
                        self.write_type_body(&mut out, arg_type, 2, depth, &mut Vec::new());
                    }
                    _ => out.push_str("  data: none\n"),
                }
            }
            _ => {
                let _ = writeln!(out, "{name}: {}", self.label(name));
                self.write_type_body(&mut out, name, 1, depth, &mut Vec::new());
            }
        }
        Ok(out)
    }

    /// The type at a dotted member path below a command's or event's arguments, or
    /// below a type; members of every union variant count.
    fn path_type(&self, head: &str, path: &[&str]) -> Option<String> {
        let mut type_name = match self.meta_type(head)? {
            "command" | "event" => self.arg_type(head)?.to_owned(),
            _ => head.to_owned(),
        };
        for part in path {
            type_name = self
                .all_members(&type_name)
                .into_iter()
                .find(|member| member.name == *part)?
                .type_name;
            while let Some(element) = self.array_element(&type_name) {
                type_name = element;
            }
        }
        Some(type_name)
    }

    /// Base members and the members of every variant (for path look-ups).
    fn all_members(&self, type_name: &str) -> Vec<Member> {
        let Some(entry) = self.entry(type_name) else {
            return Vec::new();
        };
        match entry.get("meta-type").and_then(Value::as_str) {
            Some("object") => {
                let mut members = members_of(entry);
                for (_, variant_type) in variants_of(entry) {
                    for member in self.all_members(variant_type) {
                        if !members.iter().any(|known| known.name == member.name) {
                            members.push(member);
                        }
                    }
                }
                members
            }
            Some("alternate") => self
                .alternatives(entry)
                .into_iter()
                .flat_map(|branch| self.all_members(branch))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The element type of an array type.
    pub(crate) fn array_element(&self, type_name: &str) -> Option<String> {
        let entry = self.entry(type_name)?;
        if entry.get("meta-type")?.as_str()? != "array" {
            return None;
        }
        Some(entry.get("element-type")?.as_str()?.to_owned())
    }

    fn is_empty_object(&self, type_name: &str) -> bool {
        self.entry(type_name).is_some_and(|entry| {
            entry.get("meta-type").and_then(Value::as_str) == Some("object")
                && members_of(entry).is_empty()
                && variants_of(entry).is_empty()
        })
    }

    /// A one-line summary of a type: `str`, `enum`, `object`, `[object]`,
    /// `str | object`, `union on 'driver'`.
    pub(crate) fn label(&self, type_name: &str) -> String {
        let Some(entry) = self.entry(type_name) else {
            return type_name.to_owned();
        };
        match entry.get("meta-type").and_then(Value::as_str) {
            Some("builtin") => type_name.to_owned(),
            Some("enum") => String::from("enum"),
            Some("array") => {
                let element = entry
                    .get("element-type")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                format!("[{}]", self.label(element))
            }
            Some("alternate") => self
                .alternatives(entry)
                .into_iter()
                .map(|branch| self.label(branch))
                .collect::<Vec<_>>()
                .join(" | "),
            Some("object") => match entry.get("tag").and_then(Value::as_str) {
                Some(tag) => format!("object, union on '{tag}'"),
                None => String::from("object"),
            },
            Some(other) => other.to_owned(),
            None => type_name.to_owned(),
        }
    }

    /// Writes what is inside a type (members, values, elements) at `indent` levels.
    fn write_type_body(
        &self,
        out: &mut String,
        type_name: &str,
        indent: usize,
        depth: usize,
        visiting: &mut Vec<String>,
    ) {
        let Some(entry) = self.entry(type_name) else {
            return;
        };
        let pad = "  ".repeat(indent);
        match entry.get("meta-type").and_then(Value::as_str) {
            Some("enum") => {
                write_wrapped_values(out, &pad, &enum_values(entry));
            }
            Some("array") => {
                if let Some(element) = entry.get("element-type").and_then(Value::as_str) {
                    self.write_type_body(out, element, indent, depth, visiting);
                }
            }
            Some("alternate") => {
                for branch in self.alternatives(entry) {
                    if self.has_body(branch) {
                        let _ = writeln!(out, "{pad}as {}:", self.label(branch));
                        self.write_type_body(out, branch, indent + 1, depth, visiting);
                    }
                }
            }
            Some("object") => {
                if visiting.iter().any(|seen| seen == type_name) {
                    let _ = writeln!(out, "{pad}(recursive: same as above)");
                    return;
                }
                if depth == 0 {
                    let _ = writeln!(out, "{pad}... (use --depth to expand)");
                    return;
                }
                visiting.push(type_name.to_owned());
                for member in members_of(entry) {
                    self.write_member(out, &member, entry, indent, depth, visiting);
                }
                // Group the cases that share one variant type.
                let mut groups: BTreeMap<usize, (Vec<&str>, &str)> = BTreeMap::new();
                let mut order: HashMap<&str, usize> = HashMap::new();
                for (index, (case, variant_type)) in variants_of(entry).into_iter().enumerate() {
                    let slot = *order.entry(variant_type).or_insert(index);
                    groups
                        .entry(slot)
                        .or_insert_with(|| (Vec::new(), variant_type))
                        .0
                        .push(case);
                }
                let tag = entry.get("tag").and_then(Value::as_str).unwrap_or("?");
                for (cases, variant_type) in groups.into_values() {
                    let variant_members = self.entry(variant_type).map(members_of);
                    let cases = cases
                        .iter()
                        .map(|case| format!("'{case}'"))
                        .collect::<Vec<_>>()
                        .join(" | ");
                    if variant_members.as_ref().is_some_and(Vec::is_empty)
                        && !self.has_variants(variant_type)
                    {
                        let _ = writeln!(out, "{pad}when {tag} is {cases}: nothing more");
                        continue;
                    }
                    let _ = writeln!(out, "{pad}when {tag} is {cases}:");
                    self.write_type_body(out, variant_type, indent + 1, depth - 1, visiting);
                }
                visiting.pop();
            }
            _ => {}
        }
    }

    fn write_member(
        &self,
        out: &mut String,
        member: &Member,
        owner: &Value,
        indent: usize,
        depth: usize,
        visiting: &mut Vec<String>,
    ) {
        let pad = "  ".repeat(indent);
        let optional = if member.optional { "?" } else { "" };
        let features = owner
            .get("members")
            .and_then(Value::as_array)
            .and_then(|members| {
                members
                    .iter()
                    .find(|raw| raw.get("name").and_then(Value::as_str) == Some(&member.name))
            })
            .map(features_suffix)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{pad}{}{optional}: {}{features}",
            member.name,
            self.label(&member.type_name)
        );
        if self.has_body(&member.type_name) {
            self.write_type_body(out, &member.type_name, indent + 1, depth - 1, visiting);
        }
    }

    fn has_variants(&self, type_name: &str) -> bool {
        self.entry(type_name)
            .is_some_and(|entry| !variants_of(entry).is_empty())
    }

    /// Whether a type has anything to show below its label.
    fn has_body(&self, type_name: &str) -> bool {
        let Some(entry) = self.entry(type_name) else {
            return false;
        };
        match entry.get("meta-type").and_then(Value::as_str) {
            Some("enum") => true,
            Some("object") => !members_of(entry).is_empty() || !variants_of(entry).is_empty(),
            Some("array") => entry
                .get("element-type")
                .and_then(Value::as_str)
                .is_some_and(|element| self.has_body(element)),
            Some("alternate") => self
                .alternatives(entry)
                .into_iter()
                .any(|branch| self.has_body(branch)),
            _ => false,
        }
    }

    /// The entry called `name` followed by every type it uses, directly or not (what
    /// `qmp schema --json NAME` prints).
    ///
    /// # Errors
    /// [`UnknownName`] when the schema has no such entry.
    pub(crate) fn closure(&self, name: &str) -> Result<Vec<Value>, UnknownName> {
        if self.entry(name).is_none() {
            return Err(UnknownName {
                name: name.to_owned(),
                suggestions: self.suggestions(name),
            });
        }
        let mut seen: Vec<String> = vec![name.to_owned()];
        let mut index = 0;
        while let Some(current) = seen.get(index).cloned() {
            index += 1;
            let Some(entry) = self.entry(&current) else {
                continue;
            };
            for referenced in referenced_types(entry) {
                if !seen.iter().any(|known| known == referenced) {
                    seen.push(referenced.to_owned());
                }
            }
        }
        Ok(seen
            .iter()
            .filter_map(|name| self.entry(name).cloned())
            .collect())
    }

    /// The list printed by `qmp schema` with no name.
    pub(crate) fn overview(&self) -> String {
        let mut out = String::new();
        let commands = self.commands();
        let _ = writeln!(out, "commands ({}):", commands.len());
        write_wrapped_values(&mut out, "  ", &commands);
        let events = self.events();
        let _ = writeln!(out, "events ({}):", events.len());
        write_wrapped_values(&mut out, "  ", &events);
        out.push_str(
            "`qmp schema NAME` describes one of them; NAME.member shows a single member.\n",
        );
        out
    }
}

/// At most this many "did you mean" suggestions.
const MAX_SUGGESTIONS: usize = 5;

/// The names among `candidates` that resemble `name`, best first: those that start
/// with it (`query-stat` → `query-status`), then those a few typing mistakes away,
/// then those that contain it; case is ignored.
pub(crate) fn similar_names<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let wanted = name.to_ascii_lowercase();
    if wanted.is_empty() {
        return Vec::new();
    }
    let allowed_mistakes = (wanted.len() / 4).clamp(1, 3);
    let mut ranked: Vec<(usize, usize, &str)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let lower = candidate.to_ascii_lowercase();
            if lower == wanted {
                return None;
            }
            let distance = edit_distance(&wanted, &lower);
            let rank = if lower.starts_with(&wanted) {
                0
            } else if distance <= allowed_mistakes {
                1
            } else if lower.contains(&wanted) || (wanted.len() >= 6 && wanted.contains(&lower)) {
                2
            } else {
                return None;
            };
            Some((rank, distance, candidate))
        })
        .collect();
    ranked.sort_unstable();
    ranked.dedup_by(|a, b| a.2 == b.2);
    ranked
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, _, candidate)| candidate.to_owned())
        .collect()
}

/// The edit distance between two names (by bytes): insertions, deletions,
/// substitutions and swaps of two neighbours (`sotp` is one swap from `stop`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    for (i, row) in table.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in table.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[(i - 1) * width + j] + 1)
                .min(table[i * width + j - 1] + 1)
                .min(table[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[(i - 2) * width + j - 2] + 1);
            }
            table[i * width + j] = best;
        }
    }
    table[a.len() * width + b.len()]
}

/// The type names an entry refers to.
fn referenced_types(entry: &Value) -> Vec<&str> {
    let mut names = Vec::new();
    for key in ["arg-type", "ret-type", "element-type"] {
        if let Some(name) = entry.get(key).and_then(Value::as_str) {
            names.push(name);
        }
    }
    for key in ["members", "variants"] {
        if let Some(items) = entry.get(key).and_then(Value::as_array) {
            names.extend(
                items
                    .iter()
                    .filter_map(|item| item.get("type").and_then(Value::as_str)),
            );
        }
    }
    names
}

fn members_of(entry: &Value) -> Vec<Member> {
    entry
        .get("members")
        .and_then(Value::as_array)
        .map(|members| {
            members
                .iter()
                .filter_map(|member| {
                    Some(Member {
                        name: member.get("name")?.as_str()?.to_owned(),
                        type_name: member.get("type")?.as_str()?.to_owned(),
                        optional: member.get("default").is_some(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn variants_of(entry: &Value) -> Vec<(&str, &str)> {
    entry
        .get("variants")
        .and_then(Value::as_array)
        .map(|variants| {
            variants
                .iter()
                .filter_map(|variant| {
                    Some((
                        variant.get("case")?.as_str()?,
                        variant.get("type")?.as_str()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn enum_values(entry: &Value) -> Vec<String> {
    if let Some(members) = entry.get("members").and_then(Value::as_array) {
        return members
            .iter()
            .filter_map(|member| member.get("name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
    }
    entry
        .get("values")
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn features_suffix(entry: &Value) -> String {
    let features: Vec<&str> = entry
        .get("features")
        .and_then(Value::as_array)
        .map(|features| features.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if features.is_empty() {
        String::new()
    } else {
        format!(" ({})", features.join(", "))
    }
}

/// Writes `values` separated by `, ` and wrapped at [`LINE_WIDTH`], each line starting
/// with `pad`.
fn write_wrapped_values<S: AsRef<str>>(out: &mut String, pad: &str, values: &[S]) {
    let mut line = String::new();
    for (index, value) in values.iter().enumerate() {
        let value = value.as_ref();
        let separator = if index + 1 < values.len() { "," } else { "" };
        if !line.is_empty() && pad.len() + line.len() + 1 + value.len() + 1 > LINE_WIDTH {
            let _ = writeln!(out, "{pad}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(value);
        line.push_str(separator);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{pad}{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qsd_schema() -> Schema {
        let text = include_str!("testdata/qsd-schema.json");
        Schema::from_value(serde_json::from_str(text).unwrap()).unwrap()
    }

    fn names(members: &[Member]) -> Vec<&str> {
        members.iter().map(|member| member.name.as_str()).collect()
    }

    #[test]
    fn commands_and_events_are_listed() {
        let schema = qsd_schema();
        let commands = schema.commands();
        assert!(commands.contains(&"blockdev-add"));
        assert!(commands.contains(&"query-version"));
        assert!(commands.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(schema.events().contains(&"JOB_STATUS_CHANGE"));
        let overview = schema.overview();
        assert!(overview.contains("commands (76):"), "{overview}");
        assert!(overview.contains("events (13):"), "{overview}");
    }

    #[test]
    fn a_plain_command_shows_members_and_enum_values() {
        let schema = qsd_schema();
        let text = schema.describe("blockdev-mirror", 3).unwrap();
        assert!(text.starts_with("blockdev-mirror (command)\n"), "{text}");
        assert!(text.contains("  arguments: object\n"), "{text}");
        assert!(text.contains("    job-id?: str\n"), "{text}");
        assert!(text.contains("    device: str\n"), "{text}");
        assert!(
            text.contains("    sync: enum\n      top, full, none, incremental, bitmap\n"),
            "{text}"
        );
        assert!(text.contains("  returns: {}\n"), "{text}");
        assert!(!text.contains("\"99\""), "mangled names leak: {text}");
    }

    #[test]
    fn a_union_shows_its_variants_grouped() {
        let schema = qsd_schema();
        let text = schema.describe("blockdev-add", 2).unwrap();
        assert!(
            text.contains("  arguments: object, union on 'driver'\n"),
            "{text}"
        );
        assert!(text.contains("    driver: enum\n"), "{text}");
        assert!(text.contains("    node-name?: str\n"), "{text}");
        assert!(
            text.contains("    when driver is 'file' | 'host_cdrom' | 'host_device':\n"),
            "{text}"
        );
        assert!(text.contains("      filename: str\n"), "{text}");
        assert!(
            text.contains("when driver is 'null-aio' | 'null-co':\n"),
            "{text}"
        );
    }

    #[test]
    fn recursion_and_depth_are_bounded() {
        let schema = qsd_schema();
        let shallow = schema.describe("blockdev-add", 1).unwrap();
        assert!(shallow.contains("(use --depth to expand)"), "{shallow}");
        let deep = schema.describe("blockdev-add", 50).unwrap();
        assert!(deep.contains("(recursive: same as above)"));
        assert!(deep.len() < 2_000_000);
    }

    #[test]
    fn events_show_their_data() {
        let schema = qsd_schema();
        let text = schema.describe("JOB_STATUS_CHANGE", 3).unwrap();
        assert!(
            text.starts_with("JOB_STATUS_CHANGE (event)\n  data: object\n"),
            "{text}"
        );
        assert!(
            text.contains("    id: str\n    status: enum\n      undefined, created,"),
            "{text}"
        );
    }

    #[test]
    fn commands_without_arguments_and_with_returns() {
        let schema = qsd_schema();
        let text = schema.describe("query-jobs", 3).unwrap();
        assert!(text.contains("  arguments: none\n"), "{text}");
        assert!(text.contains("  returns: [object]\n"), "{text}");
        assert!(text.contains("    current-progress: int\n"), "{text}");
    }

    #[test]
    fn member_paths_describe_one_member() {
        let schema = qsd_schema();
        let text = schema.describe("blockdev-mirror.sync", 3).unwrap();
        assert_eq!(
            text,
            "blockdev-mirror.sync: enum\n  top, full, none, incremental, bitmap\n"
        );
        let text = schema.describe("blockdev-add.filename", 3).unwrap();
        assert_eq!(text, "blockdev-add.filename: str\n");
        assert!(schema.describe("blockdev-add.nonsense", 3).is_err());
    }

    #[test]
    fn unknown_names_suggest_close_ones() {
        let schema = qsd_schema();
        let error = schema.describe("blockdev", 3).unwrap_err();
        assert!(error.suggestions.contains(&String::from("blockdev-add")));
        assert!(error.to_string().contains("did you mean"));
        let error = schema.describe("zzz", 3).unwrap_err();
        assert!(error.suggestions.is_empty());
    }

    #[test]
    fn suggestions_put_prefixes_and_typos_first() {
        let names = [
            "query-stats",
            "query-stats-schemas",
            "query-status",
            "query-block",
            "query-blockstats",
            "query-balloon",
            "query-chardev",
            "query-commands",
            "query-cpus-fast",
            "stop",
        ];
        let found = similar_names("query-stat", names);
        assert!(found.contains(&String::from("query-status")), "{found:?}");
        assert!(similar_names("query-statsu", names).contains(&String::from("query-status")));
        assert_eq!(similar_names("STOP", names), Vec::<String>::new());
        assert_eq!(similar_names("sotp", names), vec!["stop"]);
        assert!(similar_names("zzzzzz", names).is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        // The schema's own "did you mean".
        let schema = qsd_schema();
        let error = schema.describe("query-versoin", 3).unwrap_err();
        assert_eq!(error.suggestions[0], "query-version");
    }

    #[test]
    fn builtin_and_mangled_types_can_be_described() {
        let schema = qsd_schema();
        assert_eq!(schema.describe("int", 3).unwrap(), "int: int\n");
        let text = schema.describe("91", 3).unwrap();
        assert!(text.starts_with("91: enum\n  undefined, created"), "{text}");
    }

    #[test]
    fn completion_members_follow_the_discriminator() {
        let schema = qsd_schema();
        let arguments = schema
            .member_type("blockdev-add", &[], &Map::new())
            .unwrap();
        let base = schema.members(&arguments, &Map::new());
        assert!(names(&base).contains(&"driver"));
        assert!(!names(&base).contains(&"filename"));
        let mut chosen = Map::new();
        chosen.insert("driver".into(), json!("file"));
        let file = schema.members(&arguments, &chosen);
        assert!(names(&file).contains(&"filename"));
        assert!(names(&file).contains(&"node-name"));
        let required: Vec<&str> = file
            .iter()
            .filter(|member| !member.optional)
            .map(|member| member.name.as_str())
            .collect();
        assert_eq!(required, vec!["driver", "filename"]);
    }

    #[test]
    fn nested_member_types_and_value_choices() {
        let schema = qsd_schema();
        let chosen = Map::new();
        let sync = schema
            .member_type("blockdev-mirror", &["sync"], &chosen)
            .unwrap();
        assert_eq!(
            schema.value_choices(&sync),
            vec!["top", "full", "none", "incremental", "bitmap"]
        );
        let auto = schema
            .member_type("blockdev-mirror", &["auto-finalize"], &chosen)
            .unwrap();
        assert_eq!(schema.value_choices(&auto), vec!["true", "false"]);
        // blockdev-create options.driver: nested object, then its discriminator.
        let driver = schema
            .member_type("blockdev-create", &["options", "driver"], &chosen)
            .unwrap();
        assert!(schema
            .value_choices(&driver)
            .contains(&String::from("qcow2")));
        let mut nested = Map::new();
        nested.insert("options".into(), json!({"driver": "file"}));
        let options_type = schema
            .member_type("blockdev-create", &["options"], &nested)
            .unwrap();
        let members = schema.members(&options_type, nested["options"].as_object().unwrap());
        assert!(names(&members).contains(&"filename"));
        assert!(schema
            .member_type("blockdev-mirror", &["nope"], &chosen)
            .is_none());
    }

    #[test]
    fn closure_collects_every_type_used() {
        let schema = qsd_schema();
        let entries = schema.closure("blockdev-mirror").unwrap();
        let names: Vec<&str> = entries
            .iter()
            .map(|entry| entry["name"].as_str().unwrap())
            .collect();
        assert_eq!(names[0], "blockdev-mirror");
        assert!(names.contains(&"28") && names.contains(&"99") && names.contains(&"str"));
        let unique: std::collections::HashSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert!(schema.closure("nope").is_err());
    }

    #[test]
    fn malformed_schemas_are_rejected() {
        assert!(Schema::from_value(json!({"a": 1})).is_err());
        assert!(Schema::from_value(json!([{"meta-type": "command"}])).is_err());
        let empty = Schema::from_value(json!([])).unwrap();
        assert!(empty.is_empty());
        assert!(empty.describe("x", 1).is_err());
    }

    #[test]
    fn wrapping_keeps_lines_short() {
        let mut out = String::new();
        let values: Vec<String> = (0..100).map(|n| format!("value-{n}")).collect();
        write_wrapped_values(&mut out, "    ", &values);
        assert!(out.lines().all(|line| line.len() <= LINE_WIDTH), "{out}");
        assert!(out.lines().count() > 5);
        assert!(out.contains("value-99\n"));
    }
}
