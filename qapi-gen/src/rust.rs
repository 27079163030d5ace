//! Writes the schema as Rust source for qmp-core.
//!
//! Every QAPI type becomes one Rust type. Which impls it gets depends on where the schema
//! uses it ([`Dir`]): types reachable from command arguments serialize (strings are
//! `&'a str`, lists `&'a [T]`); types reachable from replies and events decode from the
//! receive buffer with `FromRawJson` (strings are `JsonStr<'a>`, lists `JsonArray<'a, T>`);
//! types used both ways do both, with the decoding representation. Members whose type
//! contains the containing type again (recursive types) are `Lazy<'a, T>` (decoded on
//! demand) or `&'a T` (arguments), so every type has a finite size.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::history::Before;
use crate::parser::Doc;
use crate::schema::{Branch, Cond, Data, Def, Feature, Kind, Member, Schema, TypeRef};

/// Where a type is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Only in command arguments: serialized.
    In,
    /// Only in replies and events (or nowhere): decoded.
    Out,
    /// Both.
    Both,
}

impl Dir {
    fn decodes(self) -> bool {
        self != Dir::In
    }
    /// Every type serializes: arguments must, and replies and events re-encode (the
    /// conformance test decodes live replies and compares their re-encoding).
    fn encodes(self) -> bool {
        true
    }
}

/// The generator's view of one schema.
pub struct Gen<'s> {
    schema: &'s Schema,
    /// Direction of each type.
    dirs: BTreeMap<String, Dir>,
    /// Types that need the `'a` lifetime.
    lifetimed: BTreeSet<String>,
    /// (container, member type) pairs that form a cycle.
    recursive: BTreeSet<(String, String)>,
    /// Rust names of commands and events.
    names: BTreeMap<String, String>,
}

const INT_TYPES: [(&str, &str); 11] = [
    ("int", "i64"),
    ("int8", "i8"),
    ("int16", "i16"),
    ("int32", "i32"),
    ("int64", "i64"),
    ("uint8", "u8"),
    ("uint16", "u16"),
    ("uint32", "u32"),
    ("uint64", "u64"),
    ("size", "u64"),
    ("number", "f64"),
];

fn scalar(name: &str) -> Option<&'static str> {
    INT_TYPES
        .iter()
        .find(|(q, _)| *q == name)
        .map(|(_, r)| *r)
        .or(match name {
            "bool" => Some("bool"),
            "null" => Some("()"),
            _ => None,
        })
}

/// `kebab-or_snake` to `CamelCase` (keeping the case of the other letters).
pub fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in name.chars() {
        if c == '-' || c == '_' || c == '.' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'N');
    }
    out
}

/// The Rust name of a QAPI type: its own name, except where it would hide a name of
/// Rust's prelude (`String` -> `QapiString`).
pub fn type_name(name: &str) -> String {
    let camel = camel(name);
    match camel.as_str() {
        "String" | "Option" | "Result" | "Vec" | "Box" => format!("Qapi{camel}"),
        _ => camel,
    }
}

/// An event name (`BLOCK_JOB_COMPLETED`) to `BlockJobCompletedEvent`.
pub fn event_name(name: &str) -> String {
    camel(&name.to_lowercase()) + "Event"
}

/// A member name to a snake_case field name (raw identifier for keywords).
pub fn field(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'n');
    }
    const KEYWORDS: [&str; 40] = [
        "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern",
        "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
        "pub", "ref", "return", "static", "struct", "trait", "true", "type", "unsafe", "use",
        "where", "while", "abstract", "become", "box", "do", "final", "gen",
    ];
    const MORE: [&str; 8] = [
        "macro", "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
    ];
    if matches!(out.as_str(), "self" | "super" | "crate" | "_") {
        out.push('_');
    } else if KEYWORDS.contains(&out.as_str()) || MORE.contains(&out.as_str()) {
        out.insert_str(0, "r#");
    }
    out
}

/// Escapes text for rustdoc: no link brackets, no HTML, no indented (doctest) code.
fn doc_text(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            line.trim_start()
                .split(' ')
                .map(doc_word)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// One word of doc text: URLs become autolinks, everything else is escaped.
fn doc_word(word: &str) -> String {
    let bare = word
        .trim_start_matches('<')
        .trim_end_matches(['>', '.', ',', ')']);
    if bare.starts_with("http://") || bare.starts_with("https://") {
        let url = bare.trim_end_matches('>');
        let start = word.find(url).unwrap_or(0);
        let tail = &word[start + url.len()..];
        return format!("<{url}>{}", tail.trim_start_matches('>'));
    }
    word.replace('\\', "\\\\")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn push_doc(out: &mut String, indent: &str, lines: &[String]) {
    for line in lines {
        if line.is_empty() {
            let _ = writeln!(out, "{indent}///");
        } else {
            let _ = writeln!(out, "{indent}/// {line}");
        }
    }
}

/// The doc line of a member that an older release's schema lacks or has as optional.
fn before_line(before: &Before) -> String {
    let v = &before.version;
    match (before.present, before.relaxed) {
        (false, true) => format!(
            "*Not sent by QEMU {v}* (added later): optional here, although this schema \
             requires it, so that {v}'s replies decode."
        ),
        (true, true) => format!(
            "*Optional in QEMU {v}*: optional here, although this schema requires it, so \
             that {v}'s replies decode."
        ),
        (false, false) => format!("*Not in QEMU {v}'s schema* (added later)."),
        (true, false) => format!("*Optional in QEMU {v}'s schema.*"),
    }
}

/// The doc line of a command, event or enum value an older release's schema lacks.
fn absent_line(version: &Option<String>) -> Option<String> {
    version
        .as_ref()
        .map(|v| format!("*Not in QEMU {v}'s schema* (added later)."))
}

fn cond_line(cond: &Option<Cond>) -> Option<String> {
    cond.as_ref()
        .map(|c| format!("*Only when QEMU is built with* `{c}`."))
}

fn feature_lines(features: &[Feature], doc: Option<&Doc>) -> Vec<String> {
    let mut out = Vec::new();
    for f in features {
        let label = match f.name.as_str() {
            "deprecated" => "**Deprecated**".to_string(),
            "unstable" => "**Unstable**".to_string(),
            other => format!("Feature `{other}`"),
        };
        let text = doc.and_then(|d| d.feature(&f.name)).unwrap_or("");
        let mut line = format!("{label}: {}", doc_text(text).join(" "));
        if let Some(c) = &f.cond {
            let _ = write!(line, " (only with `{c}`)");
        }
        out.push(line.trim_end().trim_end_matches(':').to_string());
    }
    out
}

/// The rustdoc of a definition: body, features, condition, returns, since, examples.
fn def_doc(def: &Def, what: &str) -> Vec<String> {
    let mut lines = vec![format!("QAPI {what} `{}` ({}).", def.name, def.module)];
    if let Some(doc) = &def.doc {
        if !doc.body.is_empty() {
            lines.push(String::new());
            lines.extend(doc_text(&doc.body));
        }
        for (name, text) in &doc.sections {
            if name == "Example" {
                lines.push(String::new());
                lines.push("Example:".into());
                lines.push("```text".into());
                lines.extend(text.lines().map(|l| l.trim_end().to_string()));
                lines.push("```".into());
            } else if !text.is_empty() {
                lines.push(String::new());
                let text = doc_text(text);
                if name.is_empty() {
                    lines.extend(text);
                } else {
                    lines.push(format!("{name}: {}", text.join(" ")));
                }
            }
        }
    }
    let features = feature_lines(&def.features, def.doc.as_ref());
    if !features.is_empty() {
        lines.push(String::new());
        lines.extend(features);
    }
    if let Some(c) = cond_line(&def.cond) {
        lines.push(String::new());
        lines.push(c);
    }
    if let Some(line) = absent_line(&def.absent_in) {
        lines.push(String::new());
        lines.push(line);
    }
    lines
}

fn member_doc(m: &Member, doc: Option<&Doc>) -> Vec<String> {
    let mut lines = vec![format!(
        "`{}`{}",
        m.name,
        if m.optional { " (optional)" } else { "" }
    )];
    if !m.doc.is_empty() {
        let text = doc_text(&m.doc);
        lines[0].push_str(": ");
        lines[0].push_str(&text[0]);
        lines.extend(text[1..].iter().cloned());
    }
    if let Some(before) = &m.before {
        lines.push(String::new());
        lines.push(before_line(before));
    }
    let features = feature_lines(&m.features, doc);
    if !features.is_empty() {
        lines.push(String::new());
        lines.extend(features);
    }
    if let Some(c) = cond_line(&m.cond) {
        lines.push(String::new());
        lines.push(c);
    }
    lines
}

impl<'s> Gen<'s> {
    /// Analyses `schema`.
    pub fn new(schema: &'s Schema) -> Result<Gen<'s>, String> {
        let mut gen = Gen {
            schema,
            dirs: BTreeMap::new(),
            lifetimed: BTreeSet::new(),
            recursive: BTreeSet::new(),
            names: BTreeMap::new(),
        };
        gen.directions();
        gen.cycles();
        gen.lifetimes();
        gen.naming()?;
        Ok(gen)
    }

    /// Types directly used by `def` (members, branches, list elements).
    fn uses(&self, def: &Def) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut member = |ty: &TypeRef| {
            out.push((ty.name().to_string(), matches!(ty, TypeRef::List(_))));
        };
        match &def.kind {
            Kind::Struct { members, .. } => members.iter().for_each(|m| member(&m.ty)),
            Kind::Union { base, branches, .. } => {
                base.iter().for_each(|m| member(&m.ty));
                branches.iter().for_each(|b| member(&b.ty));
            }
            Kind::Alternate { branches } => branches.iter().for_each(|b| member(&b.ty)),
            _ => {}
        }
        out.retain(|(name, _)| self.schema.get(name).is_some());
        out
    }

    fn directions(&mut self) {
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for def in &self.schema.defs {
            match &def.kind {
                Kind::Command { data, returns, .. } => {
                    match data {
                        Data::Named(name) => inputs.push(name.clone()),
                        Data::Members(members) => {
                            inputs.extend(members.iter().map(|m| m.ty.name().to_string()))
                        }
                        Data::None => {}
                    }
                    if let Some(r) = returns {
                        outputs.push(r.name().to_string());
                    }
                }
                Kind::Event { data } => match data {
                    Data::Named(name) => outputs.push(name.clone()),
                    Data::Members(members) => {
                        outputs.extend(members.iter().map(|m| m.ty.name().to_string()))
                    }
                    Data::None => {}
                },
                _ => {}
            }
        }
        let reach = |roots: Vec<String>| -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut stack = roots;
            while let Some(name) = stack.pop() {
                let Some(def) = self.schema.get(&name) else {
                    continue;
                };
                if !seen.insert(name) {
                    continue;
                }
                stack.extend(self.uses(def).into_iter().map(|(n, _)| n));
            }
            seen
        };
        let ins = reach(inputs);
        let outs = reach(outputs);
        for def in &self.schema.defs {
            let dir = match (ins.contains(&def.name), outs.contains(&def.name)) {
                (true, true) => Dir::Both,
                (true, false) => Dir::In,
                _ => Dir::Out,
            };
            self.dirs.insert(def.name.clone(), dir);
        }
        // Types used nowhere (bases, for instance) decode; whatever a decoding type
        // contains must decode too, and whatever an encoding one contains must encode.
        loop {
            let mut changed = false;
            for def in &self.schema.defs {
                let dir = self.dir(&def.name);
                for (used, _) in self.uses(def) {
                    let old = self.dir(&used);
                    let new = match (
                        old,
                        dir.decodes() && !old.decodes(),
                        dir.encodes() && !old.encodes(),
                    ) {
                        (_, false, false) => old,
                        _ => Dir::Both,
                    };
                    if new != old {
                        self.dirs.insert(used, new);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Finds members (not lists) whose type leads back to the containing type.
    fn cycles(&mut self) {
        let direct: BTreeMap<&str, Vec<String>> = self
            .schema
            .defs
            .iter()
            .map(|d| {
                let uses = self
                    .uses(d)
                    .into_iter()
                    .filter(|(_, list)| !list)
                    .map(|(n, _)| n)
                    .collect();
                (d.name.as_str(), uses)
            })
            .collect();
        for (&name, uses) in &direct {
            for used in uses {
                // Does `used` reach `name` through direct containment?
                let mut seen = BTreeSet::new();
                let mut stack = vec![used.as_str()];
                let mut found = false;
                while let Some(n) = stack.pop() {
                    if n == name {
                        found = true;
                        break;
                    }
                    if !seen.insert(n) {
                        continue;
                    }
                    if let Some(next) = direct.get(n) {
                        stack.extend(next.iter().map(String::as_str));
                    }
                }
                if found {
                    self.recursive.insert((name.to_string(), used.clone()));
                }
            }
        }
    }

    fn lifetimes(&mut self) {
        // Enums carry their unknown value; strings, lists and `any` borrow.
        loop {
            let mut changed = false;
            for def in &self.schema.defs {
                if self.lifetimed.contains(&def.name) {
                    continue;
                }
                let needs = match &def.kind {
                    Kind::Enum { .. } | Kind::Union { .. } => true,
                    _ => {
                        let mut tys: Vec<&TypeRef> = Vec::new();
                        match &def.kind {
                            Kind::Struct { members, .. } => {
                                tys.extend(members.iter().map(|m| &m.ty))
                            }
                            Kind::Alternate { branches } => {
                                tys.extend(branches.iter().map(|b| &b.ty))
                            }
                            _ => {}
                        }
                        tys.iter().any(|t| match t {
                            TypeRef::List(_) => true,
                            TypeRef::Named(n) => {
                                matches!(n.as_str(), "str" | "any" | "QType")
                                    || self.lifetimed.contains(n)
                                    || self.recursive.contains(&(def.name.clone(), n.clone()))
                            }
                        })
                    }
                };
                if needs {
                    self.lifetimed.insert(def.name.clone());
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    fn naming(&mut self) -> Result<(), String> {
        let types: BTreeSet<String> = self
            .schema
            .defs
            .iter()
            .filter(|d| !matches!(d.kind, Kind::Command { .. } | Kind::Event { .. }))
            .map(|d| type_name(&d.name))
            .collect();
        let mut used = types.clone();
        for def in &self.schema.defs {
            let name = match def.kind {
                Kind::Command { .. } => {
                    let base = camel(&def.name);
                    if used.contains(&base) {
                        base + "Command"
                    } else {
                        base
                    }
                }
                Kind::Event { .. } => event_name(&def.name),
                _ => type_name(&def.name),
            };
            if matches!(def.kind, Kind::Command { .. } | Kind::Event { .. })
                && !used.insert(name.clone())
            {
                return Err(format!("name clash: {name}"));
            }
            self.names.insert(def.name.clone(), name);
        }
        Ok(())
    }

    fn dir(&self, name: &str) -> Dir {
        self.dirs.get(name).copied().unwrap_or(Dir::Out)
    }

    fn lt(&self, name: &str) -> &'static str {
        if self.lifetimed.contains(name) {
            "<'a>"
        } else {
            ""
        }
    }

    /// The Rust type of a type reference inside a type of direction `dir`.
    fn rust_type(&self, ty: &TypeRef, dir: Dir, container: &str) -> String {
        let named = |name: &str| -> String {
            if let Some(s) = scalar(name) {
                return s.to_string();
            }
            match name {
                "str" if dir == Dir::In => "&'a str".into(),
                "str" => "JsonStr<'a>".into(),
                "any" => "RawJson<'a>".into(),
                "QType" => "QType<'a>".into(),
                _ => format!("{}{}", type_name(name), self.lt(name)),
            }
        };
        match ty {
            TypeRef::List(name) => {
                if dir == Dir::In {
                    format!("&'a [{}]", named(name))
                } else {
                    format!("JsonArray<'a, {}>", named(name))
                }
            }
            TypeRef::Named(name) => {
                if self
                    .recursive
                    .contains(&(container.to_string(), name.clone()))
                {
                    if dir == Dir::In {
                        format!("&'a {}", named(name))
                    } else {
                        format!("Lazy<'a, {}>", named(name))
                    }
                } else {
                    named(name)
                }
            }
        }
    }

    /// Generates every type, command and event of `modules` (all when empty).
    pub fn module(&self, module: &str) -> String {
        let mut out = String::new();
        for def in self.schema.defs.iter().filter(|d| d.module == module) {
            self.def(&mut out, def);
        }
        out
    }

    /// The modules in schema order.
    pub fn modules(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for def in &self.schema.defs {
            if !seen.contains(&def.module) {
                seen.push(def.module.clone());
            }
        }
        seen
    }

    fn def(&self, out: &mut String, def: &Def) {
        match &def.kind {
            Kind::Enum { values } => self.enumeration(out, def, values),
            Kind::Struct { members, .. } => {
                let dir = self.dir(&def.name);
                self.structure(
                    out,
                    def,
                    &type_name(&def.name),
                    members,
                    dir,
                    &def_doc(def, "struct"),
                );
            }
            Kind::Union {
                base,
                discriminator,
                tag_enum,
                branches,
                ..
            } => self.union(out, def, base, discriminator, tag_enum, branches),
            Kind::Alternate { branches } => self.alternate(out, def, branches),
            Kind::Command {
                data,
                returns,
                allow_oob,
                success_response,
            } => self.command(
                out,
                def,
                data,
                returns.as_ref(),
                *allow_oob,
                *success_response,
            ),
            Kind::Event { data } => self.event(out, def, data),
        }
    }

    fn enumeration(&self, out: &mut String, def: &Def, values: &[crate::schema::EnumValue]) {
        let name = type_name(&def.name);
        let mut variants: Vec<String> = Vec::new();
        for v in values {
            let mut variant = camel(&v.name);
            while variants.contains(&variant) {
                variant.push('_');
            }
            variants.push(variant);
        }
        let unknown = if variants.iter().any(|v| v == "Unknown") {
            "UnknownValue"
        } else {
            "Unknown"
        };
        push_doc(out, "", &def_doc(def, "enum"));
        let _ = writeln!(out, "#[derive(Debug, Clone, Copy, PartialEq, Eq)]");
        let _ = writeln!(out, "pub enum {name}<'a> {{");
        for (v, variant) in values.iter().zip(&variants) {
            let mut lines = vec![format!("`{}`", v.name)];
            if !v.doc.is_empty() {
                let text = doc_text(&v.doc);
                lines[0] = format!("`{}`: {}", v.name, text[0]);
                lines.extend(text[1..].iter().cloned());
            }
            let features = feature_lines(&v.features, def.doc.as_ref());
            if !features.is_empty() {
                lines.push(String::new());
                lines.extend(features);
            }
            if let Some(c) = cond_line(&v.cond) {
                lines.push(String::new());
                lines.push(c);
            }
            if let Some(line) = absent_line(&v.absent_in) {
                lines.push(String::new());
                lines.push(line);
            }
            push_doc(out, "    ", &lines);
            let _ = writeln!(out, "    {variant},");
        }
        let _ = writeln!(
            out,
            "    /// A value this schema does not know (sent by a newer QEMU), as on the wire.\n    {unknown}(JsonStr<'a>),"
        );
        let _ = writeln!(out, "}}\n");
        let _ = writeln!(out, "impl<'a> {name}<'a> {{");
        let _ = writeln!(
            out,
            "    /// Every value this schema knows, in schema order."
        );
        let _ = writeln!(out, "    pub const VALUES: &'static [&'static str] = &[");
        for v in values {
            let _ = writeln!(out, "        {:?},", v.name);
        }
        let _ = writeln!(out, "    ];\n");
        let _ = writeln!(
            out,
            "    /// The value's wire name; for an unknown value, its text as on the wire (still escaped)."
        );
        let _ = writeln!(out, "    #[inline]\n    pub fn as_str(&self) -> &'a str {{");
        let _ = writeln!(out, "        match self {{");
        for (v, variant) in values.iter().zip(&variants) {
            let _ = writeln!(out, "            {name}::{variant} => {:?},", v.name);
        }
        let _ = writeln!(out, "            {name}::{unknown}(text) => text.raw(),");
        let _ = writeln!(out, "        }}\n    }}\n");
        let _ = writeln!(
            out,
            "    /// The value named `text` (an unknown one if this schema does not know it)."
        );
        let _ = writeln!(
            out,
            "    #[inline]\n    pub fn from_json_str(text: JsonStr<'a>) -> Self {{"
        );
        let _ = writeln!(out, "        match text.as_plain() {{");
        for (v, variant) in values.iter().zip(&variants) {
            let _ = writeln!(out, "            Some({:?}) => {name}::{variant},", v.name);
        }
        let _ = writeln!(out, "            _ => {name}::{unknown}(text),");
        let _ = writeln!(out, "        }}\n    }}\n}}\n");
        let _ = writeln!(out, "impl<'a> FromRawJson<'a> for {name}<'a> {{");
        let _ = writeln!(
            out,
            "    #[inline]\n    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {{"
        );
        let _ = writeln!(
            out,
            "        raw.as_json_str().map(Self::from_json_str).ok_or(rt::WRONG_TYPE)"
        );
        let _ = writeln!(out, "    }}\n}}\n");
        let _ = writeln!(
            out,
            "/// The value's name; an unknown value's text, unescaped."
        );
        let _ = writeln!(out, "impl core::fmt::Display for {name}<'_> {{");
        let _ = writeln!(
            out,
            "    #[inline]\n    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {{"
        );
        let _ = writeln!(out, "        match self {{");
        let _ = writeln!(
            out,
            "            {name}::{unknown}(text) => core::fmt::Display::fmt(text, f),"
        );
        let _ = writeln!(out, "            known => f.write_str(known.as_str()),");
        let _ = writeln!(out, "        }}\n    }}\n}}\n");
        let _ = writeln!(
            out,
            "/// Compares with a wire value (unescaped): `info.status == \"running\"`."
        );
        let _ = writeln!(out, "impl PartialEq<&str> for {name}<'_> {{");
        let _ = writeln!(
            out,
            "    #[inline]\n    fn eq(&self, other: &&str) -> bool {{"
        );
        let _ = writeln!(out, "        match self {{");
        let _ = writeln!(out, "            {name}::{unknown}(text) => text == other,");
        let _ = writeln!(out, "            known => known.as_str() == *other,");
        let _ = writeln!(out, "        }}\n    }}\n}}\n");
        let _ = writeln!(out, "#[cfg(feature = \"defmt\")]");
        let _ = writeln!(out, "impl defmt::Format for {name}<'_> {{");
        let _ = writeln!(out, "    fn format(&self, f: defmt::Formatter<'_>) {{");
        let _ = writeln!(out, "        defmt::write!(f, \"{{=str}}\", self.as_str())");
        let _ = writeln!(out, "    }}\n}}\n");
        let _ = writeln!(out, "impl serde::Serialize for {name}<'_> {{");
        let _ = writeln!(out, "    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {{");
        let _ = writeln!(out, "        match self {{");
        let _ = writeln!(
            out,
            "            {name}::{unknown}(text) => text.serialize(serializer),"
        );
        let _ = writeln!(
            out,
            "            known => serializer.serialize_str(known.as_str()),"
        );
        let _ = writeln!(out, "        }}\n    }}\n}}\n");
    }

    /// Fields of a struct (or a union's base without its discriminator).
    fn fields(
        &self,
        out: &mut String,
        owner: &str,
        members: &[Member],
        dir: Dir,
        doc: Option<&Doc>,
    ) {
        for m in members {
            push_doc(out, "    ", &member_doc(m, doc));
            let ty = self.rust_type(&m.ty, dir, owner);
            if m.optional_in_rust() {
                let _ = writeln!(out, "    pub {}: Option<{ty}>,", field(&m.name));
            } else {
                let _ = writeln!(out, "    pub {}: {ty},", field(&m.name));
            }
        }
    }

    /// `serialize_members` statements for `members` of `self`.
    fn ser_members(&self, out: &mut String, members: &[Member]) {
        for m in members {
            let f = field(&m.name);
            if m.optional_in_rust() {
                let _ = writeln!(
                    out,
                    "        if let Some(value) = &self.{f} {{\n            map.serialize_entry({:?}, value)?;\n        }}",
                    m.name
                );
            } else {
                let _ = writeln!(
                    out,
                    "        map.serialize_entry({:?}, &self.{f})?;",
                    m.name
                );
            }
        }
    }

    /// Decoding: locals, the member loop, and the field list for the constructor.
    fn de_members(&self, out: &mut String, members: &[Member]) -> Vec<String> {
        let mut inits = Vec::new();
        for m in members {
            let _ = writeln!(out, "        let mut {} = None;", local(&m.name));
        }
        if !members.is_empty() {
            let _ = writeln!(out, "        for (key, value) in raw.members() {{");
            let _ = writeln!(out, "            match key.as_plain() {{");
            for m in members {
                let _ = writeln!(
                    out,
                    "                Some({:?}) => {} = Some(FromRawJson::from_raw_json(value)?),",
                    m.name,
                    local(&m.name)
                );
            }
            let _ = writeln!(out, "                _ => {{}}\n            }}\n        }}");
        }
        for m in members {
            if m.optional_in_rust() {
                inits.push(format!("{}: {}", field(&m.name), local(&m.name)));
            } else {
                inits.push(format!(
                    "{}: {}.ok_or(rt::MISSING_MEMBER)?",
                    field(&m.name),
                    local(&m.name)
                ));
            }
        }
        inits
    }

    #[allow(clippy::too_many_arguments)]
    fn structure(
        &self,
        out: &mut String,
        def: &Def,
        name: &str,
        members: &[Member],
        dir: Dir,
        doc: &[String],
    ) {
        let lt = if self.lifetimed.contains(&def.name)
            || (dir == Dir::In && matches!(def.kind, Kind::Command { .. }))
        {
            "<'a>"
        } else {
            ""
        };
        self.struct_with_lt(out, def, name, members, dir, doc, lt);
    }

    #[allow(clippy::too_many_arguments)]
    fn struct_with_lt(
        &self,
        out: &mut String,
        def: &Def,
        name: &str,
        members: &[Member],
        dir: Dir,
        doc: &[String],
        lt: &str,
    ) {
        push_doc(out, "", doc);
        let all_optional = members.iter().all(Member::optional_in_rust);
        let _ = writeln!(
            out,
            "#[derive(Debug, Clone, Copy, PartialEq{})]",
            if all_optional { ", Default" } else { "" }
        );
        let _ = writeln!(out, "pub struct {name}{lt} {{");
        self.fields(out, &def.name, members, dir, def.doc.as_ref());
        let _ = writeln!(out, "}}\n");
        let ilt = if lt.is_empty() { "" } else { "<'a>" };
        if dir.encodes() {
            let _ = writeln!(out, "impl{ilt} SerializeMembers for {name}{lt} {{");
            let map = if members.is_empty() { "_map" } else { "map" };
            let _ = writeln!(out, "    fn serialize_members<M: SerializeMap>(&self, {map}: &mut M) -> Result<(), M::Error> {{");
            self.ser_members(out, members);
            let _ = writeln!(out, "        Ok(())\n    }}\n}}\n");
            let _ = writeln!(out, "rt::serialize_as_map!({name}{ilt});\n");
        }
        if dir.decodes() {
            let _ = writeln!(out, "impl<'a> FromRawJson<'a> for {name}{lt} {{");
            let _ = writeln!(
                out,
                "    #[inline]\n    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {{"
            );
            let _ = writeln!(out, "        if !raw.is_object() {{\n            return Err(DecodeError::NotAnObject);\n        }}");
            let inits = self.de_members(out, members);
            let _ = writeln!(out, "        Ok({name} {{");
            for init in inits {
                let _ = writeln!(out, "            {init},");
            }
            let _ = writeln!(out, "        }})\n    }}\n}}\n");
        }
    }

    fn union(
        &self,
        out: &mut String,
        def: &Def,
        base: &[Member],
        disc: &str,
        tag_enum: &str,
        branches: &[Branch],
    ) {
        let name = type_name(&def.name);
        let dir = self.dir(&def.name);
        let branch_name = format!("{name}Branch");
        let Some(Def {
            kind: Kind::Enum { values },
            ..
        }) = self.schema.get(tag_enum)
        else {
            return;
        };
        let others: Vec<Member> = base.iter().filter(|m| m.name != disc).cloned().collect();
        // An older release whose replies lack the discriminator (the type was a struct
        // then): such an object decodes to an `Untagged` variant holding it whole.
        let untagged = base
            .iter()
            .find(|m| m.name == disc)
            .and_then(|m| m.before.as_ref())
            .filter(|b| b.relaxed && !b.present)
            .map(|b| b.version.clone());
        // The struct: base members, then the discriminator with its branch.
        let mut doc = def_doc(def, "union");
        doc.push(String::new());
        doc.push(format!(
            "The member `{disc}` selects the variant; [`{branch_name}`] holds it with the members that depend on it."
        ));
        push_doc(out, "", &doc);
        let _ = writeln!(out, "#[derive(Debug, Clone, Copy, PartialEq)]");
        let _ = writeln!(out, "pub struct {name}<'a> {{");
        self.fields(out, &def.name, &others, dir, def.doc.as_ref());
        let disc_doc = base
            .iter()
            .find(|m| m.name == disc)
            .map(|m| doc_text(&m.doc).join(" "))
            .unwrap_or_default();
        let _ = writeln!(out, "    /// `{disc}`: {disc_doc}");
        let _ = writeln!(
            out,
            "    ///\n    /// With the members of the variant it selects."
        );
        let _ = writeln!(out, "    pub {}: {branch_name}<'a>,", field(disc));
        let _ = writeln!(out, "}}\n");

        // The branch enum.
        let _ = writeln!(
            out,
            "/// The variants of [`{name}`], selected by `{disc}` (QAPI enum `{tag_enum}`)."
        );
        let _ = writeln!(out, "#[derive(Debug, Clone, Copy, PartialEq)]");
        let _ = writeln!(out, "pub enum {branch_name}<'a> {{");
        let tag_name = type_name(tag_enum);
        let mut arms = Vec::new();
        let mut seen_variants: Vec<String> = Vec::new();
        for v in values {
            let mut variant = camel(&v.name);
            while seen_variants.contains(&variant) {
                variant.push('_');
            }
            seen_variants.push(variant.clone());
            let branch = branches.iter().find(|b| b.name == v.name);
            let mut lines = vec![format!("`{disc}: \"{}\"`", v.name)];
            if let Some(b) = branch {
                if !b.doc.is_empty() {
                    lines[0].push_str(": ");
                    lines[0].push_str(&doc_text(&b.doc).join(" "));
                }
                if let Some(c) = cond_line(&b.cond) {
                    lines.push(String::new());
                    lines.push(c);
                }
            }
            if let Some(c) = cond_line(&v.cond) {
                lines.push(String::new());
                lines.push(c);
            }
            if let Some(line) = absent_line(&v.absent_in) {
                lines.push(String::new());
                lines.push(line);
            }
            push_doc(out, "    ", &lines);
            match branch {
                Some(b) => {
                    let ty = self.rust_type(&b.ty, dir, &def.name);
                    let _ = writeln!(out, "    {variant}({ty}),");
                    arms.push((v.name.clone(), variant, true));
                }
                None => {
                    let _ = writeln!(out, "    {variant},");
                    arms.push((v.name.clone(), variant, false));
                }
            }
        }
        let unknown = if seen_variants.iter().any(|v| v == "Unknown") {
            "UnknownValue"
        } else {
            "Unknown"
        };
        let _ = writeln!(out, "    /// A `{disc}` this schema does not know (sent by a newer QEMU): its value, and the");
        let _ = writeln!(
            out,
            "    /// whole object, so the members of the variant can still be read."
        );
        let _ = writeln!(out, "    {unknown} {{\n        /// The `{disc}` value, as on the wire.\n        tag: JsonStr<'a>,\n        /// The whole object.\n        raw: RawJson<'a>,\n    }},");
        if let Some(v) = &untagged {
            let _ = writeln!(out, "    /// An object without `{disc}`, as QEMU {v} sends it (its `{}` has no `{disc}`):", def.name);
            let _ = writeln!(
                out,
                "    /// the whole object, so the members of the variant can still be read."
            );
            let _ = writeln!(out, "    Untagged(RawJson<'a>),");
        }
        let _ = writeln!(out, "}}\n");

        let _ = writeln!(out, "impl<'a> {branch_name}<'a> {{");
        let (ret, some) = if untagged.is_some() {
            let _ = writeln!(
                out,
                "    /// The `{disc}` value (`None` for [`{branch_name}::Untagged`])."
            );
            (format!("Option<{tag_name}<'a>>"), ("Some(", ")"))
        } else {
            let _ = writeln!(out, "    /// The `{disc}` value.");
            (format!("{tag_name}<'a>"), ("", ""))
        };
        let _ = writeln!(out, "    #[inline]\n    pub fn tag(&self) -> {ret} {{");
        let _ = writeln!(out, "        match self {{");
        let (open, close) = some;
        for (_, variant, has) in &arms {
            let pat = if *has { "(_)" } else { "" };
            let _ = writeln!(
                out,
                "            {branch_name}::{variant}{pat} => {open}{tag_name}::{variant}{close},"
            );
        }
        let _ = writeln!(out, "            {branch_name}::{unknown} {{ tag, .. }} => {open}{tag_name}::from_json_str(*tag){close},");
        if untagged.is_some() {
            let _ = writeln!(out, "            {branch_name}::Untagged(_) => None,");
        }
        let _ = writeln!(out, "        }}\n    }}\n}}\n");

        if dir.encodes() {
            let _ = writeln!(out, "impl<'a> SerializeMembers for {name}<'a> {{");
            let _ = writeln!(out, "    fn serialize_members<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {{");
            self.ser_members(out, &others);
            if untagged.is_some() {
                let _ = writeln!(
                    out,
                    "        if let Some(tag) = self.{}.tag() {{\n            map.serialize_entry({disc:?}, &tag)?;\n        }}",
                    field(disc)
                );
            } else {
                let _ = writeln!(
                    out,
                    "        map.serialize_entry({disc:?}, &self.{}.tag())?;",
                    field(disc)
                );
            }
            let _ = writeln!(out, "        match &self.{} {{", field(disc));
            for (_, variant, has) in &arms {
                if *has {
                    let _ = writeln!(out, "            {branch_name}::{variant}(branch) => branch.serialize_members(map),");
                }
            }
            if untagged.is_some() {
                // The members beside the base's, as they came.
                let names: Vec<String> = others.iter().map(|m| format!("{:?}", m.name)).collect();
                let _ = writeln!(out, "            {branch_name}::Untagged(raw) => {{\n                for (key, value) in raw.members() {{");
                if names.is_empty() {
                    let _ = writeln!(
                        out,
                        "                    map.serialize_entry(&key, &value)?;"
                    );
                } else {
                    let _ = writeln!(out, "                    if !matches!(key.as_plain(), Some({})) {{\n                        map.serialize_entry(&key, &value)?;\n                    }}", names.join(" | "));
                }
                let _ = writeln!(
                    out,
                    "                }}\n                Ok(())\n            }}"
                );
            }
            let _ = writeln!(out, "            _ => Ok(()),\n        }}\n    }}\n}}\n");
            let _ = writeln!(out, "rt::serialize_as_map!({name}<'a>);\n");
        }
        if dir.decodes() {
            let _ = writeln!(out, "impl<'a> FromRawJson<'a> for {name}<'a> {{");
            let _ = writeln!(
                out,
                "    #[inline]\n    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {{"
            );
            let _ = writeln!(out, "        if !raw.is_object() {{\n            return Err(DecodeError::NotAnObject);\n        }}");
            let inits = self.de_members(out, &others);
            if untagged.is_some() {
                let _ = writeln!(out, "        let Some(tag) = raw.get({disc:?}) else {{");
                let _ = writeln!(out, "            return Ok({name} {{");
                for init in &inits {
                    let _ = writeln!(out, "                {init},");
                }
                let _ = writeln!(out, "                {}: {branch_name}::Untagged(raw),\n            }});\n        }};", field(disc));
                let _ = writeln!(
                    out,
                    "        let tag = tag.as_json_str().ok_or(rt::MISSING_MEMBER)?;"
                );
            } else {
                let _ = writeln!(out, "        let tag = raw.get({disc:?}).and_then(|t| t.as_json_str()).ok_or(rt::MISSING_MEMBER)?;");
            }
            let _ = writeln!(
                out,
                "        let branch = match {tag_name}::from_json_str(tag) {{"
            );
            for (_, variant, has) in &arms {
                if *has {
                    let _ = writeln!(out, "            {tag_name}::{variant} => {branch_name}::{variant}(FromRawJson::from_raw_json(raw)?),");
                } else {
                    let _ = writeln!(
                        out,
                        "            {tag_name}::{variant} => {branch_name}::{variant},"
                    );
                }
            }
            let tag_unknown = self.enum_unknown(tag_enum);
            let _ = writeln!(out, "            {tag_name}::{tag_unknown}(tag) => {branch_name}::{unknown} {{ tag, raw }},");
            let _ = writeln!(out, "        }};");
            let _ = writeln!(out, "        Ok({name} {{");
            for init in inits {
                let _ = writeln!(out, "            {init},");
            }
            let _ = writeln!(out, "            {}: branch,", field(disc));
            let _ = writeln!(out, "        }})\n    }}\n}}\n");
        }
    }

    fn enum_unknown(&self, name: &str) -> &'static str {
        if let Some(Def {
            kind: Kind::Enum { values },
            ..
        }) = self.schema.get(name)
        {
            if values.iter().any(|v| camel(&v.name) == "Unknown") {
                return "UnknownValue";
            }
        }
        "Unknown"
    }

    fn alternate(&self, out: &mut String, def: &Def, branches: &[Branch]) {
        let name = type_name(&def.name);
        let dir = self.dir(&def.name);
        let lt = self.lt(&def.name);
        push_doc(out, "", &def_doc(def, "alternate"));
        let _ = writeln!(out, "#[derive(Debug, Clone, Copy, PartialEq)]");
        let _ = writeln!(out, "pub enum {name}{lt} {{");
        for b in branches {
            let mut lines = vec![format!("`{}`", b.name)];
            if !b.doc.is_empty() {
                lines[0] = format!("`{}`: {}", b.name, doc_text(&b.doc).join(" "));
            }
            if let Some(c) = cond_line(&b.cond) {
                lines.push(String::new());
                lines.push(c);
            }
            push_doc(out, "    ", &lines);
            let _ = writeln!(
                out,
                "    {}({}),",
                camel(&b.name),
                self.rust_type(&b.ty, dir, &def.name)
            );
        }
        let _ = writeln!(out, "}}\n");
        let ilt = if lt.is_empty() { "" } else { "<'a>" };
        if dir.encodes() {
            let _ = writeln!(out, "impl{ilt} serde::Serialize for {name}{lt} {{");
            let _ = writeln!(out, "    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {{");
            let _ = writeln!(out, "        match self {{");
            for b in branches {
                let _ = writeln!(
                    out,
                    "            {name}::{}(value) => value.serialize(serializer),",
                    camel(&b.name)
                );
            }
            let _ = writeln!(out, "        }}\n    }}\n}}\n");
        }
        if dir.decodes() {
            let _ = writeln!(out, "impl<'a> FromRawJson<'a> for {name}{lt} {{");
            let _ = writeln!(
                out,
                "    #[inline]\n    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {{"
            );
            let _ = writeln!(out, "        match raw.kind() {{");
            let mut arms: BTreeMap<&str, String> = BTreeMap::new();
            for b in branches {
                let kind = self.json_kind(&b.ty);
                let arm = format!(
                    "{name}::{}(FromRawJson::from_raw_json(raw)?)",
                    camel(&b.name)
                );
                if kind == "Number" {
                    arms.entry("JsonKind::Number").or_insert(arm);
                } else {
                    arms.entry(kind).or_insert(arm);
                }
            }
            for (kind, arm) in &arms {
                let _ = writeln!(out, "            {kind} => Ok({arm}),");
            }
            let _ = writeln!(out, "            _ => Err(rt::WRONG_TYPE),");
            let _ = writeln!(out, "        }}\n    }}\n}}\n");
        }
    }

    /// The `JsonKind` pattern an alternate's branch type is recognised by.
    fn json_kind(&self, ty: &TypeRef) -> &'static str {
        match ty {
            TypeRef::List(_) => "JsonKind::Array",
            TypeRef::Named(name) => match name.as_str() {
                "str" => "JsonKind::String",
                "bool" => "JsonKind::Bool",
                "null" => "JsonKind::Null",
                n if scalar(n).is_some() => "JsonKind::Number",
                "QType" => "JsonKind::String",
                n => match self.schema.get(n).map(|d| &d.kind) {
                    Some(Kind::Enum { .. }) => "JsonKind::String",
                    _ => "JsonKind::Object",
                },
            },
        }
    }

    fn command(
        &self,
        out: &mut String,
        def: &Def,
        data: &Data,
        returns: Option<&TypeRef>,
        allow_oob: bool,
        success_response: bool,
    ) {
        let name = &self.names[&def.name];
        let mut doc = def_doc(def, "command");
        let (resp_ty, resp_lt) = match returns {
            None => ("Empty".to_string(), false),
            Some(ty) => {
                let t = self.rust_type(ty, Dir::Out, "");
                let lt = t.contains("'a");
                (t.replace("'a", "'r"), lt)
            }
        };
        let _ = resp_lt;
        let (args_ty, args_expr, has_lt) = match data {
            Data::None => {
                push_doc(out, "", &doc);
                let _ = writeln!(
                    out,
                    "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]"
                );
                let _ = writeln!(out, "pub struct {name};\n");
                ("NoArguments".to_string(), "None".to_string(), false)
            }
            Data::Members(members) => {
                let has_lt = members.iter().any(|m| {
                    matches!(m.ty, TypeRef::List(_))
                        || matches!(m.ty.name(), "str" | "any" | "QType")
                        || self.lifetimed.contains(m.ty.name())
                });
                let lt = if has_lt { "<'a>" } else { "" };
                self.struct_with_lt(out, def, name, members, Dir::In, &doc, lt);
                // Arguments that are all optional (and so `Default`) are omitted when
                // none is set: a shorter request, as for a command without arguments.
                let expr = if members.iter().all(Member::optional_in_rust) {
                    "if *self == Self::default() { None } else { Some(self) }"
                } else {
                    "Some(self)"
                };
                ("Self".to_string(), expr.to_string(), has_lt)
            }
            Data::Named(type_name) => {
                let inner = format!("{}{}", self::type_name(type_name), self.lt(type_name));
                let has_lt = self.lifetimed.contains(type_name);
                doc.push(String::new());
                doc.push(format!(
                    "The arguments are a [`{}`].",
                    self::type_name(type_name)
                ));
                push_doc(out, "", &doc);
                let _ = writeln!(out, "#[derive(Debug, Clone, Copy, PartialEq)]");
                let lt = if has_lt { "<'a>" } else { "" };
                let _ = writeln!(out, "pub struct {name}{lt}(pub {inner});\n");
                (inner, "Some(&self.0)".to_string(), has_lt)
            }
        };
        let lt = if has_lt { "<'a>" } else { "" };
        let _ = writeln!(out, "impl{lt} Command for {name}{lt} {{");
        let _ = writeln!(out, "    const NAME: &'static str = {:?};", def.name);
        if allow_oob {
            let _ = writeln!(out, "    const ALLOW_OOB: bool = true;");
        }
        if !success_response {
            let _ = writeln!(out, "    const REPLIES_ON_SUCCESS: bool = false;");
        }
        let _ = writeln!(out, "    type Arguments = {args_ty};");
        let _ = writeln!(out, "    type Response<'r> = {resp_ty};\n");
        let _ = writeln!(
            out,
            "    fn arguments(&self) -> Option<&Self::Arguments> {{\n        {args_expr}\n    }}\n"
        );
        let _ = writeln!(out, "    #[inline]\n    fn decode_response(raw: RawJson<'_>) -> Result<Self::Response<'_>, DecodeError> {{");
        if returns.is_none() {
            let _ = writeln!(out, "        rt::empty(raw)");
        } else {
            let _ = writeln!(out, "        FromRawJson::from_raw_json(raw)");
        }
        let _ = writeln!(out, "    }}\n}}\n");
    }

    fn event(&self, out: &mut String, def: &Def, data: &Data) {
        let name = &self.names[&def.name];
        let doc = def_doc(def, "event");
        match data {
            Data::None => {
                push_doc(out, "", &doc);
                let _ = writeln!(
                    out,
                    "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]"
                );
                let _ = writeln!(out, "pub struct {name};\n");
                let _ = writeln!(out, "impl serde::Serialize for {name} {{");
                let _ = writeln!(out, "    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {{\n        Empty.serialize(serializer)\n    }}\n}}\n");
                let _ = writeln!(out, "impl<'a> EventData<'a> for {name} {{");
                let _ = writeln!(out, "    const NAME: &'static str = {:?};", def.name);
                let _ = writeln!(out, "    #[inline]\n    fn decode(_data: Option<RawJson<'a>>) -> Result<Self, DecodeError> {{\n        Ok({name})\n    }}\n}}\n");
            }
            Data::Members(members) => {
                let has_lt = members.iter().any(|m| {
                    matches!(m.ty, TypeRef::List(_))
                        || matches!(m.ty.name(), "str" | "any" | "QType")
                        || self.lifetimed.contains(m.ty.name())
                });
                let lt = if has_lt { "<'a>" } else { "" };
                self.struct_with_lt(out, def, name, members, Dir::Out, &doc, lt);
                let _ = writeln!(out, "impl<'a> EventData<'a> for {name}{lt} {{");
                let _ = writeln!(out, "    const NAME: &'static str = {:?};", def.name);
                let _ = writeln!(out, "    #[inline]\n    fn decode(data: Option<RawJson<'a>>) -> Result<Self, DecodeError> {{\n        FromRawJson::from_raw_json(data.ok_or(DecodeError::NotAnObject)?)\n    }}\n}}\n");
            }
            Data::Named(type_name) => {
                let inner = format!("{}{}", self::type_name(type_name), self.lt(type_name));
                let has_lt = self.lifetimed.contains(type_name);
                let lt = if has_lt { "<'a>" } else { "" };
                let mut doc = doc;
                doc.push(String::new());
                doc.push(format!("The data is a [`{}`].", self::type_name(type_name)));
                push_doc(out, "", &doc);
                let _ = writeln!(out, "#[derive(Debug, Clone, Copy, PartialEq)]");
                let _ = writeln!(out, "pub struct {name}{lt}(pub {inner});\n");
                let _ = writeln!(out, "impl{lt} serde::Serialize for {name}{lt} {{");
                let _ = writeln!(out, "    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {{\n        self.0.serialize(serializer)\n    }}\n}}\n");
                let _ = writeln!(out, "impl<'a> EventData<'a> for {name}{lt} {{");
                let _ = writeln!(out, "    const NAME: &'static str = {:?};", def.name);
                let _ = writeln!(out, "    #[inline]\n    fn decode(data: Option<RawJson<'a>>) -> Result<Self, DecodeError> {{\n        FromRawJson::from_raw_json(data.ok_or(DecodeError::NotAnObject)?).map({name})\n    }}\n}}\n");
            }
        }
    }

    /// Whether the Rust type of command arguments or event data `data` has a lifetime.
    fn data_has_lt(&self, data: &Data) -> bool {
        match data {
            Data::None => false,
            Data::Members(members) => members.iter().any(|m| {
                matches!(m.ty, TypeRef::List(_))
                    || matches!(m.ty.name(), "str" | "any" | "QType")
                    || self.lifetimed.contains(m.ty.name())
            }),
            Data::Named(name) => self.lifetimed.contains(name),
        }
    }

    /// The Rust name of command or event `name`.
    pub fn rust_name(&self, name: &str) -> Option<&str> {
        self.names.get(name).map(String::as_str)
    }

    /// Direction of type `name` (for reports).
    pub fn direction(&self, name: &str) -> Dir {
        self.dir(name)
    }
}

/// A local variable name for member `name` in a decoder.
fn local(name: &str) -> String {
    let f = field(name);
    format!("m_{}", f.trim_start_matches("r#"))
}

fn type_ref(ty: &TypeRef) -> String {
    match ty {
        TypeRef::Named(n) => n.clone(),
        TypeRef::List(n) => format!("[{n}]"),
    }
}

fn opt_str(value: Option<String>) -> String {
    match value {
        Some(v) => format!("Some({v:?})"),
        None => "None".into(),
    }
}

fn features_list(features: &[Feature]) -> String {
    let names: Vec<String> = features.iter().map(|f| format!("{:?}", f.name)).collect();
    format!("&[{}]", names.join(", "))
}

fn members_list(members: &[Member]) -> String {
    let mut out = String::from("&[\n");
    for m in members {
        let _ = writeln!(
            out,
            "        MemberDoc {{ name: {:?}, ty: {:?}, optional: {}, doc: {:?}, cond: {}, features: {} }},",
            m.name,
            type_ref(&m.ty),
            m.optional,
            m.doc,
            opt_str(m.cond.as_ref().map(ToString::to_string)),
            features_list(&m.features),
        );
    }
    out.push_str("    ]");
    out
}

fn branches_list(branches: &[Branch]) -> String {
    let mut out = String::from("&[\n");
    for b in branches {
        let _ = writeln!(
            out,
            "        ValueDoc {{ name: {:?}, ty: {:?}, doc: {:?}, cond: {} }},",
            b.name,
            type_ref(&b.ty),
            b.doc,
            opt_str(b.cond.as_ref().map(ToString::to_string)),
        );
    }
    out.push_str("    ]");
    out
}

impl Gen<'_> {
    /// The schema as data (`COMMANDS`, `EVENTS`, `TYPES` of `qmp_core::qapi::info`).
    pub fn info(&self) -> String {
        let mut commands = String::from(
            "/// Every command of the schema.\npub static COMMANDS: &[CommandDoc] = &[\n",
        );
        let mut events =
            String::from("/// Every event of the schema.\npub static EVENTS: &[EventDoc] = &[\n");
        let mut types =
            String::from("/// Every type of the schema.\npub static TYPES: &[TypeDoc] = &[\n");
        for def in &self.schema.defs {
            let doc = def.doc.as_ref();
            let body = doc.map(|d| d.body.clone()).unwrap_or_default();
            let section = |name: &str| doc.and_then(|d| d.section(name)).unwrap_or("").to_string();
            let cond = opt_str(def.cond.as_ref().map(ToString::to_string));
            let feats = features_list(&def.features);
            match &def.kind {
                Kind::Command {
                    data,
                    returns,
                    allow_oob,
                    success_response,
                } => {
                    let args = self.schema.data_members(data).unwrap_or_default();
                    let args_type = match data {
                        Data::Named(n) => Some(n.clone()),
                        _ => None,
                    };
                    let _ = writeln!(
                        commands,
                        "    CommandDoc {{\n        name: {:?},\n        doc: {:?},\n        returns_doc: {:?},\n        since: {:?},\n        args: {},\n        args_type: {},\n        returns: {},\n        allow_oob: {allow_oob},\n        success_response: {success_response},\n        features: {feats},\n        cond: {cond},\n    }},",
                        def.name,
                        body,
                        section("Returns"),
                        section("Since"),
                        members_list(&args),
                        opt_str(args_type),
                        opt_str(returns.as_ref().map(type_ref)),
                    );
                }
                Kind::Event { data } => {
                    let members = self.schema.data_members(data).unwrap_or_default();
                    let data_type = match data {
                        Data::Named(n) => Some(n.clone()),
                        _ => None,
                    };
                    let _ = writeln!(
                        events,
                        "    EventDoc {{\n        name: {:?},\n        doc: {:?},\n        since: {:?},\n        members: {},\n        data_type: {},\n        features: {feats},\n        cond: {cond},\n    }},",
                        def.name,
                        body,
                        section("Since"),
                        members_list(&members),
                        opt_str(data_type),
                    );
                }
                kind => {
                    let kind = match kind {
                        Kind::Enum { values } => {
                            let mut list = String::from("TypeDocKind::Enum(&[\n");
                            for v in values {
                                let _ = writeln!(
                                    list,
                                    "        ValueDoc {{ name: {:?}, ty: \"\", doc: {:?}, cond: {} }},",
                                    v.name,
                                    v.doc,
                                    opt_str(v.cond.as_ref().map(ToString::to_string)),
                                );
                            }
                            list.push_str("    ])");
                            list
                        }
                        Kind::Struct { members, .. } => {
                            format!("TypeDocKind::Struct({})", members_list(members))
                        }
                        Kind::Union {
                            base,
                            discriminator,
                            branches,
                            ..
                        } => format!(
                            "TypeDocKind::Union {{\n        members: {},\n        discriminator: {discriminator:?},\n        branches: {},\n    }}",
                            members_list(base),
                            branches_list(branches)
                        ),
                        Kind::Alternate { branches } => {
                            format!("TypeDocKind::Alternate({})", branches_list(branches))
                        }
                        _ => unreachable!("commands and events are handled above"),
                    };
                    let _ = writeln!(
                        types,
                        "    TypeDoc {{\n        name: {:?},\n        doc: {:?},\n        kind: {kind},\n        features: {feats},\n        cond: {cond},\n    }},",
                        def.name, body,
                    );
                }
            }
        }
        commands.push_str("];\n\n");
        events.push_str("];\n\n");
        types.push_str("];\n");
        commands + &events + &types
    }

    /// A test helper: decodes a reply or event by name with the generated type and
    /// re-encodes it.
    pub fn dispatch(&self, path: &str, fn_prefix: &str) -> String {
        let mut replies = format!(
            "/// Decodes `raw` as the reply of command `name` with its generated type and\n\
             /// re-encodes it into `out`; `None` for a command the vocabulary lacks.\n\
             pub fn {fn_prefix}reply(name: &str, raw: RawJson<'_>, out: &mut [u8]) -> Option<Result<usize, String>> {{\n    Some(match name {{\n"
        );
        let mut events = format!(
            "/// Decodes event `name`'s `data` with its generated type and re-encodes it into `out`.\n\
             pub fn {fn_prefix}event(name: &str, data: Option<RawJson<'_>>, out: &mut [u8]) -> Option<Result<usize, String>> {{\n    Some(match name {{\n"
        );
        for def in &self.schema.defs {
            let Some(rust) = self.names.get(&def.name) else {
                continue;
            };
            let lt = match &def.kind {
                Kind::Command { data, .. } | Kind::Event { data } if self.data_has_lt(data) => {
                    "<'_>"
                }
                _ => "",
            };
            match def.kind {
                Kind::Command { .. } => {
                    let _ = writeln!(
                        replies,
                        "        {:?} => reencode(<{path}::{rust}{lt} as Command>::decode_response(raw), out),",
                        def.name
                    );
                }
                Kind::Event { .. } => {
                    let _ = writeln!(
                        events,
                        "        {:?} => reencode(<{path}::{rust}{lt} as EventData<'_>>::decode(data), out),",
                        def.name
                    );
                }
                _ => {}
            }
        }
        replies.push_str("        _ => return None,\n    })\n}\n\n");
        events.push_str("        _ => return None,\n    })\n}\n\n");
        replies + &events
    }
}

impl Gen<'_> {
    /// The `events` module: every event type and `DecodedEvent` over all of them.
    pub fn events_module(&self) -> String {
        let mut names = Vec::new();
        let mut variants = String::new();
        for def in &self.schema.defs {
            let Kind::Event { data } = &def.kind else {
                continue;
            };
            let rust = &self.names[&def.name];
            let lt = if self.data_has_lt(data) { "<'a>" } else { "" };
            names.push(rust.clone());
            let variant = rust.trim_end_matches("Event");
            let _ = writeln!(variants, "            /// `{}`.", def.name);
            let _ = writeln!(variants, "            {variant}({rust}{lt}),");
        }
        let mut out = String::from(
            "/// Every event of the schema, and [`DecodedEvent`](events::DecodedEvent) over all of them.\n\
             pub mod events {\n    use crate::events::EventData;\n    use crate::json::{DecodeError, RawJson};\n\n    pub use super::{\n",
        );
        for name in &names {
            let _ = writeln!(out, "        {name},");
        }
        out.push_str("    };\n\n    crate::events::decoded_event! {\n        /// A typed view of any QMP event of the schema, built by [`DecodedEvent::decode`].\n        pub enum DecodedEvent<'a> {\n");
        out.push_str(&variants);
        out.push_str("        }\n    }\n}\n");
        out
    }
}
