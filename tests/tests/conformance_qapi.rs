//! The generated vocabulary (`qmp_core::qapi`) against the live servers.
//!
//! - Every command and event that `qemu-system-x86_64` and `qemu-storage-daemon` list in
//!   `query-qmp-schema` is generated, and each one's argument members (names, whether
//!   optional, types down to enum values, union variants and alternatives), return type,
//!   `allow-oob` and event data match the live schema. A generated command the server
//!   lacks must carry the `if` condition that explains it.
//! - Every guest-agent command `qemu-ga` lists in `guest-info` is generated, and every
//!   generated one is listed unless its condition excludes it on this build.
//! - Every side-effect-free query the server offers (`query-*`, `x-query-*` without
//!   required arguments) is executed; its reply is decoded with the generated type and
//!   re-encoded, and the re-encoding must equal the reply: nothing dropped, nothing
//!   invented, nothing that fails to decode.
//!
//! The binaries are whatever `QMP_QEMU_SYSTEM`, `QMP_QSD` and `QMP_QGA` select, so the
//! same checks run against any QEMU version the suite is pointed at. Against an older
//! release than the schema's (10.0.2), every difference must be one the schema history
//! records (`qmp::info::HISTORY`, what the generator found comparing 10.0.2's schema with
//! 7.2's): a command, member or enum value added or removed since, a member whose
//! optionality changed, a type that changed kind. Anything else fails as before, and
//! every command or event the history says the older release lacks must indeed be absent.

mod conformance_common;
mod qapi_dispatch;

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use conformance_common::{connect, options, qsd, qsys, qsys_pc, start, watchdog};
use qmp_std::qmp_core::json::RawJson;
use qmp_std::qmp_core::qapi::info::{History, MemberDoc, TypeDoc, TypeDocKind, ValueDoc};
use qmp_std::qmp_core::qapi::{qga, qmp};
use qmp_std::{Client, GuestAgentClient, ServerKind};
use qmp_tests::{agent_launcher, qemu_version, QemuVersion};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(600);

/// A live `query-qmp-schema`, by entity name.
struct Live {
    entities: BTreeMap<String, Value>,
}

impl Live {
    fn fetch(client: &Client) -> Live {
        let schema = client
            .execute_value("query-qmp-schema", json!({}))
            .expect("query-qmp-schema");
        let entities = schema
            .as_array()
            .expect("query-qmp-schema returns an array")
            .iter()
            .map(|entity| (entity["name"].as_str().unwrap().to_string(), entity.clone()))
            .collect();
        Live { entities }
    }

    fn of_meta(&self, meta: &str) -> impl Iterator<Item = (&String, &Value)> {
        let meta = meta.to_string();
        self.entities
            .iter()
            .filter(move |(_, e)| e["meta-type"] == meta.as_str())
    }

    fn entity(&self, name: &str) -> &Value {
        &self.entities[name]
    }
}

/// Compares generated types with live entities, remembering pairs already compared
/// (recursive types).
struct Checker<'l> {
    live: &'l Live,
    types: &'static [TypeDoc],
    /// The schema history of the live server's release, if older than the schema's.
    history: Option<&'static History>,
    seen: HashSet<(String, String)>,
    errors: Vec<String>,
    /// Differences the history explains.
    explained: usize,
}

/// Whether `list` holds `(owner, member)`.
fn has(list: &[(&str, &str)], owner: &str, member: &str) -> bool {
    list.iter().any(|&(o, m)| o == owner && m == member)
}

/// The schema history of `version` in `histories`: `None` for the schema's own release;
/// a panic for a release the generator compared nothing with.
fn history_of(histories: &'static [History], version: QemuVersion) -> Option<&'static History> {
    if version == QemuVersion::CAPTURED {
        return None;
    }
    let release = format!("{}.{}", version.major, version.minor);
    let history = histories.iter().find(|h| h.version == release);
    assert!(
        history.is_some(),
        "QEMU {version}: the vocabulary has no schema history for {release} (scripts/regen-qapi.sh)"
    );
    history
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl Checker<'_> {
    /// A checker for trying one comparison without recording its errors here.
    fn probe(&self) -> Self {
        Checker {
            live: self.live,
            types: self.types,
            history: self.history,
            seen: self.seen.clone(),
            errors: Vec::new(),
            explained: 0,
        }
    }

    fn fail(&mut self, at: &str, what: String) {
        self.errors.push(format!("{at}: {what}"));
    }

    /// Fails with `what` unless the history says so (`explains` on it).
    fn fail_unless(&mut self, explains: impl Fn(&History) -> bool, at: &str, what: String) {
        if self.history.is_some_and(explains) {
            self.explained += 1;
        } else {
            self.fail(at, what);
        }
    }

    /// Our type reference `ours` against live type `live`.
    fn ty(&mut self, ours: &str, live: &str, at: &str) {
        if !self.seen.insert((ours.to_string(), live.to_string())) {
            return;
        }
        let entity = self.live.entity(live);
        let meta = entity["meta-type"].as_str().unwrap_or("");
        if let Some(element) = ours.strip_prefix('[').and_then(|o| o.strip_suffix(']')) {
            if meta == "array" {
                let live_element = entity["element-type"].as_str().unwrap_or("");
                self.ty(element, live_element, &format!("{at}[]"));
            } else {
                self.fail(at, format!("list {ours} is a live {meta}"));
            }
            return;
        }
        let builtin = match ours {
            "str" => Some("string"),
            "int" | "int8" | "int16" | "int32" | "int64" | "uint8" | "uint16" | "uint32"
            | "uint64" | "size" => Some("int"),
            "number" => Some("number"),
            "bool" => Some("boolean"),
            "null" => Some("null"),
            "any" => Some("value"),
            _ => None,
        };
        if let Some(json_type) = builtin {
            if meta != "builtin" || entity["json-type"] != json_type {
                self.fail(at, format!("{ours} is live {meta} {}", entity["json-type"]));
            }
            return;
        }
        let Some(doc) = self.types.iter().find(|t| t.name == ours) else {
            self.fail(at, format!("type {ours} is not generated"));
            return;
        };
        match (doc.kind, meta) {
            (TypeDocKind::Enum(values), "enum") => {
                let live_values = strings(&entity["values"]);
                for value in &live_values {
                    if !values.iter().any(|v| v.name == *value) {
                        self.fail_unless(
                            |h| has(h.removed_values, ours, value),
                            at,
                            format!("enum {ours} lacks live value {value:?}"),
                        );
                    }
                }
                for value in values.iter().filter(|v| v.cond.is_none()) {
                    if !live_values.contains(&value.name) {
                        self.fail_unless(
                            |h| has(h.added_values, ours, value.name),
                            at,
                            format!("enum {ours} value {:?} is not live", value.name),
                        );
                    }
                }
            }
            (TypeDocKind::Struct(members), "object") => {
                if entity.get("tag").is_some() {
                    self.fail_unless(
                        |h| h.reshaped.contains(&ours),
                        at,
                        format!("struct {ours} is a live union"),
                    );
                }
                self.members(ours, members, &entity["members"], at);
            }
            (
                TypeDocKind::Union {
                    members,
                    discriminator,
                    branches,
                },
                "object",
            ) => {
                if entity["tag"] != discriminator {
                    self.fail_unless(
                        |h| h.reshaped.contains(&ours),
                        at,
                        format!("union {ours}: live tag {}", entity["tag"]),
                    );
                }
                if entity.get("tag").is_none() {
                    // A struct on this server (a union since, by the history's word, or
                    // failed above): members outside our base belong to our branches.
                    self.untagged(ours, members, branches, &entity["members"], at);
                } else {
                    self.members(ours, members, &entity["members"], at);
                }
                for variant in entity["variants"].as_array().into_iter().flatten() {
                    let case = variant["case"].as_str().unwrap_or("");
                    let live_type = variant["type"].as_str().unwrap_or("");
                    match branches.iter().find(|b| b.name == case) {
                        Some(branch) => self.ty(branch.ty, live_type, &format!("{at}<{case}>")),
                        None => {
                            let empty = self.live.entity(live_type)["members"]
                                .as_array()
                                .is_none_or(Vec::is_empty);
                            if !empty {
                                self.fail(at, format!("union {ours} lacks live branch {case:?}"));
                            }
                        }
                    }
                }
            }
            (TypeDocKind::Alternate(branches), "alternate") => {
                for alternative in entity["members"].as_array().into_iter().flatten() {
                    let live_type = alternative["type"].as_str().unwrap_or("");
                    let fits = branches.iter().any(|b| {
                        let mut probe = self.probe();
                        probe.ty(b.ty, live_type, at);
                        probe.errors.is_empty()
                    });
                    if !fits {
                        self.fail(
                            at,
                            format!("alternate {ours}: no branch fits live {live_type}"),
                        );
                    }
                }
            }
            (_, meta) => self.fail(at, format!("{ours} is a live {meta}")),
        }
    }

    /// Our union `owner` (base `base`, branches `branches`) against a live struct: the
    /// base against the live members of the same names, every other live member against
    /// the branch member of its name.
    fn untagged(
        &mut self,
        owner: &str,
        base: &[MemberDoc],
        branches: &[ValueDoc],
        live: &Value,
        at: &str,
    ) {
        let (in_base, rest): (Vec<Value>, Vec<Value>) = live
            .as_array()
            .into_iter()
            .flatten()
            .cloned()
            .partition(|m| base.iter().any(|b| m["name"] == b.name));
        self.members(owner, base, &Value::Array(in_base), at);
        for member in rest {
            let name = member["name"].as_str().unwrap_or("");
            let at = format!("{at}.{name}");
            let found = branches
                .iter()
                .filter_map(|b| self.types.iter().find(|t| t.name == b.ty))
                .filter_map(|t| match t.kind {
                    TypeDocKind::Struct(list) => list.iter().find(|m| m.name == name),
                    _ => None,
                })
                .next();
            match found {
                Some(ours) => self.ty(ours.ty, member["type"].as_str().unwrap_or(""), &at),
                None => self.fail(&at, "live member in no branch".into()),
            }
        }
    }

    /// Our members of `owner` (a type, or a command or event for members given in place)
    /// against a live object's members.
    fn members(&mut self, owner: &str, ours: &[MemberDoc], live: &Value, at: &str) {
        let live: Vec<&Value> = live.as_array().into_iter().flatten().collect();
        for member in &live {
            let name = member["name"].as_str().unwrap_or("");
            let at = format!("{at}.{name}");
            let Some(our) = ours.iter().find(|m| m.name == name) else {
                self.fail_unless(
                    |h| has(h.removed_members, owner, name),
                    &at,
                    "live member not generated".into(),
                );
                continue;
            };
            let optional = member.get("default").is_some();
            if our.optional != optional {
                self.fail_unless(
                    |h| {
                        if optional {
                            has(h.optional_members, owner, name)
                        } else {
                            has(h.required_members, owner, name)
                        }
                    },
                    &at,
                    format!("optional {} but live {optional}", our.optional),
                );
            }
            for feature in strings(&member["features"]) {
                if !our.features.contains(&feature) {
                    self.fail(&at, format!("live feature {feature:?} not generated"));
                }
            }
            let live_type = member["type"].as_str().unwrap_or("");
            if self
                .history
                .is_some_and(|h| has(h.retyped_members, owner, name))
            {
                // Of another type then: the types may differ, by the history's word.
                let mut probe = self.probe();
                probe.ty(our.ty, live_type, &at);
                self.explained += probe.explained + usize::from(!probe.errors.is_empty());
            } else {
                self.ty(our.ty, live_type, &at);
            }
        }
        for our in ours.iter().filter(|m| m.cond.is_none()) {
            if !live.iter().any(|m| m["name"] == our.name) {
                self.fail_unless(
                    |h| has(h.added_members, owner, our.name),
                    &format!("{at}.{}", our.name),
                    "generated member not live".into(),
                );
            }
        }
    }
}

/// Checks the generated QMP vocabulary against `live`, a server of QEMU `version`;
/// returns the generated commands and events the server lacks (each with its condition,
/// or as added since its release) and how many differences the schema history explains.
fn check_qmp(
    live: &Live,
    label: &str,
    strict_presence: bool,
    version: QemuVersion,
) -> (Vec<String>, usize) {
    let history = history_of(qmp::info::HISTORY, version);
    let mut checker = Checker {
        live,
        types: qmp::info::TYPES,
        history,
        seen: HashSet::new(),
        errors: Vec::new(),
        explained: 0,
    };
    let mut absent = Vec::new();
    for (name, entity) in live.of_meta("command") {
        let Some(ours) = qmp::info::COMMANDS.iter().find(|c| c.name == *name) else {
            checker.fail_unless(
                |h| h.removed.contains(&name.as_str()),
                label,
                format!("live command {name} is not generated"),
            );
            continue;
        };
        let at = format!("{label} {name}");
        let live_arg_type = entity["arg-type"].as_str().unwrap();
        match ours.args_type {
            // A named struct or union: compared as a type (unions have variants).
            Some(args_type) => checker.ty(args_type, live_arg_type, &format!("{at} arguments")),
            None => {
                let live_args = live.entity(live_arg_type);
                checker.members(
                    ours.name,
                    ours.args,
                    &live_args["members"],
                    &format!("{at} arguments"),
                );
            }
        }
        let live_ret = entity["ret-type"].as_str().unwrap();
        match ours.returns {
            Some(ret) => checker.ty(ret, live_ret, &format!("{at} returns")),
            None => {
                let members = live.entity(live_ret)["members"].as_array().map(Vec::len);
                if members.unwrap_or(0) != 0 {
                    checker.fail(&at, "returns {} but the live one has members".into());
                }
            }
        }
        let live_oob = entity.get("allow-oob") == Some(&Value::Bool(true));
        if ours.allow_oob != live_oob {
            checker.fail(
                &at,
                format!("allow-oob {} but live {live_oob}", ours.allow_oob),
            );
        }
        for feature in strings(&entity["features"]) {
            if !ours.features.contains(&feature) {
                checker.fail(&at, format!("live feature {feature:?} not generated"));
            }
        }
    }
    for (name, entity) in live.of_meta("event") {
        let Some(ours) = qmp::info::EVENTS.iter().find(|e| e.name == *name) else {
            checker.fail_unless(
                |h| h.removed.contains(&name.as_str()),
                label,
                format!("live event {name} is not generated"),
            );
            continue;
        };
        let at = format!("{label} event {name}");
        match entity["arg-type"].as_str() {
            Some(data) if ours.data_type.is_some() => {
                checker.ty(ours.data_type.unwrap_or_default(), data, &at)
            }
            Some(data) => {
                checker.members(ours.name, ours.members, &live.entity(data)["members"], &at)
            }
            None if ours.members.is_empty() => {}
            None => checker.fail(&at, "has data but the live one has none".into()),
        }
    }
    let live_names: BTreeSet<&str> = live
        .entities
        .values()
        .filter(|e| e["meta-type"] == "command" || e["meta-type"] == "event")
        .filter_map(|e| e["name"].as_str())
        .collect();
    let generated = qmp::info::COMMANDS
        .iter()
        .map(|c| (c.name, c.cond))
        .chain(qmp::info::EVENTS.iter().map(|e| (e.name, e.cond)));
    for (name, cond) in generated {
        let added = history.is_some_and(|h| h.added.contains(&name));
        if live_names.contains(name) {
            if added {
                checker.fail(
                    label,
                    format!("{name} is live, but the schema history says QEMU {version} lacks it"),
                );
            }
            continue;
        }
        match cond {
            Some(cond) => absent.push(format!("{name} (needs {cond})")),
            None if added => {
                checker.explained += 1;
                absent.push(format!(
                    "{name} (added after {}.{})",
                    version.major, version.minor
                ));
            }
            None if strict_presence => checker.fail(
                label,
                format!("generated {name} is not live and has no condition"),
            ),
            None => absent.push(name.to_string()),
        }
    }
    assert!(
        checker.errors.is_empty(),
        "{label}: {} mismatches:\n{}",
        checker.errors.len(),
        checker.errors.join("\n")
    );
    (absent, checker.explained)
}

#[test]
fn generated_vocabulary_matches_the_live_schemas() {
    let _guard = watchdog("qapi_schemas", LIMIT);
    let version = qemu_version(ServerKind::System);
    let system = qsys();
    let client = connect(&system, options());
    let live = Live::fetch(&client);
    let (absent, explained) = check_qmp(&live, "qemu-system-x86_64", true, version);
    eprintln!(
        "qemu-system-x86_64 {version}: {} live commands, {} live events, all generated; \
         {} generated commands/events absent (their conditions exclude them, or added since): {}; \
         {explained} differences explained by the schema history",
        live.of_meta("command").count(),
        live.of_meta("event").count(),
        absent.len(),
        absent.join(", ")
    );

    // qemu-storage-daemon has a subset of the modules; only what it lists is checked.
    let version = qemu_version(ServerKind::StorageDaemon);
    let daemon = qsd();
    let client = connect(&daemon, options());
    let live = Live::fetch(&client);
    let (_, explained) = check_qmp(&live, "qemu-storage-daemon", false, version);
    eprintln!(
        "qemu-storage-daemon {version}: {} live commands, {} live events, all generated; \
         {explained} differences explained by the schema history",
        live.of_meta("command").count(),
        live.of_meta("event").count()
    );
}

#[test]
fn generated_guest_agent_commands_are_those_of_qemu_ga() {
    let _guard = watchdog("qapi_guest_agent", LIMIT);
    // An older agent offers fewer commands: every one it offers must be generated, and
    // every generated one must be offered unless its condition excludes it or the schema
    // history says it was added since.
    let version = qemu_version(ServerKind::GuestAgent);
    let agent = start(agent_launcher());
    let client = GuestAgentClient::connect_unix(agent.socket_path(), options())
        .unwrap_or_else(|error| panic!("{error}; agent output: {}", agent.output()));
    let info = client.execute_value("guest-info", Value::Null).unwrap();
    let live: BTreeSet<&str> = info["supported_commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let generated: BTreeSet<&str> = qga::info::COMMANDS.iter().map(|c| c.name).collect();
    let missing: Vec<_> = live.difference(&generated).collect();
    assert!(
        missing.is_empty(),
        "qemu-ga commands not generated: {missing:?}"
    );
    let mut absent = Vec::new();
    for command in qga::info::COMMANDS {
        if live.contains(command.name) {
            continue;
        }
        match command.cond {
            Some(cond) => absent.push(format!("{} (needs {cond})", command.name)),
            None if history_of(qga::info::HISTORY, version)
                .is_some_and(|h| h.added.contains(&command.name)) =>
            {
                absent.push(format!(
                    "{} (added after {}.{})",
                    command.name, version.major, version.minor
                ))
            }
            None => panic!("generated {} is not listed by qemu-ga", command.name),
        }
    }
    eprintln!(
        "qemu-ga: {} live commands, all generated; {} generated absent: {}",
        live.len(),
        absent.len(),
        absent.join(", ")
    );
}

/// Removes from `value`, a reply of type `ty` (a type reference of `qmp::info`), every
/// member the schema history says only the older release has, wherever it occurs.
fn without_removed(value: &mut Value, ty: &str, history: &History) {
    if let Some(element) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        for item in value.as_array_mut().into_iter().flatten() {
            without_removed(item, element, history);
        }
        return;
    }
    let Some(doc) = qmp_std::qmp_core::qapi::info::type_doc(qmp::info::TYPES, ty) else {
        return; // a built-in type
    };
    let Some(object) = value.as_object_mut() else {
        return;
    };
    // The members the type has, with their types, and the owners their history is under.
    let (mut members, mut owners): (Vec<&MemberDoc>, Vec<&str>) = (Vec::new(), vec![ty]);
    match doc.kind {
        TypeDocKind::Struct(list) => members.extend(list),
        TypeDocKind::Union {
            members: base,
            discriminator,
            branches,
        } => {
            members.extend(base);
            let tag = object.get(discriminator).and_then(Value::as_str);
            if let Some(branch) = branches.iter().find(|b| Some(b.name) == tag) {
                owners.push(branch.ty);
                if let Some(TypeDocKind::Struct(list)) =
                    qmp_std::qmp_core::qapi::info::type_doc(qmp::info::TYPES, branch.ty)
                        .map(|d| d.kind)
                {
                    members.extend(list);
                }
            }
        }
        TypeDocKind::Enum(_) | TypeDocKind::Alternate(_) => return,
    }
    object.retain(|key, _| {
        members.iter().any(|m| m.name == key)
            || !owners.iter().any(|o| has(history.removed_members, o, key))
    });
    for member in members {
        if let Some(inner) = object.get_mut(member.name) {
            without_removed(inner, member.ty, history);
        }
    }
}

/// Runs every side-effect-free query `client` (a server of QEMU `version`) offers,
/// decoding and re-encoding each reply with the generated type; returns (decoded, error
/// replies, queries the schema history says were removed since `version`).
fn queries_round_trip(
    client: &Client,
    live: &Live,
    label: &str,
    version: QemuVersion,
) -> (usize, Vec<String>, Vec<String>) {
    let history = history_of(qmp::info::HISTORY, version);
    let mut removed = Vec::new();
    let mut out = vec![0u8; 16 << 20];
    let mut failures = Vec::new();
    let mut decoded = 0;
    let mut refused = Vec::new();
    for (name, entity) in live.of_meta("command") {
        if !(name.starts_with("query-") || name.starts_with("x-query-")) {
            continue;
        }
        let args = live.entity(entity["arg-type"].as_str().unwrap());
        let required = args["members"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m.get("default").is_none());
        if required {
            continue;
        }
        let reply = match client.execute_value(name, json!({})) {
            Ok(reply) => reply,
            Err(error) => {
                refused.push(format!("{name} ({error})"));
                continue;
            }
        };
        let bytes = serde_json::to_vec(&reply).unwrap();
        let raw = RawJson::parse(&bytes).unwrap();
        match qapi_dispatch::qmp_reply(name, raw, &mut out) {
            None if history.is_some_and(|h| h.removed.contains(&name.as_str())) => {
                removed.push(name.clone())
            }
            None => failures.push(format!("{name}: not generated")),
            Some(Err(error)) => failures.push(format!("{name}: {error}: {reply}")),
            Some(Ok(n)) => {
                let again: Value = serde_json::from_slice(&out[..n]).unwrap();
                // From an older server: less the members the schema history says it has
                // and the vocabulary's release removed.
                let mut expected = reply.clone();
                if let (Some(history), Some(ret)) = (
                    history,
                    qmp_std::qmp_core::qapi::info::command(qmp::info::COMMANDS, name)
                        .and_then(|c| c.returns),
                ) {
                    without_removed(&mut expected, ret, history);
                }
                if again == expected {
                    decoded += 1;
                } else {
                    failures.push(format!(
                        "{name}: re-encoded\n  {again}\nbut the reply was\n  {reply}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{label}: {} queries do not round-trip:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (decoded, refused, removed)
}

#[test]
fn every_query_reply_decodes_with_its_generated_type() {
    let _guard = watchdog("qapi_queries", LIMIT);
    for (label, process, kind) in [
        ("qemu-system-x86_64 -M none", qsys(), ServerKind::System),
        ("qemu-system-x86_64 -M pc -S", qsys_pc(), ServerKind::System),
        ("qemu-storage-daemon", qsd(), ServerKind::StorageDaemon),
    ] {
        let version = qemu_version(kind);
        let client = connect(&process, options());
        // Something in the block layer, so the block queries have content to decode.
        client
            .execute_value(
                "blockdev-add",
                json!({"driver": "null-co", "node-name": "null0", "size": 1048576}),
            )
            .unwrap();
        let live = Live::fetch(&client);
        let (decoded, refused, removed) = queries_round_trip(&client, &live, label, version);
        assert!(decoded > 10, "{label}: only {decoded} queries decoded");
        eprintln!(
            "{label} {version}: {decoded} queries decoded and re-encoded identically; {} refused by the server: {}; \
             {} removed since (not generated): {}",
            refused.len(),
            refused.join(", "),
            removed.len(),
            removed.join(", ")
        );
    }
}
